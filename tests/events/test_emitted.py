"""Each operational event is emitted once, at the moment its condition begins, by the real
code paths (a poll that Peloton refuses, a receiver answering 410, a delivery out of retries,
a Garmin token near its end), and reaches a subscribed webhook signed as Standard Webhooks say
(every receiver verifies every request with the ``standardwebhooks`` library)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from service.accounts import linking as accounts
from service.accounts.jobs import PollJob
from service.deliveries.models import DeliveryState
from service.deliveries.retry import MAX_ATTEMPTS
from service.destinations.models import Destination
from service.events.models import EventDeliveryState
from tests.deliveries.conftest import Engine, open_engine
from tests.destinations.fakes import fake_strava
from tests.destinations.receiver import Answer
from tests.events.conftest import Events
from tests.support.servers import serve

OPS = (
    "account.needs_reauth",
    "destination.disabled",
    "destination.credentials_expiring",
    "delivery.failed",
)


def bodies(receiver: Any) -> list[dict[str, Any]]:
    return [request.payload for request in receiver.requests]


async def test_a_gone_destination_is_reported_once_and_only_to_subscribers(
    engine: Engine, events: Events, secret: str
) -> None:
    ops = await engine.receiver(secret)
    await events.webhook(ops.url(), secret, OPS)
    gone = await engine.receiver(secret, Answer(status=410, body=b"no such hook"))
    hook = await engine.webhook(gone.url(), secret, name="gone")
    await engine.link_and_poll()
    await engine.run()
    await events.job.run_until_idle()

    # The operations webhook is not subscribed to workout.synced: it got no workout.
    assert [body["type"] for body in bodies(ops)] == ["destination.disabled"]
    (body,) = bodies(ops)
    assert body["data"]["destination"] == {"id": hook.id, "name": "gone", "kind": "webhook"}
    assert body["data"]["reason"].startswith("gone: 127.0.0.1 answered HTTP 410")
    (event,) = await events.all()
    assert ops.requests[0].headers["webhook-id"] == event.message_id
    # Later ticks while the destination stays disabled say nothing more.
    engine.clock.advance(days=1)
    await engine.run()
    await events.job.run_until_idle()
    await events.watch.tick()
    assert await events.types() == ["destination.disabled"]
    assert len(ops.requests) == 1
    (delivery,) = await events.deliveries()
    assert delivery.state == EventDeliveryState.SUCCEEDED and delivery.attempts == 1
    (attempt,) = await events.attempts()
    assert attempt.outcome == "succeeded" and attempt.status_code == 200

    # Re-enabled, the condition clears; disabled again, it is a new event.
    await engine.update_destination(hook.id, enabled=True, disabled_reason=None)
    await events.watch.tick()
    (event,) = await events.all()
    assert event.resolved_at == engine.clock.now
    await engine.run()  # the parked delivery resumes, and is refused again
    await events.job.run_until_idle()
    assert await events.types() == ["destination.disabled"] * 2
    assert [body["type"] for body in bodies(ops)] == ["destination.disabled"] * 2


async def test_a_delivery_out_of_retries_is_reported_when_it_gives_up(
    engine: Engine, events: Events, secret: str
) -> None:
    ops = await engine.receiver(secret)
    await events.webhook(ops.url(), secret, ["delivery.failed"])
    failing = await engine.receiver(secret, Answer(status=500, body=b"boom"))
    hook = await engine.webhook(failing.url(), secret, name="failing")
    account = await engine.link_and_poll()
    (delivery,) = await engine.deliveries(hook.id)
    for number in range(1, MAX_ATTEMPTS + 1):
        await engine.run()
        await events.job.run_until_idle()
        delivery = await engine.delivery(delivery.id)
        if number < MAX_ATTEMPTS:
            assert await events.all() == [], f"nothing to report while retrying ({number})"
            engine.clock.set(delivery.next_attempt_at)  # type: ignore[arg-type]
    assert delivery.state == DeliveryState.FAILED

    (body,) = bodies(ops)
    assert body["type"] == "delivery.failed"
    data = body["data"]
    assert data["delivery"] == {
        "id": delivery.id,
        "format": "json",
        "message_id": delivery.message_id,
        "attempts": MAX_ATTEMPTS,
        "last_error": "127.0.0.1 answered HTTP 500",
    }
    assert data["destination"]["id"] == hook.id
    assert data["account"]["id"] == account.id
    assert data["workout"]["id"] == delivery.workout_id
    # A manual retry clears it (the delivery is no longer failed).
    async with engine.runtime.sessions() as session, session.begin():
        from service.deliveries.service import retry_delivery

        await retry_delivery(session, delivery.id, engine.clock.now)
    await events.watch.tick()
    (event,) = await events.all()
    assert event.resolved_at is not None


async def test_an_account_refused_by_peloton_is_reported_once_until_relinked(
    engine: Engine, events: Events, secret: str
) -> None:
    ops = await engine.receiver(secret)
    await events.webhook(ops.url(), secret, ["account.needs_reauth"])
    account = await engine.link_and_poll()
    user = list(engine.sandbox.accounts.values())[0]
    user_id = engine.sandbox.describe_user(user)["user_id"]
    engine.sandbox.tokens.revoke_user(user_id)

    poller = PollJob(engine.runtime)
    engine.clock.advance(hours=2)
    result = (await poller.run_once(account.id))[account.id]
    assert result is not None and result.outcome == "needs_reauth"
    # Parked, it is polled no more: later ticks report nothing new.
    engine.clock.advance(hours=2)
    assert await poller.tick() == []
    await events.watch.tick()
    await events.job.run_until_idle()
    assert await events.types() == ["account.needs_reauth"]
    (body,) = bodies(ops)
    assert body["data"]["account"]["id"] == account.id
    assert body["data"]["account"]["peloton_user_id"] == user_id
    assert body["data"]["reason"]

    # Linked again, the condition clears; refused again later, it is reported again.
    fresh = engine.sandbox.tokens.issue(
        user_id, engine.sandbox.config.web_client_id, "openid offline_access", issuer="test"
    )
    request = accounts.LinkRequest(refresh_token=fresh["refresh_token"])
    async with engine.runtime.sessions() as session, session.begin():
        await accounts.reauthenticate(engine.runtime, session, account.id, request)
    await events.watch.tick()
    assert (await events.all())[0].resolved_at is not None
    engine.sandbox.tokens.revoke_user(user_id)
    engine.clock.advance(hours=2)
    result = (await poller.run_once(account.id))[account.id]
    assert result is not None and result.outcome == "needs_reauth"
    await events.job.run_until_idle()
    assert await events.types() == ["account.needs_reauth"] * 2
    assert len(ops.requests) == 2


async def test_a_garmin_refresh_token_expiring_within_a_week_is_reported_once_per_token(
    engine: Engine, events: Events, secret: str
) -> None:
    ops = await engine.receiver(secret)
    await events.webhook(ops.url(), secret, ["destination.credentials_expiring"])
    now = engine.clock.now
    garmin = await _garmin(engine, expires=now + timedelta(days=8))
    await events.watch.tick()
    assert await events.all() == []  # 8 days left: not yet

    engine.clock.advance(days=2)  # 6 days left
    for _ in range(3):
        await events.watch.tick()
        engine.clock.advance(hours=1)
    await events.job.run_until_idle()
    (body,) = bodies(ops)
    assert body["type"] == "destination.credentials_expiring"
    data = body["data"]
    assert data["destination"]["id"] == garmin.id
    assert data["credential"] == "garmin_refresh_token" and data["revoked"] is False
    expected = (now + timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert data["expires_at"] == expected
    assert "expires in 6 days" in data["reason"]

    # New tokens: the old warning clears; the new token warns in its own last week.
    await _set_expiry(engine, garmin.id, engine.clock.now + timedelta(days=30))
    await events.watch.tick()
    assert (await events.all())[0].resolved_at is not None
    engine.clock.advance(days=24)
    await events.watch.tick()
    await events.watch.tick()
    await events.job.run_until_idle()
    assert await events.types() == ["destination.credentials_expiring"] * 2
    assert len(ops.requests) == 2


async def _garmin(engine: Engine, *, expires: Any) -> Destination:
    secrets = {"access_token": "at", "refresh_token": "rt"}
    secrets["refresh_token_expires_at"] = int(expires.timestamp())  # type: ignore[assignment]
    return await engine.add(
        Destination(
            name="garmin",
            kind="garmin",
            config={},
            secrets_encrypted=engine.runtime.secrets.encrypt_json(secrets),
            formats=["fit"],
            concurrency=1,
            enabled=True,
        )
    )


async def _set_expiry(engine: Engine, destination_id: int, expires: Any) -> None:
    secrets = {"access_token": "at2", "refresh_token": "rt2"}
    secrets["refresh_token_expires_at"] = int(expires.timestamp())  # type: ignore[assignment]
    await engine.update_destination(
        destination_id, secrets_encrypted=engine.runtime.secrets.encrypt_json(secrets)
    )


async def test_a_revoked_strava_authorization_is_reported_with_the_disabling(
    tmp_path: Any, database_url: str, secret: str
) -> None:
    with serve("strava") as (url, switch):
        fake = fake_strava.FakeStrava()
        switch.app = fake.app()
        async with open_engine(
            tmp_path,
            database_url,
            workouts=1,
            strava_client_id=fake_strava.CLIENT_ID,
            strava_client_secret=fake_strava.CLIENT_SECRET,
            strava_oauth_url=f"{url}/oauth",
            strava_api_url=f"{url}/api/v3",
        ) as engine:
            events = Events(engine)
            ops = await engine.receiver(secret)
            await events.webhook(ops.url(), secret, OPS)
            strava = await engine.add(
                Destination(
                    name="strava",
                    kind="strava",
                    config={},
                    secrets_encrypted=engine.runtime.secrets.encrypt_json(fake.seed_tokens()),
                    formats=["tcx"],
                    concurrency=1,
                    enabled=True,
                )
            )
            # The athlete revoked pelosync's access on Strava: every token is refused.
            fake.access_tokens.clear()
            fake.refresh_tokens.clear()
            await engine.link_and_poll()
            await engine.run()
            await events.job.run_until_idle()

            assert not (await engine.destination(strava.id)).enabled
            types = [body["type"] for body in bodies(ops)]
            assert types == ["destination.disabled", "destination.credentials_expiring"]
            revoked = bodies(ops)[1]["data"]
            assert revoked["destination"]["id"] == strava.id
            assert revoked["credential"] == "strava_authorization" and revoked["revoked"] is True
            assert "authorize the destination again" in revoked["reason"]
