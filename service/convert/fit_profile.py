"""FIT profile look-ups shared by the FIT writer: field layouts, value ranges, time conversion.

Everything here is read from ``garmin_fit_sdk.Profile`` so a typo in a field or type name fails
loudly instead of writing a wrong field number.

Range rule (see :func:`FieldSpec.raw`): a value that its FIT field cannot represent (HR 300 in a
``uint8``, a negative power, NaN) is dropped, i.e. written as absent. The SDK's encoder would wrap
it instead (HR 300 becomes 44), and clamping would write a plausible-looking value that was never
measured; absence is the only honest choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from garmin_fit_sdk import BASE_TYPE_DEFINITIONS, FIELD_TYPE_TO_BASE_TYPE, FIT_EPOCH_S, Profile

from service.errors import ConversionError

MESG_NUM: dict[str, int] = {name.lower(): num for name, num in Profile["mesg_num"].items()}
TYPES: dict[str, dict[int, str]] = Profile["types"]

# date_time values below this are "seconds since device power-up", not UTC (FIT spec).
_MIN_DATE_TIME = 0x10000000
_MAX_DATE_TIME = 0xFFFFFFFE


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one numeric field of one message is stored: number, base type, scale, valid range."""

    name: str
    num: int
    base_type: int
    """Base type byte as written in a definition message (type id | endian flag)."""
    size: int
    struct_code: str
    scale: float
    offset: float
    lo: int
    hi: int
    invalid: int

    def raw(self, value: float | None) -> int | None:
        """The stored integer for ``value``, or None when absent or not representable."""
        if value is None:
            return None
        scaled = (value + self.offset) * self.scale
        # NaN fails both comparisons, so it is dropped like any other unrepresentable value.
        if not self.lo <= scaled <= self.hi:
            return None
        return round(scaled)

    def column(self, values: list[Any]) -> list[int]:
        """Stored integers for many values, the base type's invalid value standing for absent."""
        lo, hi, inv, scale, offset = self.lo, self.hi, self.invalid, self.scale, self.offset
        # One comprehension per case keeps this at C-loop speed (it runs per sample).
        if scale == 1 and offset == 0:
            return [round(v) if v is not None and lo <= v <= hi else inv for v in values]
        if offset == 0:
            return [
                round(x) if v is not None and lo <= (x := v * scale) <= hi else inv for v in values
            ]
        return [
            round(x) if v is not None and lo <= (x := (v + offset) * scale) <= hi else inv
            for v in values
        ]

    def narrow(self, wider: FieldSpec, column: list[int]) -> list[int]:
        """This field's column from the same values stored in ``wider`` (same scale, more bits).

        ``speed`` from ``enhanced_speed``, ``altitude`` from ``enhanced_altitude``: values
        beyond this field's range become absent here while ``wider`` keeps them.
        """
        lo, hi, inv, wide_inv = self.lo, self.hi, self.invalid, wider.invalid
        return [v if v != wide_inv and lo <= v <= hi else inv for v in column]


def _range(type_id: int) -> tuple[int, int, int]:
    definition = BASE_TYPE_DEFINITIONS[type_id]
    bits = 8 * definition["size"]
    invalid: int = definition["invalid"]
    lo, hi = (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        if definition["signed"]
        else (0, (1 << bits) - 1)
    )
    # The invalid value sits at one end of the range (all ones, max signed, or 0 for "z" types).
    if invalid == hi:
        hi -= 1
    elif invalid == lo:
        lo += 1
    return lo, hi, invalid


@cache
def field_spec(mesg: str, name: str) -> FieldSpec:
    """The layout of numeric field ``name`` of message ``mesg`` (e.g. ``"record"``, ``"power"``)."""
    fields = Profile["messages"][MESG_NUM[mesg]]["fields"]
    profile = next((f for f in fields.values() if f["name"] == name), None)
    if profile is None:
        raise KeyError(f"FIT profile has no field {mesg}.{name}")
    type_id = FIELD_TYPE_TO_BASE_TYPE[profile["base_type"]]
    definition = BASE_TYPE_DEFINITIONS[type_id]
    if definition["type_code"] in ("s", "f", "d"):
        raise KeyError(f"FIT field {mesg}.{name} is not an integer field")
    lo, hi, invalid = _range(type_id)
    # Fields with several components carry a list of scales; the field itself uses none.
    many = len(profile["components"]) > 1
    scale = 1 if many else profile["scale"][0]
    offset = 0 if many else profile["offset"][0]
    return FieldSpec(
        name=name,
        num=profile["num"],
        base_type=type_id | definition["endian_flag"],
        size=definition["size"],
        struct_code=definition["type_code"],
        scale=scale,
        offset=offset,
        lo=lo,
        hi=hi,
        invalid=invalid,
    )


def fit_seconds(unix_seconds: float, what: str) -> int:
    """Whole FIT seconds (since 1989-12-31 UTC) for a Unix time, rounded half up."""
    try:
        value = math.floor(unix_seconds + 0.5) - FIT_EPOCH_S
    except (ValueError, OverflowError):
        raise ConversionError(f"{what} is not a finite time: {unix_seconds!r}") from None
    if not _MIN_DATE_TIME <= value <= _MAX_DATE_TIME:
        raise ConversionError(f"{what} is outside the range FIT can store (1998-2126)")
    return value


def fit_time(moment: datetime, what: str) -> int:
    """Whole FIT seconds for an aware datetime."""
    return fit_seconds(moment.timestamp(), what)


def clean(mesg: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` ready for the SDK encoder: Nones and unrepresentable numbers dropped.

    Strings and profile enum names pass through (the encoder checks enum names itself);
    numbers are range-checked against their field so the encoder never wraps them.
    """
    out: dict[str, Any] = {"mesg_num": MESG_NUM[mesg]}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            spec = field_spec(mesg, name)
            raw = spec.raw(value)
            if raw is None:
                continue
            # Unscaled fields get the rounded integer: the encoder would truncate a float.
            if spec.scale == 1 and spec.offset == 0:
                value = raw
        out[name] = value
    return out


def fit_string(text: str, limit: int = 63) -> str:
    """``text`` made safe for a FIT string field: no NULs, at most ``limit`` UTF-8 bytes."""
    data = text.replace("\x00", " ").encode()[:limit]
    return data.decode(errors="ignore")
