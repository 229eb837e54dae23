"""Many messages of one kind (laps, sets, workout steps) packed with ``struct`` in one go.

The SDK's ``Encoder`` costs about 0.1 ms a message (it builds and compares a definition for
each one and checksums byte by byte in Python): nothing for the handful of summary messages,
but a class followed cue by cue has dozens of laps and workout steps, and a strength class
dozens of sets. Like the record stream (``fit_records``), such a run of messages gets one
definition holding every field any of them has, then one fixed-layout data message each; a
message without a field stores the base type's invalid value there, which is FIT's "absent"
(both decoders the tests use read it so).

Values come as :func:`fit_profile.clean` leaves them: numbers in the profile's units (scaled
here), enum values by profile name, strings, and lists for array fields.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from typing import Any

from garmin_fit_sdk import FIELD_TYPE_TO_BASE_TYPE, Profile

from service.convert.fit_profile import MESG_NUM, TYPES, field_spec

_DEFINITION = 0x40
_STRING = 7
_MAX_FIELD_BYTES = 255


@cache
def _enum_numbers(type_name: str) -> dict[str, int]:
    return {name: num for num, name in TYPES.get(type_name, {}).items()}


@dataclass(frozen=True, slots=True)
class _Column:
    num: int
    size: int
    base_type: int
    code: str
    cells: list[Any]  # one packed value (or tuple of them, for arrays) per message


def _profile_field(mesg: str, name: str) -> dict[str, Any]:
    fields = Profile["messages"][MESG_NUM[mesg]]["fields"]
    found: dict[str, Any] = next(f for f in fields.values() if f["name"] == name)
    return found


def _string_column(num: int, values: list[Any]) -> _Column:
    data = [b"" if v is None else v.encode() for v in values]
    size = min(max(len(d) for d in data) + 1, _MAX_FIELD_BYTES)  # room for the NUL
    cells = [d[: size - 1] for d in data]  # struct pads with NULs: absent is all zeros
    return _Column(num, size, _STRING, f"{size}s", cells)


def _column(mesg: str, name: str, values: list[Any]) -> _Column:
    profile = _profile_field(mesg, name)
    if FIELD_TYPE_TO_BASE_TYPE[profile["base_type"]] == _STRING:
        return _string_column(profile["num"], values)
    spec = field_spec(mesg, name)
    numbers = _enum_numbers(profile["type"])

    def raw(value: Any) -> int:
        if isinstance(value, str):
            return numbers[value]  # an unknown name is a bug: KeyError, never a wrong number
        stored = spec.raw(value)
        return spec.invalid if stored is None else stored

    if profile["array"] == "true":
        width = max(len(v) for v in values if v is not None)
        cells: list[Any] = [
            tuple(raw(x) for x in v) + (spec.invalid,) * (width - len(v))
            if v is not None
            else (spec.invalid,) * width
            for v in values
        ]
        return _Column(spec.num, spec.size * width, spec.base_type, spec.struct_code * width, cells)
    cells = [spec.invalid if v is None else raw(v) for v in values]
    return _Column(spec.num, spec.size, spec.base_type, spec.struct_code, cells)


def table(mesg: str, messages: list[dict[str, Any]], local_num: int) -> bytes:
    """One definition (local message ``local_num``) and a data message per item of
    ``messages``; empty bytes for none."""
    if not messages:
        return b""
    names = list(dict.fromkeys(k for m in messages for k in m if k != "mesg_num"))
    columns = [_column(mesg, name, [m.get(name) for m in messages]) for name in names]
    definition = struct.pack(
        "<BBBHB", _DEFINITION | local_num, 0, 0, MESG_NUM[mesg], len(columns)
    ) + b"".join(struct.pack("BBB", c.num, c.size, c.base_type) for c in columns)
    pack = struct.Struct("<B" + "".join(c.code for c in columns)).pack
    rows = []
    for i in range(len(messages)):
        row: list[Any] = [local_num]
        for c in columns:
            cell = c.cells[i]
            if isinstance(cell, tuple):
                row.extend(cell)
            else:
                row.append(cell)
        rows.append(pack(*row))
    return definition + b"".join(rows)
