"""Workouts Peloton imported from other services (the sandbox's Garmin-recorded runs): stored
and marked with their origin, delivered only when the account includes them (issue 19)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from service.accounts import service as accounts_service
from service.accounts.jobs import PollJob
from service.deliveries import bulk
from service.deliveries.models import Delivery
from service.workouts.models import Workout
from tests.accounts.conftest import LONG_AGO, World


async def _drain(world: World, account_id: int) -> None:
    job = PollJob(world.runtime)
    while (await job.run_once(account_id))[account_id].more:  # type: ignore[union-attr]
        pass


async def _deliveries_by_workout(world: World) -> dict[str, list[str]]:
    async with world.runtime.sessions() as session:
        rows = await session.execute(
            select(Workout.peloton_workout_id, Delivery.format).join(
                Delivery, Delivery.workout_id == Workout.id
            )
        )
        found: dict[str, list[str]] = {}
        for workout_id, fmt in rows:
            found.setdefault(workout_id, []).append(fmt)
        return found


async def _origins(world: World) -> dict[str, str | None]:
    async with world.runtime.sessions() as session:
        rows = await session.execute(select(Workout.peloton_workout_id, Workout.origin))
        return {row[0]: row[1] for row in rows.all()}


async def test_imported_workouts_are_stored_and_marked_but_go_nowhere(world: World) -> None:
    await world.add_destination(["tcx"])
    account = await world.link()
    await _drain(world, account.id)
    user = list(world.sandbox.accounts.values())[0]
    (imported,) = world.sandbox.add_workouts(user, kind="outdoor_just_run_garmin")
    (own,) = world.sandbox.add_workouts(user, kind="outdoor_run")
    await _drain(world, account.id)

    origins = await _origins(world)
    assert origins[imported.workout_id] == "garmin"
    assert origins[own.workout_id] is None
    deliveries = await _deliveries_by_workout(world)
    assert imported.workout_id not in deliveries
    assert deliveries[own.workout_id] == ["tcx"]

    # A replay follows the same rule; sending it by hand is the user's choice and sends it.
    async with world.runtime.sessions() as session, session.begin():
        destination_id = (await session.execute(select(Delivery.destination_id))).scalar()
        assert destination_id is not None
        ids = {
            peloton_id: workout_id
            for workout_id, peloton_id in await session.execute(
                select(Workout.id, Workout.peloton_workout_id)
            )
        }
        plans = await bulk.plan_replay(
            session,
            destination_id,
            start=LONG_AGO,
            end=world.runtime.clock() + timedelta(days=1),
        )
        assert ids[imported.workout_id] not in {p.workout.id for p in plans}
        assert ids[own.workout_id] in {p.workout.id for p in plans}
        stored = ids[imported.workout_id]
        sent = await bulk.send_workouts(session, destination_id, [stored], world.runtime.clock())
        assert sent.queued == 1
    assert (await _deliveries_by_workout(world))[imported.workout_id] == ["tcx"]


async def test_an_account_that_includes_imported_workouts_gets_them_delivered(
    world: World,
) -> None:
    await world.add_destination(["tcx", "gpx"])
    account = await world.link(1)
    await _drain(world, account.id)
    async with world.runtime.sessions() as session, session.begin():
        changed = await accounts_service.update(
            world.runtime, session, account.id, {"include_external": True}
        )
        assert changed.include_external
    user = list(world.sandbox.accounts.values())[1]
    (imported,) = world.sandbox.add_workouts(user, kind="outdoor_just_run_garmin")
    await _drain(world, account.id)
    assert (await _origins(world))[imported.workout_id] == "garmin"
    assert sorted((await _deliveries_by_workout(world))[imported.workout_id]) == ["gpx", "tcx"]
