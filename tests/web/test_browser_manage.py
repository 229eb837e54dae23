"""Managing pelosync from the dashboard in real Chromium: the link form's method chooser, a
backfill's progress, retrying every failed delivery, what a destination received, previewing
and confirming a replay, sending ticked workouts, API keys, deleting a destination and an
account. Every new page is screenshot at 1280 and 390 px (``test-artifacts/web/``) and must
fit a phone's width.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from service.accounts import linking as accounts
from service.accounts.models import Account
from service.auth.models import ApiKey
from service.deliveries.models import Delivery
from service.destinations import service as destinations
from service.workouts.models import Workout
from tests.destinations.receiver import Receiver, refuse_the_first_message
from tests.web.conftest import LiveSite
from tests.web.test_browser import (
    PHONE,
    SQLITE_ONLY,
    browser,
    eventually,
    flash,
    shot,
    sign_in,
)

__all__ = ["browser"]  # the fixture, used by name


async def scalar(site: LiveSite, stmt: Any) -> Any:
    async with site.runtime.sessions() as session:
        return (await session.execute(stmt)).scalar_one()


async def states(site: LiveSite, destination_id: int) -> dict[str, int]:
    async with site.runtime.sessions() as session:
        rows = await session.execute(
            select(Delivery.state, func.count())
            .where(Delivery.destination_id == destination_id)
            .group_by(Delivery.state)
        )
        return {row[0]: row[1] for row in rows}


async def fits_and_shoot(browser: Any, context: Any, site: LiveSite, pages: dict[str, str]) -> None:
    """Each page at 1280 px and at 390 px (dark), nothing wider than the phone."""
    wide = await context.new_page()
    phone = await browser.new_context(
        viewport=PHONE, color_scheme="dark", storage_state=await context.storage_state()
    )
    small = await phone.new_page()
    for name, path in pages.items():
        for tab, suffix in ((wide, ""), (small, "-390")):
            response = await tab.goto(site.url + path)
            assert response.status == 200, path
            await shot(tab, f"{name}{suffix}")
        width = await small.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width}px wide on a phone"
    await phone.close()
    await wide.close()


@SQLITE_ONLY
async def test_manage_from_the_dashboard(
    live_site: LiveSite, browser: Any, receiver: Receiver, webhook_secret: str
) -> None:
    site = live_site
    user = list(site.sandbox.accounts.values())[0]
    for kind in ("cycling_class", "outdoor_run", "rowing"):
        site.sandbox.add_workouts(user, kind=kind, heart_rate=True)
    refresh = site.sandbox.describe_user(user)["refresh_tokens"][0]["token"]
    async with site.runtime.sessions() as session, session.begin():
        destination, _ = await destinations.create(
            site.runtime,
            session,
            {
                "name": "receiver",
                "kind": "webhook",
                "config": {"url": receiver.url()},
                "secrets": {"secret": webhook_secret},
                "formats": ["fit", "json"],
            },
        )
    # Linking calls Peloton, which is never done inside a write transaction (the request budget
    # writes its own row: on SQLite it would wait for this transaction's lock).
    async with site.runtime.sessions() as session, session.begin():
        # A second account, paused mid-backfill (not polled): its progress stays on show.
        paused = await accounts.link(
            site.runtime,
            session,
            accounts.LinkRequest(
                label="Backfilling rider",
                refresh_token=site.sandbox.describe_user(site.sandbox.add_user(workouts=0))[
                    "refresh_tokens"
                ][0]["token"],
            ),
        )
        paused.paused = True
        paused.backfill_found = 412
        paused.backfill_reached = site.runtime.clock() - timedelta(days=200)
        paused.sync_since = site.runtime.clock() - timedelta(days=730)
    refuse_the_first_message(receiver)  # its file fails for good, inline and as a link
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, site, site.keys.admin)

    # Linking: only the chosen method's fields are shown.
    await page.goto(site.url + "/accounts")
    token, username = (
        page.locator("input[name=refresh_token]"),
        page.locator("input[name=username]"),
    )
    assert await token.is_visible() and not await username.is_visible()
    await page.check("input[name=method][value=password]")
    assert not await token.is_visible() and await username.is_visible()
    assert await page.locator("input[name=password]").is_visible()
    await shot(page, "30-link-password")
    await page.check("input[name=method][value=refresh_token]")
    assert await token.is_visible() and not await username.is_visible()
    await token.fill(refresh)
    await page.fill("input[name=sync_since]", "2000-01-01")
    await page.click("#link button[type=submit]")
    assert "syncing now" in await flash(page)

    async def delivered() -> bool:
        found = await states(site, destination.id)
        return found.get("pending", 0) == 0 and sum(found.values()) == 6

    await eventually(delivered, "the deliveries")
    assert (await states(site, destination.id)).get("failed") == 1
    async with site.runtime.sessions() as session:
        rows = await session.execute(select(Workout).order_by(Workout.started_at))
        workouts = list(rows.scalars())
        linked = select(Account).where(Account.id != paused.id)
        account = (await session.execute(linked)).scalar_one()
    assert len(workouts) == 3
    newest = workouts[-1]

    # Every new page, wide and on a phone, before anything is changed.
    async with site.runtime.sessions() as session:
        keys = (await session.execute(select(ApiKey.id).order_by(ApiKey.id))).scalars().all()
    day = workouts[0].started_at.date().isoformat()
    d = destination.id
    await fits_and_shoot(
        browser,
        context,
        site,
        {
            "31-overview-backfill": "/",
            "32-account-backfill": f"/accounts/{paused.id}",
            "33-retry-failed": f"/destinations/{d}/retry-failed",
            "34-delivered": f"/destinations/{d}/delivered",
            "35-replay-preview": f"/destinations/{d}/replay?start={day}&end={day}",
            "36-send": "/send?" + "&".join(f"workout_ids={w.id}" for w in workouts),
            "37-api-keys": "/api-keys",
            "38-revoke-key": f"/api-keys/{keys[-1]}/revoke",
            "39-delete-destination": f"/destinations/{d}/delete",
            "40-delete-account": f"/accounts/{account.id}/delete",
            "41-workouts-pick": "/workouts",
        },
    )
    await page.goto(site.url + "/")
    progress = await page.locator(f"#backfill-{paused.id}").inner_text()
    assert "0 of 412 stored" in progress

    # Retry every failed delivery: the confirmation says how many.
    receiver.rule = None  # the receiver takes everything now
    await page.goto(f"{site.url}/destinations/{d}")
    await page.click("#retry-failed")
    assert "1 failed delivery to receiver will be sent again" in await page.inner_text("#confirm")
    await page.click("#confirm-button")
    assert "1 failed delivery will be sent again now." in await flash(page)

    async def retried() -> bool:
        return await states(site, d) == {"succeeded": 6}

    await eventually(retried, "the retry")

    # What it received: a row per file, each linking to its workout.
    await page.click("#delivered-link")
    assert await page.locator("#delivered tbody tr").count() == 6
    await page.locator("#delivered tbody tr a").first.click()
    assert "/workouts/" in page.url

    # A replay: previewed first (nothing queued), then confirmed.
    before = len(receiver.requests)
    await page.goto(f"{site.url}/destinations/{d}")
    await page.fill("#replay input[name=start]", day)
    await page.fill("#replay input[name=end]", newest.started_at.date().isoformat())
    await page.click("#replay button[type=submit]")
    assert await page.locator("#planned tbody tr").count() == 3
    assert "3 workouts" in await page.inner_text("#confirm")
    assert await states(site, d) == {"succeeded": 6} and len(receiver.requests) == before
    await page.click("#confirm-button")
    assert "Replay queued 6 deliveries." in await flash(page)
    await eventually(retried, "the replay")
    assert len(receiver.requests) == before + 6

    # Ticked workouts from the list, then one from its own page.
    await page.goto(site.url + "/workouts")
    await page.check(f"input[name=workout_ids][value='{workouts[0].id}']")
    await page.check(f"input[name=workout_ids][value='{workouts[1].id}']")
    await page.click("#send-chosen button")
    assert await page.locator("#planned tbody tr").count() == 2
    await page.click("#confirm-button")
    assert "Queued 4 deliveries." in await flash(page)
    await page.goto(f"{site.url}/workouts/{newest.id}")
    await page.click("#send-workout button")
    assert "1 workout will be sent to receiver now (2 files)" in await page.inner_text("#confirm")
    await page.click("#confirm-button")
    assert "Queued 2 deliveries." in await flash(page)
    await eventually(retried, "the sends")
    assert len(receiver.requests) == before + 12

    # An API key: created, shown once, revoked after confirming.
    await page.goto(site.url + "/api-keys")
    await page.fill("#create-key input[name=name]", "backup script")
    await page.click("#create-key button[type=submit]")
    key = await page.locator("#new-key code").inner_text()
    assert key.startswith("psk_")
    await shot(page, "42-api-key-created")
    await page.reload()
    assert await page.locator("#new-key").count() == 0
    row = page.locator("#key-list tr", has_text="backup script")
    assert "read-only" in await row.inner_text()
    await row.locator("a", has_text="Revoke").click()
    await page.click("#confirm-button")
    assert "Revoked backup script." in await flash(page)

    # Deleting, after confirming: the destination, then the account with its workouts.
    await page.goto(f"{site.url}/destinations/{d}")
    await page.click("#delete")
    await page.click("#confirm-button")
    assert "Deleted receiver." in await flash(page)
    assert await page.locator(f"#destinations tr[data-destination='{d}']").count() == 0
    await page.goto(f"{site.url}/accounts/{account.id}")
    await page.click("#delete")
    assert "3 workouts" in await page.inner_text("#confirm")
    await page.click("#confirm-button")
    assert "and its workouts" in await flash(page)
    assert await scalar(site, select(func.count()).select_from(Workout)) == 0
    await context.close()


@SQLITE_ONLY
async def test_read_only_key_sees_the_new_pages_without_a_button(
    live_site: LiveSite, browser: Any
) -> None:
    site = live_site
    user = list(site.sandbox.accounts.values())[0]
    site.sandbox.add_workouts(user, kind="outdoor_run")
    refresh = site.sandbox.describe_user(user)["refresh_tokens"][0]["token"]
    async with site.runtime.sessions() as session, session.begin():
        account = await accounts.link(
            site.runtime, session, accounts.LinkRequest(refresh_token=refresh)
        )
        destination, _ = await destinations.create(
            site.runtime,
            session,
            {
                "name": "folder",
                "kind": "directory",
                "config": {"root": str(site.runtime.settings.resolved_export_roots()[0])},
            },
        )

    async def synced() -> bool:
        return await scalar(site, select(func.count()).select_from(Workout)) == 1

    await eventually(synced, "the sync")
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, site, site.keys.read_only)
    d = destination.id
    for path in (
        "/api-keys",
        f"/destinations/{d}",
        f"/destinations/{d}/delivered",
        f"/destinations/{d}/replay?start=2000-01-01&end=2100-01-01",
        "/workouts",
        f"/accounts/{account.id}",
    ):
        await page.goto(site.url + path)
        actions = await page.locator("form[method=post]").evaluate_all(
            "forms => forms.map(f => f.getAttribute('action'))"
        )
        assert actions == ["/logout"], (path, actions)
        assert await page.locator("input[type=checkbox][name=workout_ids]").count() == 0
        assert await page.locator("a.danger, #confirm-button, #create-key").count() == 0, path
    for path in (
        f"/destinations/{d}/delete",
        f"/accounts/{account.id}/delete",
        "/api-keys/1/revoke",
    ):
        response = await page.goto(site.url + path)
        assert response.status == 403, path
        assert "read-only" in await page.locator("#error-message").inner_text()
    await shot(page, "43-read-only-refused-delete")
    await context.close()
