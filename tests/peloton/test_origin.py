"""Which workout documents come from Peloton (service/peloton/origin.py)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from service.peloton.auth import grant_refused
from service.peloton.errors import NeedsReauthentication
from service.peloton.origin import EXTERNAL_SERVICES, workout_origin
from service.peloton.sandbox import generate_bundle

#: Values Peloton's own devices and apps put in ``platform`` / ``device_type`` (captures and
#: docs/peloton-account.md): every combination is Peloton's.
PELOTON_PLATFORMS = ("home_bike", "home_tread", "caesar", "iOS_app", "android", "web", None, "")
PELOTON_DEVICES = ("home_bike_v1", "home_bike_v2", "home_tread", "caesar", "iPhone", "android",
                   "fire_tv", "apple_watch", None, 7)  # fmt: skip
EXTERNAL = ("garmin", "garmin_connect", "Garmin Connect", "GARMIN-EDGE", "strava",
            "apple_health", "Apple Health", "healthkit", "health_connect", "fitbit")  # fmt: skip


@pytest.mark.parametrize(
    ("platform", "device_type"), list(itertools.product(PELOTON_PLATFORMS, PELOTON_DEVICES))
)
def test_every_combination_of_pelotons_own_values_is_peloton(
    platform: Any, device_type: Any
) -> None:
    assert workout_origin({"platform": platform, "device_type": device_type}) is None


@pytest.mark.parametrize("value", EXTERNAL)
@pytest.mark.parametrize("field", ["platform", "device_type"])
@pytest.mark.parametrize("other", ["home_bike", None])
def test_a_field_naming_another_service_marks_the_workout(
    value: str, field: str, other: str | None
) -> None:
    doc = {"platform": other, "device_type": other, field: value}
    assert workout_origin(doc) in set(EXTERNAL_SERVICES.values())


def test_the_origin_names_the_service() -> None:
    assert workout_origin({"platform": "garmin_connect"}) == "garmin"
    assert workout_origin({"device_type": "Apple Health"}) == "apple_health"
    assert workout_origin({"device_type": "healthkit"}) == "apple_health"
    # platform is read first
    assert workout_origin({"platform": "strava", "device_type": "garmin"}) == "strava"


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"platform": "garminish"},  # a word containing a name is not the name
        {"platform": "stravaganza"},
        {"service_id": "abc123"},  # unknown meaning: not used on its own
        {"platform": ["garmin"]},  # not a string
        {"device_type_display_name": "Garmin"},  # display names are not read
        {"ride": {"content_provider": "garmin"}},
    ],
)
def test_unknown_or_unclear_fields_count_as_peloton(doc: dict[str, Any]) -> None:
    assert workout_origin(doc) is None


def test_the_sandbox_generates_garmin_imported_runs() -> None:
    bundle = generate_bundle(3, "outdoor_just_run_garmin")
    assert workout_origin(bundle["workout"]) == "garmin"
    assert workout_origin(generate_bundle(3, "outdoor_run")["workout"]) is None


@pytest.mark.parametrize(
    ("code", "description", "refused"),
    [
        ("unauthorized_client", "Grant type 'password' not allowed for the client.", True),
        ("invalid_grant", "Grant type 'password' is disabled for this client.", True),
        ("invalid_grant", "unsupported grant_type for this client", True),
        ("invalid_grant", "Wrong email or password.", False),
        ("invalid_grant", "Unknown or invalid refresh token.", False),
        ("access_denied", "Unauthorized", False),
        ("too_many_attempts", "blocked", False),
        (None, "", False),
    ],
)
def test_grant_refused_tells_a_refused_grant_from_a_refused_password(
    code: str | None, description: str, refused: bool
) -> None:
    exc = NeedsReauthentication(f"password login was refused by Peloton ({code}: {description})",
                                error_code=code)  # fmt: skip
    assert grant_refused(exc) is refused
