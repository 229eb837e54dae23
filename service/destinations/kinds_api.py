"""What the admin API accepts for each destination kind: config, user-settable secrets, formats.

:func:`validate` turns a kind's ``config`` and ``secrets`` as given (merged with what is stored,
on updates) into ``(config, secrets)`` to store, raising :class:`InvalidInput` naming the field.
The kind's :class:`~.kinds.spec.KindSpec` (from the registry) does the checking; this module
only routes and words the errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.destinations.kinds.registry import spec_for
from service.destinations.kinds.spec import Validated
from service.errors import InvalidInput


def check_user_secrets(kind: str, secrets: Mapping[str, Any]) -> None:
    """Refuse secrets a user may not set for ``kind`` (the service's own are kept apart)."""
    spec = spec_for(kind)
    allowed = spec.user_secrets
    for key in secrets:
        if key not in allowed:
            if spec.secrets_refused is not None:
                raise InvalidInput(spec.secrets_refused, field="secrets")
            known = ", ".join(sorted(allowed)) or "none"
            raise InvalidInput(
                f"secrets.{key}: not a {kind} secret (known: {known})", field=f"secrets.{key}"
            )


def check_formats(kind: str, formats: list[str]) -> None:
    allowed = spec_for(kind).formats
    for fmt in formats:
        if fmt not in allowed:
            raise InvalidInput(
                f"formats: {kind} destinations take {', '.join(allowed)}, not {fmt}",
                field="formats",
            )


def validate(kind: str, config: Mapping[str, Any], secrets: Mapping[str, Any]) -> Validated:
    """``(config, secrets, generated webhook secret or None)`` to store, all checked."""
    return spec_for(kind).validated(config, secrets)


def mask(value: Any, *, show_tail: bool = True) -> Any:
    """A secret as shown in responses: ``••••`` and, for long strings when ``show_tail``
    (admin keys), the last 4 characters to tell secrets apart; read-only keys see none.

    Numbers and booleans (expiry times, athlete ids) are not credentials and are shown.
    """
    if isinstance(value, str):
        return "••••" + value[-4:] if show_tail and len(value) >= 16 else "••••"
    if isinstance(value, dict):
        return {str(k): mask(v, show_tail=show_tail) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, show_tail=show_tail) for v in value]
    return value
