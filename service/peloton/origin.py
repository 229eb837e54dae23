"""Is this workout from Peloton? The one place that reads a workout document's origin.

Since 2025-10-05 Peloton imports activities from Garmin Connect (and other services) into the
member's Peloton history. A tool that sends every Peloton workout to Garmin then uploads those
activities back as duplicates (peloton-to-garmin issue #791, still open in 2026 with no fix in
its code; #823 and #825 are the same family of loops). pelosync keeps such workouts in its
ledger but, unless the account asks for them, delivers them nowhere.

What the document tells (docs/peloton-account.md, "Workouts Peloton imported"):

* ``platform`` and ``device_type`` say what recorded a workout. Every capture of a workout
  recorded with Peloton carries one of Peloton's own values: ``home_bike``/``home_bike_v1``/
  ``home_bike_v2``, ``home_tread``, ``caesar`` (the Row), ``iOS_app``/``iPhone``, ``android``,
  ``fire_tv``, ``web``... An imported activity was recorded by the other service's device, so a
  value naming that service (``garmin``, ``garmin_connect``, ``strava``, ``apple_health``...)
  marks it, and names where it came from.
* ``service_id`` is present (null) on Peloton-recorded workouts since 2024. What it holds for
  imported ones is not published anywhere we could find, so it is NOT used on its own.

No public capture of an imported workout's document exists (searched: peloton-to-garmin's
issues and code, other Peloton clients). So the rule is deliberately conservative: a workout
is external only when ``platform`` or ``device_type`` clearly names a service other than
Peloton; anything unknown or missing counts as Peloton's (delivered as before). Widen
:data:`EXTERNAL_SERVICES` when a capture shows another value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Services whose activities Peloton imports (or may), by the word that names them in
#: ``platform``/``device_type`` → the name pelosync stores and shows ("imported from garmin").
#: Peloton's own watch apps (Apple Watch, Wear OS) record Peloton workouts: not listed.
EXTERNAL_SERVICES: dict[str, str] = {
    "garmin": "garmin",
    "strava": "strava",
    "apple_health": "apple_health",
    "healthkit": "apple_health",
    "health_connect": "health_connect",
    "google_fit": "google_fit",
    "fitbit": "fitbit",
    "polar": "polar",
    "suunto": "suunto",
    "coros": "coros",
    "wahoo": "wahoo",
    "zwift": "zwift",
}

#: The fields read, in order: the first that names a service wins.
ORIGIN_FIELDS = ("platform", "device_type")

_WORD = re.compile(r"[^a-z0-9]+")


def _service(value: object) -> str | None:
    """The external service ``value`` names, matched on whole words ("garmin_connect",
    "Garmin Connect", "garmin-edge" name Garmin; "garminish" does not)."""
    if not isinstance(value, str):
        return None
    words = [w for w in _WORD.split(value.lower()) if w]
    for key, service in EXTERNAL_SERVICES.items():
        key_words = key.split("_")
        for i in range(len(words) - len(key_words) + 1):
            if words[i : i + len(key_words)] == key_words:
                return service
    return None


def workout_origin(workout: Mapping[str, Any]) -> str | None:
    """The service a workout document was imported from, or ``None`` when it is Peloton's own.

    ``workout`` is the document of ``GET /api/workout/{id}`` (a list item works too).
    """
    for name in ORIGIN_FIELDS:
        service = _service(workout.get(name))
        if service is not None:
            return service
    return None
