"""TCX writer: Garmin TrainingCenterDatabase v2 with the ActivityExtension v2 (``ns3``) data.

The document is built as a list of strings: for a 3,600-sample workout this is several times
faster than building an lxml or ElementTree tree and serialising it, and every piece of free text
goes through :func:`xml_common.text` so escaping stays in one place. Element order follows the
XSD sequences exactly (tests validate every output strictly against the vendored schemas).

Choices the schema leaves open:

* One ``Track`` per lap, even when GPS drops out: a sample without a position is still a
  ``Trackpoint`` (time, heart rate, power...) with no ``Position``, which is how Garmin devices
  record a GPS gap. Several Tracks per lap are legal but readers treat a new Track as a pause.
* A sample before the first lap's start goes to the first lap; the last lap takes every sample
  from its start on. A lap without samples has no ``Track`` (a Track needs one Trackpoint).
* A workout without laps gets one lap spanning it, from the summary (the schema needs a Lap).
* Integers are capped into the schema's range (cadence 0..254, watts 0..65535, heart rate up to
  255); a heart rate below 1 means "no reading" and is omitted. Run cadence is written in
  Garmin's strides per minute (half the model's steps, see :func:`xml_common.run_cadence`).
"""

from __future__ import annotations

import itertools
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from service import __version__
from service.convert.model import Activity, Discipline, Lap, Sample, Stats
from service.convert.xml_common import (
    CYCLING_LIKE,
    RUNNING_LIKE,
    UtcFormatter,
    activity_title,
    check_samples,
    check_stats,
    clamp,
    run_cadence,
    text,
    utc_iso,
)
from service.errors import ConversionError

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"'
    ' xmlns:ns3="http://www.garmin.com/xmlschemas/ActivityExtension/v2"'
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    ' xsi:schemaLocation="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2'
    ' http://www.garmin.com/xmlschemas/TrainingCenterDatabasev2.xsd">\n'
)
# Garmin's pattern is XXX-XXXXX-XX of capitals and digits; pelosync has no part number.
_PART_NUMBER = "000-00000-00"
_U16 = 65535


def dump_tcx(activity: Activity) -> bytes:
    """Write ``activity`` as a TCX document (UTF-8 bytes, deterministic for the same input).

    Raises :class:`service.errors.ConversionError` if a value cannot be written (NaN, a
    latitude outside [-90, 90]...).
    """
    check_stats(activity)
    try:
        return _render(activity).encode("utf-8")
    except (ValueError, OverflowError):  # round() of a NaN or infinite sample value
        check_samples(activity.samples)  # raises, naming the sample and field
        raise


def _render(activity: Activity) -> str:
    out: list[str] = [_HEAD, "<Activities>\n"]
    out.append(f'<Activity Sport="{_sport(activity.discipline)}">\n')
    out.append(f"<Id>{utc_iso(activity.start)}</Id>\n")
    laps = sorted(activity.laps, key=lambda lap: lap.start_offset_s) or [_whole_lap(activity)]
    iso = UtcFormatter(activity.samples[0].time if activity.samples else activity.start)
    running = activity.discipline in RUNNING_LIKE
    for lap, samples in zip(laps, _split(laps, activity.samples), strict=True):
        points = _points(samples, running, iso) if samples else ""
        _write_lap(out, lap, points, activity.discipline)
    out.append(f"<Notes>{text(activity_title(activity))}</Notes>\n")
    out.append(_creator(activity.device.name))
    out.append("</Activity>\n</Activities>\n")
    out.append(_author())
    out.append("</TrainingCenterDatabase>\n")
    return "".join(out)


def _sport(discipline: Discipline) -> str:
    if discipline in CYCLING_LIKE:
        return "Biking"
    if discipline in RUNNING_LIKE:
        return "Running"
    return "Other"


def _whole_lap(activity: Activity) -> Lap:
    stats = Stats.model_validate(activity.summary.model_dump(include=set(Stats.model_fields)))
    return Lap(start_offset_s=0.0, start=activity.start, stats=stats)


def _split(laps: Sequence[Lap], samples: Sequence[Sample]) -> list[list[Sample]]:
    """Samples per lap: lap k holds offsets in [start_k, start_k+1); the first lap also takes
    anything before its start, the last lap anything after."""
    starts = [lap.start_offset_s for lap in laps]
    offsets = [s.offset_s for s in samples]
    if offsets == sorted(offsets):  # the usual case: cut the list at each lap start
        cuts = [0, *(bisect_left(offsets, start) for start in starts[1:]), len(samples)]
        return [list(samples[lo:hi]) for lo, hi in itertools.pairwise(cuts)]
    groups: list[list[Sample]] = [[] for _ in laps]
    for s in samples:
        groups[max(bisect_right(starts, s.offset_s) - 1, 0)].append(s)
    return groups


def _write_lap(out: list[str], lap: Lap, points: str, discipline: Discipline) -> None:
    st = lap.stats
    cycling = discipline in CYCLING_LIKE
    running = discipline in RUNNING_LIKE
    add = out.append
    add(f'<Lap StartTime="{utc_iso(lap.start)}">')
    add(f"<TotalTimeSeconds>{_num(st.duration_s)}</TotalTimeSeconds>")
    add(f"<DistanceMeters>{_num(st.distance_m or 0.0)}</DistanceMeters>")
    if st.max_speed is not None:
        add(f"<MaximumSpeed>{_num(st.max_speed)}</MaximumSpeed>")
    add(f"<Calories>{clamp(st.calories_kcal or 0.0, 0, _U16)}</Calories>")
    for tag, hr in (("Average", st.avg_heart_rate), ("Maximum", st.max_heart_rate)):
        if hr is not None and hr >= 1:
            add(f"<{tag}HeartRateBpm><Value>{min(hr, 255)}</Value></{tag}HeartRateBpm>")
    add("<Intensity>Active</Intensity>")
    if cycling and st.avg_cadence is not None:
        add(f"<Cadence>{clamp(st.avg_cadence, 0, 254)}</Cadence>")
    add("<TriggerMethod>Manual</TriggerMethod>\n")
    if points:
        add(f"<Track>\n{points}</Track>\n")
    if (label := lap.label()) is not None:
        add(f"<Notes>{text(label)}</Notes>")
    lx: list[str] = []
    if st.avg_speed is not None:
        lx.append(f"<ns3:AvgSpeed>{_num(st.avg_speed)}</ns3:AvgSpeed>")
    if cycling and st.max_cadence is not None:
        lx.append(f"<ns3:MaxBikeCadence>{clamp(st.max_cadence, 0, 254)}</ns3:MaxBikeCadence>")
    if running:
        for tag, cad in (("Avg", st.avg_cadence), ("Max", st.max_cadence)):
            if cad is not None:
                value = clamp(run_cadence(cad), 0, 254)
                lx.append(f"<ns3:{tag}RunCadence>{value}</ns3:{tag}RunCadence>")
    for tag, watts in (("Avg", st.avg_power), ("Max", st.max_power)):
        if watts is not None:
            lx.append(f"<ns3:{tag}Watts>{clamp(watts, 0, _U16)}</ns3:{tag}Watts>")
    if lx:
        add(f"<Extensions><ns3:LX>{''.join(lx)}</ns3:LX></Extensions>")
    add("</Lap>\n")


def _points(samples: list[Sample], running: bool, iso: UtcFormatter) -> str:
    """The hot loop: one Trackpoint per sample, each element only when its value exists.

    Kept flat (inlined range caps, one string per Trackpoint) because it runs 3,600 times for an
    hour of 1 Hz data.
    """
    out: list[str] = []
    add = out.append
    total = 0.0  # sum of every float written: finite unless one of them is NaN or infinite
    for s, time in zip(samples, iso.many([s.time for s in samples]), strict=True):
        p = f"<Trackpoint><Time>{time}</Time>"
        lat, lon = s.latitude, s.longitude
        if lat is not None and lon is not None:
            if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
                raise ConversionError(
                    f"sample at offset {s.offset_s:.10g}s has an impossible position {lat}, {lon}"
                )
            total += lat + lon
            if lon == 180.0:  # same meridian; the schema's range excludes +180
                lon = -180.0
            p += (
                f"<Position><LatitudeDegrees>{lat:.7f}</LatitudeDegrees>"
                f"<LongitudeDegrees>{lon:.7f}</LongitudeDegrees></Position>"
            )
        alt, dist = s.altitude, s.distance
        if alt is not None:
            total += alt
            p += f"<AltitudeMeters>{alt:.2f}</AltitudeMeters>"
        if dist is not None:
            total += dist
            p += f"<DistanceMeters>{dist:.2f}</DistanceMeters>"
        hr = s.heart_rate
        if hr is not None and hr >= 1:
            p += f"<HeartRateBpm><Value>{hr if hr < 255 else 255}</Value></HeartRateBpm>"
        cad = s.cadence
        if cad is not None and running:
            cad = run_cadence(cad)
        elif cad is not None:
            c = round(cad)
            p += f"<Cadence>{c if 0 <= c <= 254 else 0 if c < 0 else 254}</Cadence>"
            cad = None
        speed, power = s.speed, s.power
        if speed is not None or cad is not None or power is not None:
            p += "<Extensions><ns3:TPX>"
            if speed is not None:
                total += speed
                p += f"<ns3:Speed>{speed:.3f}</ns3:Speed>"
            if cad is not None:
                c = round(cad)
                p += f"<ns3:RunCadence>{c if 0 <= c <= 254 else 0 if c < 0 else 254}"
                p += "</ns3:RunCadence>"
            if power is not None:
                w = round(power)
                p += f"<ns3:Watts>{w if 0 <= w <= _U16 else 0 if w < 0 else _U16}</ns3:Watts>"
            p += "</ns3:TPX></Extensions>"
        add(p + "</Trackpoint>\n")
    if not math.isfinite(total):  # cadence and power went through round(), which raises
        check_samples(samples)
    return "".join(out)


def _num(value: float) -> str:
    """A lap figure: at most 3 decimals, trailing zeros dropped (``600``, ``12.5``)."""
    s = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def _version() -> tuple[int, int, int, int]:
    """``service.__version__`` as TCX's (VersionMajor, VersionMinor, BuildMajor, BuildMinor)."""
    nums = [min(int(n), _U16) for n in re.findall(r"\d+", __version__)[:3]]
    nums += [0] * (4 - len(nums))
    return nums[0], nums[1], nums[2], nums[3]


def _creator(device_name: str) -> str:
    return (
        '<Creator xsi:type="Device_t">'
        f"<Name>{text(device_name)}</Name><UnitId>0</UnitId><ProductID>0</ProductID>"
        "<Version><VersionMajor>1</VersionMajor><VersionMinor>0</VersionMinor></Version>"
        "</Creator>\n"
    )


def _author() -> str:
    major, minor, build_major, build_minor = _version()
    return (
        '<Author xsi:type="Application_t"><Name>pelosync</Name><Build><Version>'
        f"<VersionMajor>{major}</VersionMajor><VersionMinor>{minor}</VersionMinor>"
        f"<BuildMajor>{build_major}</BuildMajor><BuildMinor>{build_minor}</BuildMinor>"
        f"</Version></Build><LangID>en</LangID><PartNumber>{_PART_NUMBER}</PartNumber>"
        "</Author>\n"
    )
