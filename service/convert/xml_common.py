"""Helpers shared by the XML writers (``tcx`` and ``gpx``).

Both writers are deterministic: floats are written with a fixed precision, times as UTC with a
trailing ``Z`` and never more sub-second digits than the value has.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

from service.convert.model import Activity, Discipline, Sample, Stats
from service.errors import ConversionError

_ZERO = timedelta(0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS = tuple(f"{n:02d}" for n in range(60))

# Characters XML 1.0 forbids even when escaped (C0 controls other than tab/LF/CR, lone
# surrogates, U+FFFE/U+FFFF): a title holding one would make the whole document unreadable.
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

CYCLING_LIKE = frozenset({Discipline.CYCLING, Discipline.BIKE_BOOTCAMP})
RUNNING_LIKE = frozenset({Discipline.RUNNING, Discipline.WALKING, Discipline.TREAD_BOOTCAMP})

_SAMPLE_FLOATS = ("power", "cadence", "speed", "distance", "latitude", "longitude", "altitude")


def utc_iso(t: datetime) -> str:
    """``2026-03-14T15:09:26Z``; fractional seconds kept without trailing zeros (``26.5Z``)."""
    if t.utcoffset() != _ZERO:
        t = t.astimezone(UTC)
    s = t.replace(tzinfo=None).isoformat()
    if t.microsecond:
        s = s.rstrip("0")
    return s + "Z"


class UtcFormatter:
    """:func:`utc_iso` for thousands of nearby times, about three times faster.

    ``datetime.isoformat`` on an aware time costs ~1 µs (it calls ``utcoffset`` and formats
    every field); here each time is reduced to whole seconds since ``ref`` (a subtraction, cheap
    for times in ``datetime.UTC``) and the ``YYYY-MM-DDTHH:MM:`` prefix is formatted once a
    minute.
    """

    def __init__(self, ref: datetime) -> None:
        # In UTC: subtracting two times that share a tzinfo ignores it, which is wrong across a
        # DST change; datetime.UTC (what the parser uses) keeps the fast path and is exact.
        self._ref = ref = ref.astimezone(UTC)
        delta = ref - _EPOCH
        self._ref_s = delta.days * 86400 + delta.seconds
        self._ref_us = delta.microseconds
        self._minutes: dict[int, str] = {}

    def __call__(self, t: datetime) -> str:
        return self.many([t])[0]

    def many(self, times: Iterable[datetime]) -> list[str]:
        """Format each time (one call for a whole column saves a call per time)."""
        ref, ref_s, ref_us, minutes, seconds = (
            self._ref,
            self._ref_s,
            self._ref_us,
            self._minutes,
            _SECONDS,
        )
        out: list[str] = []
        add = out.append
        for t in times:
            delta = t - ref
            us = ref_us + delta.microseconds
            secs = ref_s + delta.days * 86400 + delta.seconds + us // 1_000_000
            minute, sec = divmod(secs, 60)
            prefix = minutes.get(minute)
            if prefix is None:
                when = _EPOCH + timedelta(minutes=minute)
                prefix = minutes[minute] = when.replace(tzinfo=None).isoformat()[:-2]
            us %= 1_000_000
            if us:
                add(f"{prefix}{sec:02d}.{us:06d}".rstrip("0") + "Z")
            else:
                add(prefix + seconds[sec] + "Z")
        return out


def text(value: str) -> str:
    """Escape free text for element content, dropping characters XML cannot carry at all."""
    return escape(_NOT_XML_CHAR.sub("", value))


def clean(value: str) -> str:
    """Drop characters XML cannot carry, for libraries (gpxpy) that escape by themselves."""
    return _NOT_XML_CHAR.sub("", value)


def clamp(value: float, lo: int, hi: int) -> int:
    """Round to the nearest integer and cap it into a schema's ``[lo, hi]`` range."""
    n = round(value)
    return lo if n < lo else hi if n > hi else n


def run_cadence(steps_per_minute: float) -> float:
    """Garmin's run cadence (TCX ``RunCadence``, GPX ``cad``) counts one foot: strides, not steps.

    The model stores steps per minute (both feet, as Peloton and Garmin Connect display it), so
    a run at 170 spm is written as 85; Garmin Connect and Strava double it back on import.
    """
    return steps_per_minute / 2


def activity_title(activity: Activity) -> str:
    """The title, followed by ``with <instructor>`` when there is one."""
    if activity.instructor:
        return f"{activity.title} with {activity.instructor}"
    return activity.title


def check_stats(activity: Activity) -> None:
    """Reject a NaN or infinite figure in the summary or a lap, naming where it is.

    Writers call it first, instead of emitting ``nan`` into a document no reader accepts.
    """
    spans: list[tuple[str, Stats]] = [("summary", activity.summary)]
    spans += [(f"lap {i + 1}", lap.stats) for i, lap in enumerate(activity.laps)]
    for where, stats in spans:
        for name, v in stats:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConversionError(f"{where} has a non-finite {name}")


def check_samples(samples: Iterable[Sample]) -> None:
    """Reject NaN/infinite sample values and impossible positions, naming offset and field.

    It costs ~2 ms per hour of 1 Hz data, so writers whose own loop reveals a bad value more
    cheaply (a running sum that is not finite, an error from ``round``) call it only then.
    """
    isfinite = math.isfinite
    for s in samples:
        if not isfinite(s.offset_s):
            raise ConversionError("a sample has a non-finite offset_s")
        values = (s.power, s.cadence, s.speed, s.distance, s.latitude, s.longitude, s.altitude)
        for name, v in zip(_SAMPLE_FLOATS, values, strict=True):
            if v is not None and not isfinite(v):
                raise ConversionError(
                    f"sample at offset {s.offset_s:.10g}s has a non-finite {name}"
                )
        lat, lon = s.latitude, s.longitude
        if (lat is not None and not -90.0 <= lat <= 90.0) or (
            lon is not None and not -180.0 <= lon <= 180.0
        ):
            raise ConversionError(
                f"sample at offset {s.offset_s:.10g}s has an impossible position {lat}, {lon}"
            )
