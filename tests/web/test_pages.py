"""Every dashboard page renders what the database holds, for admin and read-only keys; read-only
pages carry no action; errors are HTML pages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from service.accounts.models import Account
from service.deliveries.models import Delivery
from service.destinations.models import Destination
from service.workouts.models import Workout
from tests.web.conftest import Site, page, sign_in


def pages(seeded: dict[str, Any]) -> list[str]:
    paths = ["/", "/workouts", "/deliveries", "/deliveries?state=pending", "/destinations"]
    paths += ["/accounts", "/workouts?status=failed", "/workouts?discipline=running"]
    paths += [f"/workouts/{w}" for w in seeded["workouts"]]
    paths += [f"/destinations/{d}" for d in seeded["destinations"]]
    paths += [f"/accounts/{a}" for a in seeded["accounts"]]
    return paths


STATE_COLUMNS = (("succeeded", "Delivered"), ("failed", "Failed"), ("pending", "Pending"))


def posted_forms(doc: Any) -> list[str]:
    return [str(a) for a in doc.xpath("//form[@method='post']/@action")]


async def test_pages_render_for_both_roles(site: Site, seeded: dict[str, Any]) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    admin_forms = set()
    for path in pages(seeded):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        admin_forms.update(posted_forms(page(response)))
    for path in ("/destinations/new?kind=webhook", "/destinations/new?kind=strava"):
        assert (await client.get(path)).status_code == 200
    # Admin pages offer every kind of action.
    for action in ("/sync", "/pause", "/retry", "/replay", "/test", "/disable", "/edit"):
        assert any(a.endswith(action) for a in admin_forms), action

    await client.post(
        "/logout", data={"csrf": page(response).xpath("string(//input[@name='csrf']/@value)")}
    )
    await sign_in(client, site.keys.read_only)
    for path in pages(seeded):
        response = await client.get(path)
        assert response.status_code == 200, path
        doc = page(response)
        assert posted_forms(doc) == ["/logout"], path
        assert not doc.xpath("//a[contains(@href, '/strava/connect')]"), path
        assert doc.xpath("string(//span[@id='read-only'])") == "read-only"


async def test_overview_and_lists_show_the_ledger(site: Site, seeded: dict[str, Any]) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    async with site.runtime.sessions() as session:
        workouts = list((await session.execute(select(Workout))).scalars())
        deliveries = list((await session.execute(select(Delivery))).scalars())
        destinations = list((await session.execute(select(Destination))).scalars())
        accounts = list((await session.execute(select(Account))).scalars())

    overview = page(await client.get("/"))
    rows = overview.xpath("//table[@id='accounts']/tbody/tr")
    assert [r.xpath("string(td[1])").strip() for r in rows] == [a.label for a in accounts]
    for destination in destinations:
        (row,) = overview.xpath(
            f"//table[@id='destination-health']//tr[@data-destination='{destination.id}']"
        )
        mine = [d for d in deliveries if d.destination_id == destination.id]
        for state, label in (
            ("succeeded", "Delivered"),
            ("failed", "Failed"),
            ("pending", "Pending"),
        ):
            shown = row.xpath(f"string(td[@data-label='{label}'])").strip()
            assert shown == str(sum(d.state == state for d in mine)), (destination.name, state)
    tiles = overview.xpath("string(//div[@class='tiles'])")
    assert f"{len(workouts)} workouts" in " ".join(tiles.split())

    listed = page(await client.get("/workouts"))
    rows = listed.xpath("//table[@id='workouts']/tbody/tr")
    newest_first = sorted(workouts, key=lambda w: w.started_at, reverse=True)
    assert [int(r.get("data-workout")) for r in rows] == [w.id for w in newest_first]
    for row, workout in zip(rows, newest_first, strict=True):
        assert row.xpath("string(td[@data-label='Title'])").strip().startswith(workout.title)
        states = [d.state for d in deliveries if d.workout_id == workout.id]
        badges = row.xpath("string(td[@data-label='Deliveries'])")
        if workout.conversion_error:
            assert "unconvertible" in badges
        elif not states:
            assert "none" in badges
        else:
            for state, mark in (("succeeded", "✓"), ("failed", "✗"), ("pending", "…")):
                if states.count(state):
                    assert f"{mark} {states.count(state)}" in badges
    failed = page(await client.get("/workouts?status=failed"))
    shown = {int(r.get("data-workout")) for r in failed.xpath("//table[@id='workouts']/tbody/tr")}
    assert shown == {d.workout_id for d in deliveries if d.state == "failed"}

    for state in ("failed", "pending"):
        doc = page(await client.get(f"/deliveries?state={state}"))
        rows = doc.xpath("//table[@id='delivery-list']/tbody/tr")
        expected = sorted((d.id for d in deliveries if d.state == state), reverse=True)
        assert [int(r.get("data-delivery")) for r in rows] == expected


async def test_workout_page_draws_charts_laps_and_links(site: Site, seeded: dict[str, Any]) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    async with site.runtime.sessions() as session:
        run = (await session.execute(select(Workout).where(Workout.has_gps))).scalars().first()
        broken = (
            await session.execute(select(Workout).where(Workout.conversion_error.is_not(None)))
        ).scalar_one()
    assert run is not None
    doc = page(await client.get(f"/workouts/{run.id}"))
    metrics = doc.xpath("//figure[@class='chart-card']/@data-metric")
    assert "heart_rate" in metrics and "speed" in metrics
    assert doc.xpath("//svg[@class='route']/path[@class='route']")
    links = doc.xpath("//section[@id='downloads']//a")
    assert [a.get("data-format") for a in links] == ["tcx", "gpx", "fit", "json"]
    for link in links:
        assert link.get("href").startswith(
            f"/v1/files/workouts/{run.id}/{link.get('data-format')}?"
        )
    response = await client.get(links[-1].get("href"))  # signed: no key, no cookie needed
    assert response.status_code == 200 and response.json()["source"]["workout_id"]

    doc = page(await client.get(f"/workouts/{broken.id}"))
    assert "broken bundle" in doc.xpath("string(//p[@id='chart-error'])")
    assert not doc.xpath("//svg")


async def test_errors_are_pages(site: Site, seeded: dict[str, Any]) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    for path, status in (
        ("/workouts/999999", 404),
        ("/accounts/999999", 404),
        ("/destinations/999999", 404),
        ("/workouts/abc", 404),
        ("/workouts/99999999999", 404),
        ("/destinations/new?kind=ftp", 422),
        ("/deliveries?state=bogus", 422),
        ("/workouts?cursor=!!", 422),
    ):
        response = await client.get(path)
        assert response.status_code == status, path
        assert response.headers["content-type"].startswith("text/html"), path
        assert page(response).xpath("string(//h1)"), path
    response = await client.get("/workouts/999999")
    assert page(response).xpath("string(//p[@id='error-message'])") == "Workout 999999 not found"


async def test_the_intervals_form_says_where_its_api_key_is(site: Site) -> None:
    await sign_in(site.client, site.keys.admin)
    form = page(await site.client.get("/destinations/new?kind=intervals"))
    hint = form.xpath("string(//small[@id='api_key-help'])")
    assert "Settings, Developer Settings" in hint
