"""Checking a delivered file as the converter tests do: schema-valid, decodable, and the whole
workout (not a truncated one)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
from lxml import etree

from service.convert.model import Activity
from tests.convert.fitcheck import decode
from tests.convert.xsd import validate_gpx, validate_tcx

#: Seconds a file's span may differ from the workout's (the first sample's offset).
SLACK_S = 10


def content(file: dict[str, Any]) -> bytes:
    """A webhook file's bytes: inline, or fetched from its download link (checked against
    the size and sha256 the payload announces)."""
    if file.get("content_base64") is not None:
        data = base64.b64decode(file["content_base64"], validate=True)
    else:
        answer = httpx.get(file["url"], timeout=60)
        assert answer.status_code == 200, (file["url"], answer.status_code, answer.text[:200])
        data = answer.content
    assert len(data) == file["size"]
    assert hashlib.sha256(data).hexdigest() == file["sha256"]
    return data


#: Files already checked, by (format, sha256, workout): every destination gets the same bytes,
#: and decoding a 5-hour FIT with both decoders takes seconds.
_CHECKED: set[tuple[str, str, int]] = set()


def check(fmt: str, data: bytes, workout: dict[str, Any]) -> None:
    """``data`` is a valid ``fmt`` file of all of ``workout`` (as the API lists it)."""
    key = (fmt, hashlib.sha256(data).hexdigest(), workout["id"])
    if key not in _CHECKED:
        _check(fmt, data, workout)
        _CHECKED.add(key)


def _check(fmt: str, data: bytes, workout: dict[str, Any]) -> None:
    duration = workout["duration_s"]
    if fmt == "tcx":
        validate_tcx(data)
        total = float(etree.fromstring(data).findtext(".//{*}Lap/{*}TotalTimeSeconds") or 0)
        assert total > 0 or duration == 0
    elif fmt == "gpx":
        validate_gpx(data)
        points = etree.fromstring(data).findall(".//{*}trkpt")
        assert len(points) >= 0.9 * duration, (len(points), duration)  # 1 Hz, all of it
    elif fmt == "fit":
        fit = decode(data)
        session = fit.one("session")
        assert abs(session["total_elapsed_time"] - duration) <= SLACK_S, (session, duration)
    else:
        activity = Activity.model_validate_json(data)
        assert activity.title == workout["title"]
        span = (activity.end - activity.start).total_seconds()
        assert abs(span - duration) <= SLACK_S, (span, duration)
        if activity.samples:
            assert activity.samples[-1].offset_s >= duration - SLACK_S
        if workout["has_gps"]:
            located = sum(1 for s in activity.samples if s.latitude is not None)
            assert located >= 0.9 * duration, (located, duration)
