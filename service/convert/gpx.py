"""GPX 1.1 writer, for workouts with a GPS track.

One ``<trk>`` named after the workout, one ``<trkseg>`` per stretch of positioned samples: a new
segment starts when ``track_segment`` changes or when samples without a position come between
positioned ones. Only positioned samples become ``<trkpt>``. Heart rate, cadence and speed go in
Garmin's TrackPointExtension v2 and power in Garmin's PowerExtension v1 (``PowerInWatts``), the
schema-valid forms Strava and Garmin Connect read (a bare ``<power>`` would not validate).
Integers are capped into the schema ranges as in the TCX writer, and run cadence is written in
strides per minute (see :func:`xml_common.run_cadence`).

gpxpy writes the document: root element, namespaces, metadata, track and its segments. The
``<trkpt>`` elements are rendered here and placed into gpxpy's (empty) ``<trkseg>`` elements,
because gpxpy's serialiser walks ~25 generic fields per point: an hour of 1 Hz points costs it
~30 ms without extensions and ~65 ms with them, against ~10 ms for this whole writer (figures
from ``benchmarks/bench_xml_writers.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import gpxpy.gpx

from service.convert.model import Activity, Sample
from service.convert.xml_common import (
    RUNNING_LIKE,
    UtcFormatter,
    check_samples,
    check_stats,
    clean,
    run_cadence,
)
from service.errors import ConversionError, UnsupportedFormat

_TPX_NS = "http://www.garmin.com/xmlschemas/TrackPointExtension/v2"
_PWR_NS = "http://www.garmin.com/xmlschemas/PowerExtension/v1"
_SCHEMA_LOCATIONS = [
    "http://www.topografix.com/GPX/1/1",
    "http://www.topografix.com/GPX/1/1/gpx.xsd",
    _TPX_NS,
    "http://www.garmin.com/xmlschemas/TrackPointExtensionv2.xsd",
    _PWR_NS,
    "http://www.garmin.com/xmlschemas/PowerExtensionv1.xsd",
]
_SEGMENT_END = "</trkseg>"


def dump_gpx(activity: Activity) -> bytes:
    """Write ``activity`` as a GPX 1.1 document (UTF-8 bytes, deterministic).

    Raises :class:`service.errors.UnsupportedFormat` when no sample has a position, and
    :class:`service.errors.ConversionError` for a value that cannot be written (NaN...).
    """
    if not activity.has_gps:
        raise UnsupportedFormat("workout has no GPS track; use tcx or fit")
    check_stats(activity)
    runs = list(_segments(activity.samples))
    running = activity.discipline in RUNNING_LIKE
    iso = UtcFormatter(runs[0][0].time)
    try:
        points = [_points(run, running, iso) for run in runs]
    except (ValueError, OverflowError):  # round() of a NaN or infinite sample value
        check_samples(activity.samples)  # raises, naming the sample and field
        raise

    skeleton = _document(activity, len(runs)).split(_SEGMENT_END)
    # gpxpy escapes all text, so "</trkseg>" can only be the segments' own closing tags
    if len(skeleton) != len(runs) + 1:
        raise RuntimeError("gpxpy wrote an unexpected number of track segments")
    out = [skeleton[0]]
    for pts, rest in zip(points, skeleton[1:], strict=True):
        out += [pts, _SEGMENT_END, rest]
    out.append("\n")
    return "".join(out).encode("utf-8")


def _document(activity: Activity, segments: int) -> str:
    """Everything but the points, written by gpxpy: ``segments`` empty ``<trkseg>``."""
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "pelosync"
    gpx.name = clean(activity.title)
    gpx.time = _utc(activity.start)
    gpx.nsmap = {"gpxtpx": _TPX_NS, "gpxpx": _PWR_NS}
    gpx.schema_locations = list(_SCHEMA_LOCATIONS)
    track = gpxpy.gpx.GPXTrack(name=clean(activity.title))
    track.type = activity.discipline.value  # type: ignore[assignment]  # gpxpy types it as None
    track.segments = [gpxpy.gpx.GPXTrackSegment() for _ in range(segments)]
    gpx.tracks.append(track)
    xml: str = gpx.to_xml(version="1.1", prettyprint=False)
    return xml


def _utc(t: datetime) -> datetime:
    """gpxpy writes ``isoformat()`` with ``+00:00`` made ``Z``: hand it UTC times only."""
    return t if t.tzinfo is UTC else t.astimezone(UTC)


def _segments(samples: Sequence[Sample]) -> Iterator[list[Sample]]:
    """Runs of positioned samples, split where track_segment changes or positions stop."""
    run: list[Sample] = []
    for s in samples:
        if not s.has_position:
            if run:
                yield run
                run = []
        elif run and s.track_segment != run[-1].track_segment:
            yield run
            run = [s]
        else:
            run.append(s)
    if run:
        yield run


def _points(samples: list[Sample], running: bool, iso: UtcFormatter) -> str:
    """The hot loop: one ``<trkpt>`` per positioned sample, kept flat as in the TCX writer."""
    out: list[str] = []
    add = out.append
    total = 0.0  # sum of every float written: finite unless one of them is NaN or infinite
    for s, time in zip(samples, iso.many([s.time for s in samples]), strict=True):
        lat, lon = s.latitude, s.longitude
        # _segments keeps positioned samples only
        assert lat is not None
        assert lon is not None
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise ConversionError(
                f"sample at offset {s.offset_s:.10g}s has an impossible position {lat}, {lon}"
            )
        if lon == 180.0:  # same meridian; the schema's range excludes +180
            lon = -180.0
        p = f'<trkpt lat="{lat:.7f}" lon="{lon:.7f}">'
        if s.altitude is not None:
            total += s.altitude
            p += f"<ele>{s.altitude:.2f}</ele>"
        p += f"<time>{time}</time>"
        hr, cad, speed, power = s.heart_rate, s.cadence, s.speed, s.power
        if hr is not None and hr < 1:
            hr = None
        if hr is not None or cad is not None or speed is not None or power is not None:
            p += "<extensions>"
            if hr is not None or cad is not None or speed is not None:
                p += "<gpxtpx:TrackPointExtension>"
                if hr is not None:
                    p += f"<gpxtpx:hr>{hr if hr < 255 else 255}</gpxtpx:hr>"
                if cad is not None:
                    c = round(run_cadence(cad) if running else cad)
                    p += f"<gpxtpx:cad>{c if 0 <= c <= 254 else 0 if c < 0 else 254}</gpxtpx:cad>"
                if speed is not None:
                    total += speed
                    p += f"<gpxtpx:speed>{speed:.3f}</gpxtpx:speed>"
                p += "</gpxtpx:TrackPointExtension>"
            if power is not None:
                w = round(power)
                p += f"<gpxpx:PowerInWatts>{w if 0 <= w <= 65535 else 0 if w < 0 else 65535}"
                p += "</gpxpx:PowerInWatts>"
            p += "</extensions>"
        add(p + "</trkpt>\n")
    if not math.isfinite(total):  # cadence and power went through round(), which raises
        check_samples(samples)
    return "".join(out)
