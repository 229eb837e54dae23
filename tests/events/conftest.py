"""The events tests run in the delivery engine's world (tests/deliveries/conftest.py): a sandbox
Peloton, a runtime on a fake clock, verifying webhook receivers on loopback; plus the events
job, and webhooks subscribed to chosen event types."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from service.deliveries.retry import next_attempt_delay
from service.destinations.kinds.webhook import WebhookConfig, generate_secret
from service.destinations.models import Destination
from service.events.jobs import EventJob, WatchJob
from service.events.models import Event, EventAttempt, EventDelivery
from service.runtime import Runtime
from tests.deliveries.conftest import Engine, open_engine


class Events:
    """Reading back events, and sending them like the scheduler does."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.job = EventJob(engine.runtime, lambda n, after: next_attempt_delay(n, after))
        self.watch = WatchJob(engine.runtime)

    async def webhook(
        self, url: str, secret: str, events: Sequence[str], *, name: str = "ops"
    ) -> Destination:
        config, secrets = WebhookConfig.parse(
            {"url": url, "events": list(events)}, {"secret": secret}
        ).split()
        return await self.engine.add(
            Destination(
                name=name,
                kind="webhook",
                config=config,
                secrets_encrypted=self.engine.runtime.secrets.encrypt_json(secrets),
                formats=["json"],
                concurrency=1,
                enabled=True,
            )
        )

    async def all(self, runtime: Runtime | None = None) -> list[Event]:
        async with (runtime or self.engine.runtime).sessions() as session:
            return list((await session.execute(select(Event).order_by(Event.id))).scalars())

    async def types(self) -> list[str]:
        return [event.type for event in await self.all()]

    async def deliveries(self) -> list[EventDelivery]:
        async with self.engine.runtime.sessions() as session:
            stmt = select(EventDelivery).order_by(EventDelivery.id)
            return list((await session.execute(stmt)).scalars())

    async def attempts(self) -> list[EventAttempt]:
        async with self.engine.runtime.sessions() as session:
            stmt = select(EventAttempt).order_by(EventAttempt.id)
            return list((await session.execute(stmt)).scalars())


@pytest.fixture
async def engine(tmp_path: Path, database_url: str) -> AsyncIterator[Engine]:
    async with open_engine(tmp_path, database_url, workouts=1) as world:
        yield world


@pytest.fixture
def events(engine: Engine) -> Events:
    return Events(engine)


@pytest.fixture
def secret() -> str:
    return generate_secret()
