"""Decode FIT bytes with both the Garmin FIT SDK and fitdecode, strictly, for writer tests."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import fitdecode
from garmin_fit_sdk import FIT_EPOCH_S, Decoder, Profile, Stream

SEMICIRCLE_DEG = 180 / 2**31
"""Degrees per semicircle: the quantum of a FIT position."""

Message = dict[str, Any]


@dataclass(frozen=True)
class Fit:
    """One file, decoded twice. ``sdk`` and ``fd`` map message name -> messages in file order.

    A message is a dict of its present fields only (absent / invalid values are left out), with
    profile scale and offset applied and enums as names. Where fitdecode repeats a field (a
    component expansion such as ``speed`` -> ``enhanced_speed``), the first occurrence is kept;
    a sub-field is listed under its own name and, as its stored number, its parent's, as the
    SDK lists them.
    """

    sdk: dict[str, list[Message]]
    fd: dict[str, list[Message]]

    def all(self, name: str) -> list[Message]:
        return self.sdk.get(name, [])

    def one(self, name: str) -> Message:
        found = self.all(name)
        assert len(found) == 1, f"expected one {name} message, got {len(found)}"
        return found[0]

    @property
    def records(self) -> list[Message]:
        return self.all("record")


def _sdk(data: bytes) -> dict[str, list[Message]]:
    assert Decoder(Stream.from_byte_array(bytearray(data))).is_fit()
    # check_integrity() consumes the stream, so each check gets its own decoder.
    assert Decoder(Stream.from_byte_array(bytearray(data))).check_integrity()
    messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read(
        merge_heart_rates=False
    )
    assert errors == [], errors
    return {key.removesuffix("_mesgs"): cast(list[Message], v) for key, v in messages.items()}


def _fitdecode(data: bytes) -> dict[str, list[Message]]:
    out: dict[str, list[Message]] = {}
    frames = []
    with fitdecode.FitReader(
        io.BytesIO(data),
        check_crc=fitdecode.CrcCheck.RAISE,
        error_handling=fitdecode.ErrorHandling.RAISE,
    ) as reader:
        for frame in reader:
            frames.append(frame)
            if isinstance(frame, fitdecode.FitDataMessage):
                fields: Message = {}
                for field in frame.fields:
                    if field.value is None:
                        continue
                    # fitdecode reads a sub-field (avg_running_cadence, duration_time) in place
                    # of its parent; the SDK lists both, the parent as the stored number.
                    parent = field.parent_field
                    if parent is not None:
                        fields.setdefault(parent.name, field.raw_value)
                    fields.setdefault(field.name, field.value)
                out.setdefault(frame.name, []).append(fields)
    assert isinstance(frames[0], fitdecode.FitHeader)
    assert isinstance(frames[-1], fitdecode.FitCRC)
    return out


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):  # fitdecode reads local_date_time as UTC-labelled
        return round(value.replace(tzinfo=value.tzinfo or UTC).timestamp()) - FIT_EPOCH_S
    return value


# Enum name -> every number it has in some profile type: fitdecode's profile is older than
# the SDK's, so it reports newer enum values (manufacturer "peloton") as bare numbers.
_ENUM_NUMBERS: dict[str, set[int]] = {}
for _values in Profile["types"].values():
    for _number, _name in _values.items():
        _ENUM_NUMBERS.setdefault(_name, set()).add(_number)


_SUB_FIELDS = {
    sub["name"]
    for message in Profile["messages"].values()
    for field in message["fields"].values()
    for sub in field["sub_fields"]
}


def _same(a: Any, b: Any) -> bool:
    a, b = _norm(a), _norm(b)
    if isinstance(b, str) and isinstance(a, int):
        a, b = b, a
    if isinstance(a, str) and isinstance(b, int) and not isinstance(b, bool):
        return b in _ENUM_NUMBERS.get(a, set())
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return bool(a == b)


def decode(data: bytes) -> Fit:
    """Decode with both libraries (CRC and integrity checks raising) and check they agree."""
    assert isinstance(data, bytes)
    fit = Fit(sdk=_sdk(data), fd=_fitdecode(data))
    assert {k: len(v) for k, v in fit.sdk.items()} == {k: len(v) for k, v in fit.fd.items()}
    for name, messages in fit.sdk.items():
        for i, (ours, theirs) in enumerate(zip(messages, fit.fd[name], strict=True)):
            for key in ours.keys() & theirs.keys():
                assert _same(ours[key], theirs[key]), (name, i, key, ours[key], theirs[key])
            # Same present fields; the SDK also lists sub-fields under their own names.
            assert theirs.keys() <= ours.keys(), (name, i, theirs.keys() - ours.keys())
            assert ours.keys() - theirs.keys() <= _SUB_FIELDS, (
                name,
                i,
                ours.keys() - theirs.keys(),
            )
    return fit


def definitions(data: bytes) -> list[str]:
    """Message names of the file's definition messages, in order."""
    with fitdecode.FitReader(io.BytesIO(data), check_crc=fitdecode.CrcCheck.RAISE) as reader:
        return [f.name for f in reader if isinstance(f, fitdecode.FitDefinitionMessage)]


def fit_seconds(moment: datetime) -> datetime:
    """``moment`` rounded half up to a whole second, as FIT stores it."""
    return datetime.fromtimestamp(math.floor(moment.timestamp() + 0.5), UTC)


def degrees(semicircles: int) -> float:
    return semicircles * SEMICIRCLE_DEG
