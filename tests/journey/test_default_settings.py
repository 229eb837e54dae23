"""A first day with default settings: every full-length workout of every discipline reaches
every destination (the documented receivers included), and every file is valid and whole."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.cli import PELOSYNC
from tests.journey.conftest import ALL_FORMATS, NODE_RECEIVERS, PYTHON_RECEIVERS, WORKOUTS, Journey
from tests.journey.files import check, content


def _expected(journey: Journey, formats: list[str]) -> set[tuple[str, str]]:
    """(Peloton workout id, format) pairs a destination taking ``formats`` should get."""
    return {
        (w["peloton_workout_id"], fmt)
        for w in journey.workouts
        for fmt in formats
        if fmt != "gpx" or w["has_gps"]
    }


def _by_peloton_id(journey: Journey) -> dict[str, dict[str, Any]]:
    return {w["peloton_workout_id"]: w for w in journey.workouts}


def _node(journey: Journey) -> None:
    if journey.node_skip:
        pytest.skip(f"the Node receivers need node: {journey.node_skip}")


def test_every_workout_of_every_discipline_is_synced_whole(journey: Journey) -> None:
    assert sorted(w["peloton_workout_id"] for w in journey.workouts) == sorted(
        a["id"] for a in journey.added
    )
    assert Counter(w["discipline"] for w in journey.workouts) == Counter(
        {
            "cycling": 3,
            "running": 1,
            "walking": 1,
            "rowing": 1,
            "strength": 1,
            "yoga": 1,
            "meditation": 1,
        }  # fmt: skip
    )
    assert sorted(w["duration_s"] for w in journey.workouts) == sorted(s for _, s, _ in WORKOUTS)
    assert sum(w["has_gps"] for w in journey.workouts) == 2


def test_the_operator_sees_a_clean_log_and_the_account_listed(journey: Journey) -> None:
    assert "Traceback" not in journey.serve_log
    assert "[error" not in journey.serve_log, journey.serve_log[-3000:]
    listing = subprocess.run(
        [*PELOSYNC, "account", "list"], env=journey.env, capture_output=True, text=True, timeout=60
    )
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split()[:5] == ["ID", "LABEL", "STATUS", "POLLING", "WORKOUTS"]
    assert row.split()[:5] == ["1", "Journey", "active", "polling", str(len(WORKOUTS))]


def test_every_delivery_succeeds_with_default_settings(journey: Journey) -> None:
    names = {d["id"]: name for name, d in journey.destinations.items()}
    titles = {w["id"]: f"{w['title']} ({w['duration_s'] / 60:.0f} min)" for w in journey.workouts}
    failed = [
        f"{names[d['destination_id']]} {d['format']} of {titles[d['workout_id']]}: "
        f"{d['state']} after {d['attempts']} attempt(s): {d['last_error']}"
        for d in journey.deliveries
        if d["state"] != "succeeded"
    ]
    shown = "\n".join(failed[:12]) + ("\n..." if len(failed) > 12 else "")
    assert not failed, f"{len(failed)} of {len(journey.deliveries)} deliveries:\n{shown}"
    expected = {name: _expected(journey, d["formats"]) for name, d in journey.destinations.items()}
    assert len(journey.deliveries) == sum(len(pairs) for pairs in expected.values())


def test_the_standardwebhooks_receiver_gets_every_file_valid(journey: Journey) -> None:
    """The Python receiver of docs/destinations.md, with the `standardwebhooks` library."""
    receiver = journey.receivers["python-standardwebhooks"]
    workouts = _by_peloton_id(journey)
    got: set[tuple[str, str]] = set()
    for accepted in receiver.accepted:
        event = accepted.payload
        assert event["type"] == "workout.synced"
        workout = workouts[event["data"]["workout"]["peloton_workout_id"]]
        for file in event["data"]["files"]:
            check(file["format"], content(file), workout)
            got.add((workout["peloton_workout_id"], file["format"]))
    assert got == _expected(journey, ALL_FORMATS)


def _digests(journey: Journey) -> dict[tuple[str, str], str]:
    """sha256 of every file the reference receiver verified, by (workout, format)."""
    return {
        (a.payload["data"]["workout"]["peloton_workout_id"], f["format"]): f["sha256"]
        for a in journey.receivers["python-standardwebhooks"].accepted
        for f in a.payload["data"]["files"]
    }


def test_the_standard_library_receiver_verifies_the_same_files(journey: Journey) -> None:
    receiver = journey.receivers["python-stdlib"]
    got = {
        (a.payload["data"]["workout"]["peloton_workout_id"], f["format"]): hashlib.sha256(
            content(f)
        ).hexdigest()
        for a in receiver.accepted
        for f in a.payload["data"]["files"]
    }
    assert set(got) == _expected(journey, ALL_FORMATS)
    assert got == {k: v for k, v in _digests(journey).items() if k in got}


@pytest.mark.parametrize("name", NODE_RECEIVERS)
def test_the_node_receivers_verify_every_file(journey: Journey, name: str) -> None:
    _node(journey)
    events = [e for e in journey.receivers[name].events() if e["type"] == "workout.synced"]
    reference = _digests(journey)
    ids = {d["message_id"]: d for d in journey.deliveries}
    workouts = {w["id"]: w["peloton_workout_id"] for w in journey.workouts}
    got: dict[tuple[str, str], str] = {}
    for event in events:
        delivery = ids[event["id"]]
        for file in event["files"]:
            if file["sha256"] is None:  # a link: fetched and checked like the others
                file["sha256"] = hashlib.sha256(
                    httpx.get(file["url"], timeout=60).content
                ).hexdigest()
            got[(workouts[delivery["workout_id"]], file["format"])] = file["sha256"]
    assert set(got) == _expected(journey, ALL_FORMATS)
    assert got == {k: v for k, v in reference.items() if k in got}


def test_the_folder_holds_every_file_valid(journey: Journey) -> None:
    files = sorted(p for p in journey.exports.rglob("*") if p.is_file())
    got = set()
    for path in files:
        # The default template names a file after its workout's title.
        (workout,) = [w for w in journey.workouts if _letters(w["title"]) in _letters(path.name)]
        fmt = path.suffix.lstrip(".")
        check(fmt, path.read_bytes(), workout)
        got.add((workout["peloton_workout_id"], fmt))
    assert len(files) == len(got)
    assert got == _expected(journey, ALL_FORMATS)


def _letters(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def test_strava_and_intervals_get_every_fit_file_valid(journey: Journey) -> None:
    by_file = {
        "strava": [u.data for u in journey.strava.upload_list],
        "intervals": [a.data for a in journey.intervals.activities.values()],
        "runalyze": [u.data for u in journey.runalyze.uploads.values()],
    }
    # Every service gets the FIT file the webhook announced for that workout, whole and valid.
    workouts = _by_peloton_id(journey)
    announced = {
        f["sha256"]: workouts[a.payload["data"]["workout"]["peloton_workout_id"]]
        for a in journey.receivers["python-standardwebhooks"].accepted
        for f in a.payload["data"]["files"]
        if f["format"] == "fit"
    }
    for name, uploads in by_file.items():
        assert len(uploads) == len(journey.workouts), name
        got = set()
        for data in uploads:
            workout = announced[hashlib.sha256(data).hexdigest()]
            check("fit", data, workout)
            got.add(workout["id"])
        assert len(got) == len(journey.workouts), name
    assert journey.strava.problems == []
    # Runalyze's (fake) import decoded every file strictly and named an activity for each.
    assert {u.status for u in journey.runalyze.uploads.values()} == {"successfully imported"}


def test_a_receiver_refusing_big_bodies_gets_links_instead(journey: Journey) -> None:
    """Express at its default 100 KB body limit answers 413 to bigger files: each is sent again
    at once as a link (the receiver is on the service's network: no public URL needed), and the
    webhook remembers a smaller inline limit."""
    _node(journey)
    events = [
        e for e in journey.receivers["node-express-100kb"].events() if e["type"] == "workout.synced"
    ]
    files = [f for e in events for f in e["files"]]
    linked = [f for f in files if f["url"]]
    assert linked and len(linked) < len(files)
    assert all(f["size"] > 50_000 for f in linked)
    destination = journey.api.get(
        f"/v1/destinations/{journey.destinations['node-express-100kb']['id']}"
    )
    assert 0 < destination.json()["config"]["inline_max_bytes"] < 100_000


@pytest.mark.parametrize("name", PYTHON_RECEIVERS + NODE_RECEIVERS)
def test_the_documented_receivers_refuse_a_forged_signature(journey: Journey, name: str) -> None:
    if name in NODE_RECEIVERS:
        _node(journey)
    body = b'{"type":"workout.synced","timestamp":"2026-12-01T00:00:00.000Z","data":{}}'
    msg_id, stamp = "msg_forged", str(int(time.time()))
    wrong = base64.b64encode(
        hmac.digest(b"not the secret", f"{msg_id}.{stamp}.".encode() + body, "sha256")
    ).decode()
    answer = httpx.post(
        journey.receivers[name].url,
        content=body,
        headers={
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": f"v1,{wrong}",
        },
        timeout=30,
    )
    assert answer.status_code == 401
