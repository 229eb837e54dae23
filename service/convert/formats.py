"""The output formats and the one entry point that converts a bundle into files."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from service.convert.fit import dump_fit
from service.convert.gpx import dump_gpx
from service.convert.json_format import dump_json
from service.convert.model import Activity
from service.convert.peloton import parse_bundle
from service.convert.tcx import dump_tcx
from service.errors import UnsupportedFormat


class Format(StrEnum):
    TCX = "tcx"
    GPX = "gpx"
    FIT = "fit"
    JSON = "json"


@dataclass(frozen=True)
class FormatInfo:
    extension: str
    content_type: str
    binary: bool
    writer: Callable[[Activity], bytes]


FORMATS: dict[Format, FormatInfo] = {
    Format.TCX: FormatInfo("tcx", "application/vnd.garmin.tcx+xml", False, dump_tcx),
    Format.GPX: FormatInfo("gpx", "application/gpx+xml", False, dump_gpx),
    Format.FIT: FormatInfo("fit", "application/vnd.ant.fit", True, dump_fit),
    Format.JSON: FormatInfo("json", "application/json", False, dump_json),
}


def can_write(fmt: str, has_gps: bool) -> bool:
    """Whether a workout can be written as ``fmt``: GPX needs a GPS track, the rest always.

    The one home of that rule: conversion, matching, replays and the API all ask here.
    """
    return fmt != Format.GPX or has_gps


def possible_formats(activity: Activity) -> list[Format]:
    """Every format this activity can be written in (GPX needs a GPS track)."""
    return [f for f in Format if can_write(f, activity.has_gps)]


def render(activity: Activity, fmt: Format) -> bytes:
    """One file's bytes; raises :class:`UnsupportedFormat` when impossible (GPX without GPS)."""
    if not can_write(fmt, activity.has_gps):
        raise UnsupportedFormat("workout has no GPS track; use tcx or fit")
    return FORMATS[fmt].writer(activity)


def render_all(activity: Activity, formats: Iterable[Format] | None = None) -> dict[Format, bytes]:
    """Every requested (default: every possible) format; impossible ones are skipped."""
    wanted = possible_formats(activity) if formats is None else list(formats)
    return {f: render(activity, f) for f in wanted if can_write(f, activity.has_gps)}


def convert_bundle(bundle: bytes | str | dict[str, Any], fmt: Format) -> bytes:
    """Parse a Peloton workout bundle and write it in ``fmt``."""
    return render(parse_bundle(bundle), fmt)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

#: The mode of every workout file pelosync writes (``convert -o``, the folder export): readable
#: by the other programs that pick the files up (a sync client, a NAS share, an analysis tool);
#: they hold no secret. Set explicitly, so the result does not depend on the writer's umask
#: (and not 0600, which the temporary files the writes go through start with).
FILE_MODE = 0o644


def file_name(start: datetime, discipline: str, title: str, workout_id: str, fmt: str) -> str:
    """A safe, stable file name: ``2026-03-14_cycling_20-min-Pop-Ride_<id8>.tcx``.

    The one name of a workout's file everywhere: ``pelosync convert``, the API's downloads and
    signed links (``Content-Disposition``), webhook payloads (``filename``), uploads to the
    fitness services and the folder export's ``{filename}``. The date is the start's, in UTC.
    """
    safe_title = _UNSAFE.sub("-", title).strip("-")[:60] or "workout"
    return f"{start:%Y-%m-%d}_{discipline}_{safe_title}_{workout_id[:8]}.{fmt}"


def filename(activity: Activity, fmt: Format) -> str:
    return file_name(
        activity.start,
        activity.discipline.value,
        activity.title,
        activity.source.workout_id,
        fmt.value,
    )
