"""The journey: a fresh install with default settings, run as a user runs it.

``pelosync sandbox`` (a Peloton with full-length workouts of every discipline), ``pelosync
serve`` and ``pelosync account link`` are real processes; the destinations are the receivers of
docs/destinations.md (Python and Node), a folder, and the Strava, intervals.icu and Runalyze
fakes. One
journey per test module (module-scoped), so each module pays for one sync.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.cli import PELOSYNC, clean_env, free_port
from tests.destinations.fakes import fake_intervals, fake_runalyze, fake_strava
from tests.journey.processes import Process, read_json, running
from tests.journey.receivers import Receiver, node_missing, node_receiver, python_receiver
from tests.support.servers import serve as serve_fake

#: Full-length workouts of every discipline: (sandbox kind, seconds, heart-rate strap).
WORKOUTS: list[tuple[str, int, bool | None]] = [
    ("cycling_class", 60 * 60, True),
    ("cycling_class", 3 * 3600, True),
    ("outdoor_just_ride", 5 * 3600, True),  # GPS at 1 Hz
    ("tread_run", 45 * 60, True),
    ("outdoor_walk", 45 * 60, None),  # GPS at 1 Hz
    ("rowing", 30 * 60, True),
    ("strength", 30 * 60, False),  # no metrics at all
    ("yoga", 30 * 60, None),
    ("meditation", 10 * 60, None),
]
ALL_FORMATS = ["tcx", "gpx", "fit", "json"]
PYTHON_RECEIVERS = ("python-standardwebhooks", "python-stdlib")
NODE_RECEIVERS = ("node-express", "node-stdlib", "node-express-100kb")
#: Generous for 2 busy cores; a journey takes about a minute on a quiet machine.
SETTLE_TIMEOUT_S = 360


@dataclass
class Journey:
    api: httpx.Client
    data_dir: Path
    exports: Path
    receivers: dict[str, Receiver]
    node_skip: str | None
    strava: fake_strava.FakeStrava
    intervals: fake_intervals.FakeIntervals
    runalyze: fake_runalyze.FakeRunalyze
    #: The sandbox's workouts as its admin API describes them.
    added: list[dict[str, Any]]
    destinations: dict[str, dict[str, Any]] = field(default_factory=dict)
    workouts: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    serve_log: str = ""
    #: The environment every `pelosync` command of the journey ran with.
    env: dict[str, str] = field(default_factory=dict)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _all(api: httpx.Client, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.get(path, params={"limit": 200, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


def _create(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post("/v1/destinations", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _connect_strava(api: httpx.Client, destination_id: int, fake: fake_strava.FakeStrava) -> None:
    """The athlete's side of Strava's OAuth: approve, and Strava redirects to the callback."""
    redirect = api.get(f"/v1/destinations/{destination_id}/strava/connect")
    assert redirect.status_code in (302, 303, 307), redirect.text
    state = parse_qs(urlsplit(redirect.headers["location"]).query)["state"][0]
    callback = api.get(
        "/v1/strava/callback",
        params={"state": state, "code": fake.issue_code(), "scope": "read,activity:write"},
    )
    assert callback.status_code == 200, callback.text


def _settle(journey: Journey, expected_workouts: int) -> None:
    """Wait until every workout is synced and no delivery is still on its first tries."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        workouts = _all(journey.api, "/v1/workouts")
        deliveries = _all(journey.api, "/v1/deliveries")
        waiting = [d for d in deliveries if d["state"] == "pending" and d["attempts"] < 2]
        if len(workouts) == expected_workouts and deliveries and not waiting:
            break
        time.sleep(1)
    journey.workouts = _all(journey.api, "/v1/workouts")
    journey.deliveries = _all(journey.api, "/v1/deliveries")


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    root = tmp_path_factory.mktemp("journey")
    data_dir = root / "data"
    exports = data_dir / "exports" / "journey"
    node_skip = node_missing()
    with ExitStack() as stack:
        strava_url, strava_switch = stack.enter_context(serve_fake("strava"))
        strava = fake_strava.FakeStrava()
        strava_switch.app = strava.app()
        intervals_url, intervals_switch = stack.enter_context(serve_fake("intervals"))
        intervals = fake_intervals.FakeIntervals()
        intervals_switch.app = intervals.app()
        runalyze_url, runalyze_switch = stack.enter_context(serve_fake("runalyze"))
        runalyze = fake_runalyze.FakeRunalyze()
        runalyze_switch.app = runalyze.app()

        webhook_secrets = {name: new_secret() for name in PYTHON_RECEIVERS + NODE_RECEIVERS}
        receivers = {
            name: stack.enter_context(python_receiver(name, webhook_secrets[name]))
            for name in PYTHON_RECEIVERS
        }
        if node_skip is None:
            for name in NODE_RECEIVERS:
                receivers[name] = stack.enter_context(
                    node_receiver(name, webhook_secrets[name], root / name)
                )

        # A sandbox Peloton with one member and no history yet, as `pelosync sandbox` runs it.
        sandbox_env = clean_env(data_dir / "sandbox")
        sandbox_port = free_port()
        sandbox = stack.enter_context(
            running(
                [
                    "sandbox",
                    "--port",
                    str(sandbox_port),
                    "--users",
                    "1",
                    "--workouts",
                    "0",
                    "--seed",
                    "15",
                    "--json",
                ],  # fmt: skip
                sandbox_env,
                stdout=True,
            )
        )
        described = read_json(sandbox)
        peloton = described["base_url"]
        user = described["users"][0]

        # Default settings, except what points pelosync at this machine's stand-ins: the
        # sandbox instead of Peloton, the fakes instead of Strava and intervals.icu, and an
        # allowlist entry for the loopback receivers (the SSRF guard refuses them otherwise).
        env = {
            k: v
            for k, v in clean_env(
                data_dir,
                PELOSYNC_PELOTON_API_URL=peloton,
                PELOSYNC_PELOTON_AUTH_URL=peloton,
                PELOSYNC_WEBHOOK_ALLOWLIST="127.0.0.1",
                PELOSYNC_STRAVA_CLIENT_ID=fake_strava.CLIENT_ID,
                PELOSYNC_STRAVA_CLIENT_SECRET=fake_strava.CLIENT_SECRET,
                PELOSYNC_STRAVA_API_URL=f"{strava_url}/api/v3",
                PELOSYNC_STRAVA_OAUTH_URL=f"{strava_url}/oauth",
                PELOSYNC_INTERVALS_API_URL=intervals_url,
                PELOSYNC_RUNALYZE_API_URL=f"{runalyze_url}/api/v1",
            ).items()
            if k != "PELOSYNC_SECRET_KEY"  # generated into the data dir, as by default
        }
        port = free_port()
        serve: Process = stack.enter_context(running(["serve", "--port", str(port)], env))
        # Not a terminal: the first admin key is in a file of the data dir, as serve says.
        serve.wait_for(lambda line: "created the first admin API key" in line)
        key = (Path(env["PELOSYNC_DATA_DIR"]) / "first-admin-key.txt").read_text().strip()
        api = stack.enter_context(
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
        )

        # The workouts, created now (so within the default 30-day backfill).
        added = []
        with httpx.Client(base_url=peloton, timeout=60) as admin:
            for kind, seconds, heart_rate in WORKOUTS:
                answer = admin.post(
                    f"/_sandbox/users/{user['user_id']}/workouts",
                    json={"kind": kind, "duration": seconds, "heart_rate": heart_rate},
                )
                assert answer.status_code == 201, answer.text
                added += answer.json()["workouts"]

        journey = Journey(
            api, data_dir, exports, receivers, node_skip, strava, intervals, runalyze, added
        )
        journey.env = env
        for name, receiver in receivers.items():
            journey.destinations[name] = _create(
                api,
                {
                    "name": name,
                    "kind": "webhook",
                    "formats": ALL_FORMATS,
                    "config": {"url": receiver.url},
                    "secrets": {"secret": webhook_secrets[name]},
                },
            )
        journey.destinations["folder"] = _create(
            api,
            {
                "name": "folder",
                "kind": "directory",
                "formats": ALL_FORMATS,
                "config": {"root": str(exports)},
            },  # fmt: skip
        )
        journey.destinations["strava"] = _create(
            api, {"name": "strava", "kind": "strava", "formats": ["fit"]}
        )
        _connect_strava(api, journey.destinations["strava"]["id"], strava)
        journey.destinations["intervals"] = _create(
            api,
            {
                "name": "intervals",
                "kind": "intervals",
                "formats": ["fit"],
                "config": {"athlete_id": fake_intervals.ATHLETE_ID},
                "secrets": {"api_key": fake_intervals.API_KEY},
            },  # fmt: skip
        )
        journey.destinations["runalyze"] = _create(
            api,
            {
                "name": "runalyze",
                "kind": "runalyze",
                "formats": ["fit"],
                "secrets": {"token": fake_runalyze.TOKEN},
            },  # fmt: skip
        )

        # The user links their account from the command line while the service runs.
        token = user["refresh_tokens"][0]["token"]
        linked = subprocess.run(
            [*PELOSYNC, "account", "link", "--label", "Journey", "--refresh-token", token],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert linked.returncode == 0, linked.stderr
        assert linked.stdout.startswith("linked account 1: Peloton user ")
        _settle(journey, len(WORKOUTS))
        journey.serve_log = serve.log()
        yield journey
