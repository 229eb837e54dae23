"""The FIT ``record`` stream and the file framing, written directly with ``struct``.

Why not the SDK's ``Encoder`` for records: it builds and compares a message definition for
every message, transforms each value in Python, and checksums the file one byte per Python
call. For a 60-minute 1 Hz workout that is ~220 ms, of which the checksum alone is ~30 ms,
against a 20 ms budget (``benchmarks/bench_fit_writer.py``). Records are the only bulky
message, so only they take this path: one definition message, then one fixed-layout data
message per sample, packed column-wise in C. Every other message still goes through the SDK
encoder (``fit.py``), and the checksum comes from ``fastcrc`` (tests check it against the SDK's
``CrcCalculator``).

Layout choices:

* The definition holds only the fields that at least one sample has. Within a record, a
  missing value (``None``, or a value its field cannot represent, see ``fit_profile``) is
  written as the base type's *invalid* value, which is how FIT spells "absent": both the SDK
  decoder and fitdecode read it as no value, and Garmin's own devices do the same.
* Timestamps are whole seconds: ``start + offset_s`` rounded half up. Rounding is monotonic,
  so records stay in non-decreasing time order; sub-second sampling can give two records the
  same second (each sample still gets its record). Offsets that go backwards are refused.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from itertools import repeat
from typing import Any

from fastcrc import crc16
from garmin_fit_sdk import FIT_EPOCH_S, Profile

from service.convert.fit_profile import MESG_NUM, FieldSpec, field_spec, fit_seconds
from service.convert.model import Sample
from service.errors import ConversionError

HEADER_SIZE = 14
CRC_SIZE = 2
_PROTOCOL_VERSION = 0x20
_PROFILE_VERSION = Profile["version"]["major"] * 1000 + Profile["version"]["minor"]
_DEFINITION = 0x40
# The SDK encoder numbers its own definitions from 0 upwards in each segment; records use the
# top slot. Every segment defines a local number before using it, so sharing would be legal
# too, but keeping them apart makes a hex dump easier to read.
RECORD_LOCAL_NUM = 15
_SEMICIRCLES_PER_DEGREE = 2**31 / 180
_SINT32_MIN = -(2**31)
_SINT32_INVALID = 2**31 - 1
_PER_PERCENT = 2.54  # FIT resistance is 0 (none) .. 254 (max); Peloton's is a percent.

_R = "record"
_TIMESTAMP = field_spec(_R, "timestamp")
_LAT = field_spec(_R, "position_lat")
_LONG = field_spec(_R, "position_long")
# The legacy 16-bit fields are written next to their 32-bit "enhanced" twins for older readers.
_NARROW = {
    "enhanced_speed": field_spec(_R, "speed"),
    "enhanced_altitude": field_spec(_R, "altitude"),
}


def checksum(data: bytes | bytearray) -> int:
    """FIT's CRC-16 (the ARC variant: poly 0x8005 reflected, init 0), computed in Rust."""
    return crc16.arc(bytes(data))


def frame(body: bytes) -> bytes:
    """A complete FIT file: 14-byte header (with its own CRC), ``body``, file CRC."""
    header = bytearray(
        struct.pack("<BBHI4s", HEADER_SIZE, _PROTOCOL_VERSION, _PROFILE_VERSION, len(body), b".FIT")
    )
    header += struct.pack("<H", checksum(header))
    data = bytes(header) + body
    return data + struct.pack("<H", checksum(data))


def _timestamps(samples: Sequence[Sample], start_unix: float) -> list[int]:
    # NaN compares false both ways, so it passes the order check; floor() then refuses it.
    offsets = [s.offset_s for s in samples]
    for i in range(1, len(offsets)):
        if offsets[i] < offsets[i - 1]:
            raise ConversionError(
                f"sample {i} goes back in time (offset {offsets[i]} s after {offsets[i - 1]} s)"
            )
    # Check the ends once: offsets are in order, so the values in between fit too.
    fit_seconds(start_unix + offsets[0], "first sample time")
    fit_seconds(start_unix + offsets[-1], "last sample time")
    base = start_unix + 0.5 - FIT_EPOCH_S
    try:
        return [math.floor(base + off) for off in offsets]
    except (ValueError, OverflowError):
        raise ConversionError("a sample offset is not a finite number") from None


def _positions(samples: Sequence[Sample]) -> tuple[list[int], list[int]]:
    inv, k, west = _SINT32_INVALID, _SEMICIRCLES_PER_DEGREE, _SINT32_MIN
    lats = [
        round(v * k) if v is not None and -90 <= v <= 90 else inv
        for v in (s.latitude for s in samples)
    ]
    # +180° (and a hair below, which would round onto the invalid value) is stored as -180°.
    longs = [
        (y if (y := round(v * k)) < inv else west) if v is not None and -180 <= v <= 180 else inv
        for v in (s.longitude for s in samples)
    ]
    if inv in lats or inv in longs:  # a position needs both halves
        lats, longs = (
            [a if b != inv else inv for a, b in zip(lats, longs, strict=True)],
            [b if a != inv else inv for a, b in zip(lats, longs, strict=True)],
        )
    return lats, longs


def _present(values: list[Any]) -> bool:
    return values.count(None) != len(values)  # C-speed scan; any() with a genexpr is 10x slower


Columns = list[tuple[FieldSpec, list[int]]]


def bare_records(*stamps: int) -> Columns:
    """Timestamp-only records at the given FIT times."""
    return [(_TIMESTAMP, list(stamps))]


def record_columns(
    samples: Sequence[Sample], start_unix: float, *, cadence_factor: float = 1.0
) -> Columns:
    """Stored values per record field, keeping only the fields some sample has.

    ``cadence_factor`` converts the model's cadence to FIT's: 0.5 for running and walking,
    where FIT counts strides (one foot) and the model counts steps.
    """
    if not samples:
        return []
    columns: Columns = [(_TIMESTAMP, _timestamps(samples, start_unix))]
    if _present([s.latitude for s in samples]):
        lats, longs = _positions(samples)
        columns += [(_LAT, lats), (_LONG, longs)]
    for name, values in (
        ("heart_rate", [s.heart_rate for s in samples]),
        ("cadence", [None if (c := s.cadence) is None else c * cadence_factor for s in samples]),
        ("power", [s.power for s in samples]),
        ("distance", [s.distance for s in samples]),
        ("enhanced_speed", [s.speed for s in samples]),
        ("enhanced_altitude", [s.altitude for s in samples]),
        ("grade", [s.incline for s in samples]),
        (
            "resistance",
            [None if (r := s.resistance) is None else r * _PER_PERCENT for s in samples],
        ),
    ):
        if _present(values):
            spec = field_spec(_R, name)
            columns.append((spec, spec.column(values)))
            if name in _NARROW:
                narrow = _NARROW[name]
                columns.append((narrow, narrow.narrow(spec, columns[-1][1])))
    # A field every value of which was dropped as unrepresentable is left out entirely.
    return [(spec, col) for spec, col in columns if col.count(spec.invalid) != len(col)]


def records(columns: Columns) -> bytes:
    """One definition message and one data message per row of ``columns``."""
    if not columns or not columns[0][1]:
        return b""
    definition = struct.pack(
        "<BBBHB", _DEFINITION | RECORD_LOCAL_NUM, 0, 0, MESG_NUM[_R], len(columns)
    ) + b"".join(struct.pack("BBB", spec.num, spec.size, spec.base_type) for spec, _ in columns)
    pack = struct.Struct("<B" + "".join(spec.struct_code for spec, _ in columns)).pack
    count = len(columns[0][1])
    # map() over the columns packs each row in C: no per-record Python frame.
    data = b"".join(map(pack, repeat(RECORD_LOCAL_NUM, count), *(col for _, col in columns)))
    return definition + data
