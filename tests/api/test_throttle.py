"""Failed sign-ins and wrong API keys are throttled per client address (429 + Retry-After);
a wrong key repeated costs no database work; behind a proxy the forwarded address counts."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.auth.repository import ApiKeyRepository
from service.auth.service import generate_key
from service.commands.serve import _proxy_options
from service.peloton.sandbox import SandboxState
from service.peloton.sandbox.server import bind
from service.runtime import Runtime
from service.throttle import FailureThrottle, TooManyFailures
from tests.api.conftest import Keys, api_settings, bearer, key_setup, serve
from tests.web.conftest import csrf_of

Api = tuple[httpx.AsyncClient, Keys, Runtime, SandboxState]
WRONG = "psk_" + "w" * 43


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_counts_failures_in_a_sliding_window() -> None:
    clock = Clock()
    throttle = FailureThrottle(3, 60.0, clock=clock)
    for _ in range(3):
        throttle.check("a")
        throttle.failed("a")
        clock.now += 10
    with pytest.raises(TooManyFailures) as refused:
        throttle.check("a")
    assert refused.value.headers == {"Retry-After": "30"}  # the first failure ages out at 60 s
    throttle.check("b")  # others are not affected
    clock.now += 30
    throttle.check("a")  # one failure left the window: one more try
    throttle.failed("a")
    with pytest.raises(TooManyFailures):
        throttle.check("a")


async def test_wrong_keys_are_throttled_and_good_keys_still_pass(api: Api) -> None:
    client, keys, runtime, _ = api
    clock = Clock()
    runtime.auth_failures = FailureThrottle(5, 60.0, clock=clock)
    assert (await client.get("/v1/accounts", headers=bearer(keys.admin))).status_code == 200
    for n in range(5):
        wrong = await client.get("/v1/accounts", headers=bearer(f"psk_{n}" + "x" * 42))
        assert wrong.status_code == 401
    refused = await client.get("/v1/accounts", headers=bearer(WRONG))
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "60"
    assert "too many failed" in refused.json()["detail"]
    # A key this process found good moments ago still passes (same address, e.g. one proxy).
    assert (await client.get("/v1/accounts", headers=bearer(keys.admin))).status_code == 200
    # No key at all is no guess: still the usual 401.
    assert (await client.get("/v1/accounts")).status_code == 401
    clock.now += 61
    assert (await client.get("/v1/accounts", headers=bearer(WRONG))).status_code == 401


async def test_a_repeated_wrong_key_is_not_looked_up_again(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, _, _ = api
    lookups: list[str] = []
    original = ApiKeyRepository.by_hash

    async def counting(self: ApiKeyRepository, key_hash: str) -> object:
        lookups.append(key_hash)
        return await original(self, key_hash)

    monkeypatch.setattr(ApiKeyRepository, "by_hash", counting)
    guess = generate_key()  # never presented before (unknown keys are remembered per process)
    for _ in range(5):
        assert (await client.get("/v1/workouts", headers=bearer(guess))).status_code == 401
    assert len(lookups) == 1


async def test_failed_dashboard_sign_ins_are_throttled(api: Api) -> None:
    client, keys, runtime, _ = api
    clock = Clock()
    runtime.auth_failures = FailureThrottle(3, 60.0, clock=clock)
    # Form tokens are single-use: each try takes the one of the page the last answer showed.
    csrf = csrf_of(await client.get("/login"))
    for _ in range(3):
        wrong = await client.post("/login", data={"csrf": csrf, "key": WRONG})
        assert wrong.status_code == 401
        csrf = csrf_of(wrong)
    refused = await client.post("/login", data={"csrf": csrf, "key": keys.admin})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert "Too many failed attempts" in refused.text
    clock.now += 60
    signed_in = await client.post("/login", data={"csrf": csrf, "key": keys.admin})
    assert signed_in.status_code == 303


async def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(
    tmp_path: Path, database_url: str
) -> None:
    settings = api_settings(
        tmp_path, database_url, "http://127.0.0.1:9", auth_failures_per_minute=2
    )
    keys = Keys()
    app = create_app(settings, scheduler=False, on_started=key_setup(keys))
    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with (
        serve(app, sock, **_proxy_options(settings)),
        httpx.AsyncClient(base_url=url) as client,
    ):

        async def guess(forwarded_for: str) -> int:
            headers = {**bearer(WRONG), "X-Forwarded-For": forwarded_for}
            return (await client.get("/v1/accounts", headers=headers)).status_code

        assert [await guess("203.0.113.7") for _ in range(3)] == [401, 401, 429]
        # Another client behind the same proxy is not refused for the first one's guesses.
        assert await guess("198.51.100.9") == 401
