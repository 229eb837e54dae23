"""The workout page lists a strength workout's sets."""

from __future__ import annotations

from typing import Any

from service.convert.peloton import parse_bundle
from service.peloton.sandbox import generate_bundle
from service.workouts.models import Workout
from tests.api.seed import account, workout
from tests.web.conftest import Site, page, sign_in


def _strength(tracked: bool) -> int:
    return next(
        seed
        for seed in range(40)
        if bool(generate_bundle(seed, "strength")["workout"]["movement_tracker_data"]) is tracked
    )


async def _add(site: Site, seed: int) -> tuple[int, Any]:
    bundle = generate_bundle(seed, "strength")
    async with site.runtime.sessions() as session, session.begin():
        owner = account(f"u-{seed}")
        session.add(owner)
        await session.flush()
        row: Workout = workout(owner.id, seed, "strength")
        row.raw_workout = bundle["workout"]
        row.raw_performance_graph = bundle["performance_graph"]
        row.raw_ride_details = bundle["ride_details"]
        session.add(row)
        await session.flush()
        return row.id, parse_bundle(bundle)


async def test_tracked_sets_show_reps_weights_and_exercises(site: Site) -> None:
    await sign_in(site.client, site.keys.admin)
    workout_id, act = await _add(site, _strength(tracked=True))
    doc = page(await site.client.get(f"/workouts/{workout_id}"))
    rows = doc.xpath("//table[@id='sets']/tbody/tr")
    assert len(rows) == len(act.sets)
    active = [s for s in act.sets if s.kind == "active"]
    shown = [r for r in rows if r.get("data-kind") == "active"]
    assert len(shown) == len(active)
    for number, (row, model) in enumerate(zip(shown, active, strict=True), start=1):
        cells = {c.get("data-label"): c.text_content().strip() for c in row.xpath("td")}
        assert cells["Set"] == str(number)
        assert cells["Movement"] == model.movement_name
        assert cells["Reps"] == ("—" if model.repetitions is None else str(model.repetitions))
        if model.weight_kg:
            assert cells["Weight"] == f"{model.weight_kg:,.1f} kg"
        else:
            assert cells["Weight"] == "body weight"
        assert cells["Garmin exercise"] != "not mapped"
    assert not doc.xpath("//section[@id='sets-section']/p[contains(., 'class plan')]")


async def test_class_plan_sets_say_so_and_other_workouts_have_no_table(site: Site) -> None:
    await sign_in(site.client, site.keys.admin)
    workout_id, act = await _add(site, _strength(tracked=False))
    doc = page(await site.client.get(f"/workouts/{workout_id}"))
    assert "class plan" in doc.xpath("string(//section[@id='sets-section']/p)")
    reps = doc.xpath("//table[@id='sets']/tbody/tr[@data-kind='active']/td[@data-label='Reps']")
    assert reps and {r.text_content().strip() for r in reps} == {"—"}
    async with site.runtime.sessions() as session, session.begin():
        owner = account("u-ride")
        session.add(owner)
        await session.flush()
        ride = workout(owner.id, 1, "cycling")
        session.add(ride)
        await session.flush()
    doc = page(await site.client.get(f"/workouts/{ride.id}"))
    assert not doc.xpath("//table[@id='sets']")
