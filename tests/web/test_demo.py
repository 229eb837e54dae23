"""``serve --demo``'s data: once synced, the dashboard has an outdoor GPS workout (its route
and GPX), a rowing class and a run Peloton imported from Garmin (marked, not delivered),
besides the generated history."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.accounts.jobs import PollJob
from service.accounts.models import Account
from service.app import create_app
from service.commands.demo import demo_sandbox, demo_setup
from service.deliveries.models import Delivery
from service.peloton.sandbox import run_sandbox
from service.runtime import open_runtime
from service.workouts.models import Workout
from tests.api.conftest import Keys, api_settings, key_setup, running
from tests.web.conftest import page, sign_in

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_the_demo_rider_has_an_outdoor_run_and_a_rowing_class() -> None:
    now = int(time.time())
    state = demo_sandbox(now)
    rider = next(iter(state.accounts.values()))
    done = state.workouts(rider)
    kinds = [w.kind for w in done]
    assert {"outdoor_run", "rowing", "outdoor_just_run_garmin"} <= set(kinds) and len(kinds) == 9
    # All done in the past, none overlapping the next; the sandbox clock is the wall clock.
    assert all(not w.in_progress and w.created_at + w.duration < now for w in done)
    ends = [
        (w.created_at, w.created_at + w.duration) for w in sorted(done, key=lambda w: w.created_at)
    ]
    assert all(end < start for (_, end), (start, _) in zip(ends, ends[1:], strict=False))
    assert abs(state.now() - time.time()) < 5


@SQLITE_ONLY
async def test_demo_shows_a_route_a_gpx_and_a_rowing_class(
    tmp_path: Path, database_url: str
) -> None:
    state = demo_sandbox(int(time.time()))
    async with run_sandbox(state) as peloton_url:
        settings = api_settings(tmp_path, database_url, peloton_url)
        keys = Keys()
        async with open_runtime(settings) as rt:
            await demo_setup(state, tmp_path / "exports", "http://127.0.0.1")(rt)
            app = create_app(settings, scheduler=False, runtime=rt, on_started=key_setup(keys))
            async with running(app) as client:
                async with rt.sessions() as session:
                    account = (await session.execute(select(Account))).scalar_one()
                job = PollJob(rt)
                while (await job.run_once(account.id))[account.id].more:  # type: ignore[union-attr]
                    pass
                async with rt.sessions() as session:
                    stored = (await session.execute(select(Workout))).scalars().all()
                by_discipline = {w.discipline: w for w in stored}
                assert len(stored) == 9
                (imported,) = [w for w in stored if w.origin is not None]
                assert imported.origin == "garmin"
                async with rt.sessions() as session:
                    wanted = await session.scalar(
                        select(func.count()).where(Delivery.workout_id == imported.id)
                    )
                assert wanted == 0  # the demo account leaves imported workouts out
                outdoor = next(w for w in stored if w.has_gps)
                assert "rowing" in by_discipline or "caesar" in by_discipline

                await sign_in(client, keys.admin)
                shown = page(await client.get(f"/workouts/{outdoor.id}"))
                assert shown.xpath("//svg[contains(@class, 'route')]//path")
                assert "gpx" in shown.xpath("//section[@id='downloads']//a/@data-format")
                rowing = by_discipline.get("rowing") or by_discipline["caesar"]
                rowed = await client.get(f"/workouts/{rowing.id}")
                assert rowed.status_code == 200
                assert page(rowed).xpath("//figure[contains(@class, 'chart-card')]")
                kept = page(await client.get(f"/workouts/{imported.id}"))
                assert kept.xpath("string(//*[@id='origin'])") == "imported from Garmin"
                assert kept.xpath("//*[@id='not-delivered-imported']")
