"""The JSON format: the canonical activity model, dumped as is.

The document's shape is :class:`service.convert.model.Activity` (``pelosync convert --schema``
prints its JSON Schema); ``schema_version`` says which version of that shape it is. Values that
were not recorded are left out rather than written as ``null``.
"""

from __future__ import annotations

from service.convert.model import Activity


def dump_json(activity: Activity) -> bytes:
    """The activity as compact, deterministic UTF-8 JSON."""
    return activity.model_dump_json(exclude_none=True).encode() + b"\n"


def activity_json_schema() -> dict[str, object]:
    """JSON Schema of the JSON format."""
    return Activity.model_json_schema()
