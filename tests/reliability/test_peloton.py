"""Peloton misbehaving: a 429 storm, and malformed answers from every endpoint we call.

Every poll must end with its outcome recorded on the account and the sync run, never a crash,
nothing stored by halves, and everything synced once the fault is cleared.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from service.accounts import linking as accounts
from service.accounts.models import Account, AuthMethod
from service.accounts.tokens import client_for
from service.peloton.budget import PAUSE_BASE
from service.peloton.errors import PelotonError
from service.peloton.sandbox.faults import FaultKind
from tests.accounts.conftest import LONG_AGO
from tests.reliability.conftest import Rig, open_rig, summary

LOGIN_PATHS = ("/authorize", "/login", "/usernamepassword", "/callback")


@pytest.mark.parametrize("method", list(AuthMethod))
async def test_a_429_storm_postpones_without_failures_or_logins(
    rig: Rig, method: AuthMethod
) -> None:
    if method is AuthMethod.TOKEN:
        account = await rig.link()
    else:  # an account that could log in again by itself must not try to, throttled
        info = rig.sandbox.describe_user(next(iter(rig.sandbox.accounts.values())))
        request = accounts.LinkRequest(
            username=info["username"],
            password=info["password"],
            method=method,
            sync_since=LONG_AGO,
        )
        async with rig.runtime.sessions() as session, session.begin():
            account = await accounts.link(rig.runtime, session, request)
    rig.sandbox.log.clear()
    rig.sandbox.faults.add("rate_limit", fraction=1.0, retry_after=120)
    storm = 5
    for _ in range(storm):
        before = rig.clock()
        result = await rig.poll(account.id)
        assert result.outcome == "rate_limited", result
        row = await rig.account(account.id)
        assert row.consecutive_failures == 0
        assert row.status == "active"
        assert row.next_poll_at >= before + timedelta(seconds=120)
        rig.clock.advance(seconds=121)
    assert rig.sandbox.log.by_fault["rate_limit"] >= storm
    assert rig.sandbox.log.by_status.get("200", 0) == 0  # nothing got through the storm
    paths = [entry["path"] for entry in rig.sandbox.log.entries]
    # Throttled is not unauthorised: no token refresh, and certainly no password login.
    assert not [p for p in paths if p.startswith(LOGIN_PATHS) or p == "/oauth/token"], paths
    assert await rig.workouts() == []
    runs = await rig.runs()
    assert [r.outcome for r in runs] == ["rate_limited"] * storm

    rig.sandbox.faults.clear()
    await rig.poll_until_done(account.id)
    stored = {w.peloton_workout_id for w in await rig.workouts()}
    assert stored == rig.expected_ids()
    row = await rig.account(account.id)
    assert row.consecutive_failures == 0 and row.last_success_at is not None
    throttled = rig.sandbox.log.by_fault["rate_limit"]
    summary(f"peloton-429-storm-{method}", faults=throttled, survived=len(stored), lost=0)


POLL_ENDPOINTS = {
    "workouts list": "/api/user/",
    "workout detail": "/api/workout/",
    "performance graph": "PERF",  # set per workout below: the detail shares the prefix
    "ride details": "/api/ride/",
}


@pytest.mark.parametrize("kind", ["malformed_json", "empty_body"])
@pytest.mark.parametrize("endpoint", list(POLL_ENDPOINTS))
async def test_a_malformed_answer_fails_the_poll_cleanly(
    tmp_path: Path, database_url: str, endpoint: str, kind: FaultKind
) -> None:
    async with open_rig(tmp_path, database_url) as rig:
        account = await rig.link()
        expected = rig.expected_ids()
        faults = rig.sandbox.faults
        if endpoint == "performance graph":
            for workout_id in expected:
                faults.add(
                    kind, fraction=1.0, path_prefix=f"/api/workout/{workout_id}/performance_graph"
                )
        else:
            faults.add(kind, fraction=1.0, path_prefix=POLL_ENDPOINTS[endpoint])

        result = await rig.poll(account.id)
        # A broken account-level call fails the poll; a broken per-workout call fails that
        # workout (the poll is "ok" with errors, and tries it again next time). Either way the
        # error is recorded, naming what Peloton got wrong.
        if result.outcome == "ok":
            assert result.errors >= 1 and result.new == 0 and result.more, result
        else:
            assert result.outcome == "error", result
        assert result.error and ("malformed" in result.error or "empty" in result.error), result
        row = await rig.account(account.id)
        assert row.consecutive_failures == (1 if result.outcome == "error" else 0)
        assert row.last_error == result.error
        runs = await rig.runs()
        assert [(r.outcome, r.error) for r in runs] == [(result.outcome, result.error)]
        assert await rig.workouts() == [] and await rig.deliveries() == []

        faults.clear()
        rig.clock.advance(hours=1)
        await rig.poll_until_done(account.id)
        stored = [w.peloton_workout_id for w in await rig.workouts()]
        assert sorted(stored) == sorted(expected)
        row = await rig.account(account.id)
        assert row.consecutive_failures == 0
    summary(f"peloton-{kind}-{endpoint.replace(' ', '-')}", faults=1, survived=len(stored), lost=0)


@pytest.mark.parametrize("kind", ["malformed_json", "empty_body"])
async def test_a_malformed_profile_fails_the_link_and_stores_nothing(
    rig: Rig, kind: FaultKind
) -> None:
    rig.sandbox.faults.add(kind, fraction=1.0, path_prefix="/api/me")
    with pytest.raises(PelotonError) as caught:
        await rig.link()
    assert "malformed" in caught.value.message or "empty" in caught.value.message
    assert "/api/me" in caught.value.message
    assert await rig.rows(Account) == []

    rig.sandbox.faults.clear()
    account = await rig.link()
    await rig.poll_until_done(account.id)
    stored = {w.peloton_workout_id for w in await rig.workouts()}
    assert stored == rig.expected_ids()
    summary(f"peloton-{kind}-me", faults=1, survived=len(stored), lost=0)


@pytest.mark.parametrize("kind", ["malformed_json", "empty_body"])
async def test_malformed_settings_raise_a_typed_error(rig: Rig, kind: FaultKind) -> None:
    account = await rig.link()
    user_id = rig.sandbox.describe_user(list(rig.sandbox.accounts.values())[0])["user_id"]
    rig.sandbox.faults.add(kind, fraction=1.0, path_prefix="/api/user/")
    async with client_for(rig.runtime, await rig.account(account.id)) as client:
        with pytest.raises(PelotonError) as caught:
            await client.user_settings(user_id)
        assert "/settings" in caught.value.message
        rig.sandbox.faults.clear()
        settings = await client.user_settings(user_id)
    assert settings is not None
    summary(f"peloton-{kind}-settings", faults=1, survived=1, lost=0)


@pytest.mark.parametrize("kind", ["malformed_json", "empty_body"])
async def test_a_garbled_token_answer_needs_reauthorization_then_resumes(
    rig: Rig, kind: FaultKind
) -> None:
    account = await rig.link()
    rig.sandbox.log.clear()
    rig.sandbox.tokens.expire_all()  # the poll must refresh first
    rig.sandbox.faults.add(kind, count=1, path_prefix="/oauth/token")
    result = await rig.poll(account.id)
    # Peloton rotated the refresh token in the answer we could not read, so the retry with
    # the old one is refused: the account needs re-authorising. Said so, nothing else broken.
    assert result.outcome == "needs_reauth", result
    assert result.error and "refresh" in result.error
    row = await rig.account(account.id)
    assert (row.status, row.last_error, row.consecutive_failures) == (
        "needs_reauth",
        result.error,
        0,
    )
    assert [(r.outcome, r.error) for r in await rig.runs()] == [("needs_reauth", result.error)]
    assert await rig.workouts() == []
    paths = [entry["path"] for entry in rig.sandbox.log.entries]
    assert not [p for p in paths if p.startswith(LOGIN_PATHS)], paths
    assert paths.count("/oauth/token") == 2  # the garbled answer, the refused retry

    # The user re-authorises (a token they get again): syncing resumes, nothing was lost.
    request = accounts.LinkRequest(refresh_token=rig.refresh_token(), sync_since=LONG_AGO)
    async with rig.runtime.sessions() as session, session.begin():
        await accounts.reauthenticate(rig.runtime, session, account.id, request)
    await rig.poll_until_done(account.id)
    stored = {w.peloton_workout_id for w in await rig.workouts()}
    assert stored == rig.expected_ids()
    summary(f"peloton-{kind}-token", faults=1, survived=len(stored), lost=0)


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        ("cloudflare_json", "rate_limited"),  # Cloudflare's JSON problem for error 1015
        ("cloudflare_challenge", "rate_limited"),  # a page from Cloudflare's edge
        ("forbidden", "error"),  # Peloton's own JSON refusal
        ("forbidden_garbled", "error"),  # no marks of throttling: an unreadable answer
        ("forbidden_empty", "error"),
    ],
)
async def test_a_403_storm_is_throttling_only_with_its_marks(
    rig: Rig, kind: FaultKind, outcome: str
) -> None:
    account = await rig.link()
    rig.sandbox.log.clear()
    listing = f"/api/user/{account.peloton_user_id}/workouts"
    rig.sandbox.faults.add(kind, fraction=1.0, path_prefix=listing, retry_after=600)
    polls = 3
    waits: list[timedelta] = []
    for number in range(1, polls + 1):
        before = rig.clock()
        result = await rig.poll(account.id)
        assert result.outcome == outcome, result
        row = await rig.account(account.id)
        waits.append(row.next_poll_at - before)
        if outcome == "rate_limited":  # postponed, not counted: Cloudflare asked us to wait
            assert row.consecutive_failures == 0 and row.status == "active"
            # As long as Retry-After says; without one (a challenge page), a pause of the
            # whole address that doubles while the throttling goes on.
            asked = timedelta(seconds=600) if kind == "cloudflare_json" else None
            assert waits[-1] >= (asked or PAUSE_BASE * 2 ** (number - 1))
        else:  # a failure: counted, said so, retried on the failure backoff
            assert row.consecutive_failures == number and row.status == "error"
            assert result.error and "403" in result.error and "is rate limiting" not in result.error
            if kind == "forbidden":
                assert "PelotonForbidden" in result.error and "permission" in result.error
            else:
                assert "UnexpectedResponse" in result.error and "no sign of rate" in result.error
        rig.clock.now = row.next_poll_at
    if outcome == "error":
        assert waits[0] < waits[1] < waits[2]  # backing off, not hammering
    # One request per poll, never retried inside it; no token refresh, no login.
    faulted = [e["path"] for e in rig.sandbox.log.entries if e["fault"]]
    assert faulted == [listing] * polls
    paths = [entry["path"] for entry in rig.sandbox.log.entries]
    assert not [p for p in paths if p.startswith(LOGIN_PATHS) or p == "/oauth/token"], paths

    rig.sandbox.faults.clear()
    await rig.poll_until_done(account.id)
    stored = {w.peloton_workout_id for w in await rig.workouts()}
    assert stored == rig.expected_ids()
    row = await rig.account(account.id)
    assert (row.consecutive_failures, row.status) == (0, "active")
    summary(f"peloton-403-{kind}", faults=polls, survived=len(stored), lost=0)


async def test_a_refused_class_plan_or_graph_is_no_retry_storm(rig: Rig) -> None:
    account = await rig.link()
    expected = rig.expected_ids()
    # The class plans are refused: optional, so every workout is stored without them.
    rig.sandbox.faults.add("forbidden", fraction=1.0, path_prefix="/api/ride/")
    await rig.poll_until_done(account.id)
    stored = {w.peloton_workout_id for w in await rig.workouts()}
    assert stored == expected
    assert all(r.outcome == "ok" and r.error is None for r in await rig.runs())
    refused = rig.sandbox.log.by_fault["forbidden"]
    assert refused >= 1

    # A workout's graph refused: that workout fails, once per poll, and the next poll waits.
    rig.sandbox.faults.clear()
    (spec,) = rig.sandbox.add_workouts(
        next(iter(rig.sandbox.accounts.values())), kind="cycling_class"
    )
    graph = f"/api/workout/{spec.workout_id}/performance_graph"
    rig.sandbox.faults.add("forbidden", fraction=1.0, path_prefix=graph)
    rig.sandbox.log.clear()
    rig.clock.advance(hours=2)
    for _ in range(3):
        before = rig.clock()
        result = await rig.poll(account.id)
        assert result.outcome == "ok" and result.errors == 1 and result.new == 0, result
        assert result.error and "PelotonForbidden" in result.error
        row = await rig.account(account.id)
        assert row.next_poll_at - before >= timedelta(minutes=1)  # not again at once
        rig.clock.now = row.next_poll_at
    assert [e["path"] for e in rig.sandbox.log.entries if e["fault"]] == [graph] * 3

    rig.sandbox.faults.clear()
    await rig.poll_until_done(account.id)
    stored = {w.peloton_workout_id for w in await rig.workouts()}
    assert stored == expected | {spec.workout_id}
    summary("peloton-403-class-plan-and-graph", faults=refused + 3, survived=len(stored), lost=0)
