"""Strength sets and class cues survive the whole path: sandbox over loopback, sync, storage,
conversion in the pool, a FIT file decoded with both libraries."""

from __future__ import annotations

from sqlalchemy import select

from service.accounts.jobs import PollJob
from service.workouts.models import Workout
from tests.accounts.conftest import World
from tests.convert.fitcheck import decode


async def test_synced_strength_and_cued_workouts_keep_their_sets_and_laps(world: World) -> None:
    account = await world.link()
    user = list(world.sandbox.accounts.values())[0]
    strength = world.sandbox.add_workouts(user, kind="strength", count=6)
    rides = world.sandbox.add_workouts(user, kind="cycling_class", count=1)
    job = PollJob(world.runtime)
    while (await job.run_once(account.id))[account.id].more:  # type: ignore[union-attr]
        pass
    wanted = {w.workout_id for w in strength}
    async with world.runtime.sessions() as session:
        rows = (await session.execute(select(Workout))).scalars().all()
    stored = {w.peloton_workout_id: w for w in rows}
    shapes = set()
    for workout_id in wanted:
        bundle = stored[workout_id].bundle()
        tracked = bool((bundle["workout"] or {}).get("movement_tracker_data"))
        shapes.add(tracked)
        fit = decode(await world.runtime.converter.render(bundle, "fit"))
        sets = fit.all("set")
        active = [s for s in sets if s["set_type"] == "active"]
        assert active and all(s["category"] != "unknown" for s in active)
        assert any("repetitions" in s for s in active) is tracked
        assert fit.all("exercise_title")
    assert shapes == {True, False}  # both shapes came through
    ride = decode(await world.runtime.converter.render(stored[rides[0].workout_id].bundle(), "fit"))
    steps = ride.all("workout_step")
    assert len(ride.all("lap")) == len(steps) > 3
    assert any(s["target_type"] == "cadence" for s in steps)
