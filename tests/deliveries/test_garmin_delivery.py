"""Garmin Connect through the delivery engine, against the loopback fake: the FIT files claim the
destination's device, a workout a watch recorded too is delivered as a duplicate of that
activity (and the attempt log says so), and refreshed tokens are stored with their expiry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from garmin_fit_sdk import Decoder, Stream

from service.deliveries.models import DeliveryState
from service.destinations.kinds.garmin_devices import device_for
from service.destinations.models import Destination
from tests.deliveries.conftest import Engine, open_engine
from tests.destinations.fakes.fake_garmin import FakeGarmin
from tests.support.servers import Switch, serve


@pytest.fixture(scope="module")
def garmin_server() -> Iterator[tuple[str, Switch]]:
    with serve("garmin-engine") as served:
        yield served


@pytest.fixture
async def world(
    tmp_path: Path, database_url: str, garmin_server: tuple[str, Switch]
) -> AsyncIterator[tuple[Engine, FakeGarmin]]:
    base = garmin_server[0]
    async with open_engine(
        tmp_path,
        database_url,
        workouts=3,
        garmin_enabled=True,
        garmin_upload_url=f"{base}/upload-service/upload",
        garmin_token_url=f"{base}/di-oauth2-service/oauth/token",
        garmin_profile_url=f"{base}/userprofile-service/socialProfile",
    ) as engine:
        fake = FakeGarmin(now=engine.clock.epoch)
        garmin_server[1].app = fake.app()
        yield engine, fake


async def _garmin(engine: Engine, secrets: dict[str, Any], device: str = "auto") -> Destination:
    return await engine.add(
        Destination(
            name="garmin",
            kind="garmin",
            config={"device": device},
            secrets_encrypted=engine.runtime.secrets.encrypt_json(secrets),
            formats=["fit"],
            concurrency=2,
            enabled=True,
        )
    )


def _device(data: bytes) -> tuple[str, Any]:
    messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
    assert errors == []
    (file_id,) = messages["file_id_mesgs"]
    return file_id["manufacturer"], file_id.get("garmin_product", file_id.get("product"))


async def test_fit_files_claim_the_device_of_their_discipline(
    world: tuple[Engine, FakeGarmin],
) -> None:
    engine, fake = world
    destination = await _garmin(engine, fake.seed_tokens())
    await engine.link_and_poll()
    await engine.run()
    deliveries = await engine.deliveries(destination.id)
    assert deliveries and all(d.state == DeliveryState.SUCCEEDED for d in deliveries)
    workouts = await engine.workouts()
    assert len(fake.imports) == len(deliveries)
    for delivery in deliveries:
        discipline = workouts[delivery.workout_id].discipline
        expected = device_for("auto", discipline)
        assert expected is not None
        (upload,) = [i for i in fake.imports if str(i.activity_id) == delivery.external_id]
        manufacturer, product = _device(upload.data)
        assert manufacturer == expected.manufacturer
        assert (
            product
            == {20533: "tacx_training_app_win", 3943: "epix_gen2", 3113: "fr945"}[
                expected.product or 0
            ]
        )


async def test_a_workout_the_watch_recorded_is_a_duplicate_of_its_activity(
    world: tuple[Engine, FakeGarmin],
) -> None:
    engine, fake = world
    destination = await _garmin(engine, fake.seed_tokens(), device="fr945")
    await engine.link_and_poll()
    workouts = sorted((await engine.workouts()).values(), key=lambda w: w.id)
    recorded = workouts[0]
    watch = fake.record_on_watch(recorded.started_at.replace(microsecond=0))
    await engine.run()
    deliveries = {d.workout_id: d for d in await engine.deliveries(destination.id)}
    duplicate = deliveries[recorded.id]
    assert duplicate.state == DeliveryState.SUCCEEDED and duplicate.external_id == str(watch)
    (attempt,) = await engine.attempts(duplicate.id)
    assert attempt.status_code == 409
    assert (attempt.response_excerpt or "").startswith(f"duplicate of activity {watch} (")
    others = [d for w, d in deliveries.items() if w != recorded.id]
    assert all(d.external_id != str(watch) for d in others)


async def test_refreshed_tokens_are_stored_with_the_sign_ins_end(
    world: tuple[Engine, FakeGarmin],
) -> None:
    engine, fake = world
    secrets = fake.seed_tokens(expires_in=60)  # the access token is about to expire
    destination = await _garmin(engine, secrets)
    await engine.link_and_poll()
    await engine.run()
    # Deliveries sent at once may each refresh; Garmin keeps the older refresh token working.
    deliveries = await engine.deliveries(destination.id)
    assert 1 <= fake.calls["token"] <= len(deliveries)
    assert all(d.state == DeliveryState.SUCCEEDED for d in deliveries)
    assert (await engine.destination(destination.id)).enabled
    stored = engine.runtime.secrets.decrypt_json(
        (await engine.destination(destination.id)).secrets_encrypted
    )
    assert stored["refresh_token"] != secrets["refresh_token"]
    assert stored["refresh_token_expires_at"] == fake.refresh_tokens[stored["refresh_token"]][1]
