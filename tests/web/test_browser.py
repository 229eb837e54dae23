"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by playwright; never
a downloaded browser), against the service as ``pelosync serve`` runs it and a sandbox Peloton:
sign in, add a webhook, link an account, see the synced workouts, read their charts, retry a
failed delivery until it succeeds, and a read-only key that sees but cannot act.

Screenshots of the main pages go to ``test-artifacts/web/`` (not committed).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from service.accounts import linking as accounts
from service.accounts.models import SyncRun
from service.convert.peloton import parse_bundle
from service.deliveries.models import Delivery
from service.destinations.models import Destination
from service.web.charts import METRICS
from service.workouts.models import Workout
from tests.destinations.receiver import Receiver, refuse_the_first_message
from tests.support.waiting import wait_until as eventually
from tests.web.conftest import ARTIFACTS, LiveSite

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)
playwright = pytest.importorskip("playwright.async_api")

LAUNCH_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
# The pages' queries run on PostgreSQL too in the in-process tests; the browser adds nothing
# database-specific, so it runs once, on SQLite.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright.async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def sign_in(page: Any, site: LiveSite, key: str) -> None:
    await page.goto(site.url + "/")
    assert page.url.startswith(site.url + "/login")  # no session: the sign-in page
    await page.fill("input[name=key]", key)
    await page.click("button[type=submit]")
    await page.wait_for_url(site.url + "/")


async def flash(page: Any) -> str:
    text: str = await page.locator(".flash").first.inner_text()
    return text


def points_in(path: str) -> int:
    return len(re.findall(r"[ML]", path))


async def stored(site: LiveSite) -> list[Workout]:
    async with site.runtime.sessions() as session:
        return list((await session.execute(select(Workout).order_by(Workout.id))).scalars())


@SQLITE_ONLY
async def test_sign_in_sync_charts_and_retry(
    live_site: LiveSite, browser: Any, receiver: Receiver, webhook_secret: str
) -> None:
    site = live_site
    user = list(site.sandbox.accounts.values())[0]
    site.sandbox.add_workouts(user, kind="cycling_class", heart_rate=True)
    site.sandbox.add_workouts(user, kind="outdoor_run", heart_rate=True)
    refresh = site.sandbox.describe_user(user)["refresh_tokens"][0]["token"]
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(site.url + "/login")
    await shot(page, "01-sign-in")
    await sign_in(page, site, site.keys.admin)

    # A webhook destination through its form, then its test ping.
    await page.goto(site.url + "/destinations/new?kind=webhook")
    await page.fill("input[name=name]", "receiver")
    await page.fill("input[name=url]", receiver.url())
    await page.fill("input[name=secret]", webhook_secret)
    await page.click("#destination-form button[type=submit]")
    assert "Added receiver." in await flash(page)
    await page.click("text=Send a test")
    assert "Test succeeded (HTTP 200)" in await flash(page)
    assert receiver.requests[-1].payload["type"] == "ping"
    refuse_the_first_message(receiver)  # 413 to its file inline and as a link: failed

    # Link the sandbox account with its refresh token; it syncs at once.
    await page.goto(site.url + "/accounts")
    await page.fill("input[name=refresh_token]", refresh)
    await page.fill("input[name=sync_since]", "2000-01-01")
    await page.click("#link button[type=submit]")
    assert "syncing now" in await flash(page)

    async def synced() -> bool:
        return len(await stored(site)) == 2

    await eventually(synced, "the sync")
    workouts = await stored(site)
    assert {w.peloton_workout_id for w in workouts} == {
        w.workout_id for w in site.sandbox.workouts(user)
    }

    async def settled() -> bool:
        async with site.runtime.sessions() as session:
            stmt = select(func.count()).select_from(Delivery).where(Delivery.state == "pending")
            return (await session.execute(stmt)).scalar_one() == 0

    await eventually(settled, "the deliveries")

    # The overview: the account and the destination's health; "sync now" works.
    await page.goto(site.url + "/")
    account_row = page.locator("#accounts tbody tr")
    assert await account_row.count() == 1
    assert "active" in await account_row.inner_text()
    health = page.locator("#destination-health tbody tr")
    assert await health.locator("td[data-label=Failed]").inner_text() == "1"
    assert await health.locator("td[data-label=Delivered]").inner_text() == "1"
    await shot(page, "02-overview")
    await page.click("text=Sync now")
    assert re.search(r"Syncing now|already running", await flash(page))

    # The workouts list shows both synced workouts with their titles and delivery badges.
    await page.goto(site.url + "/workouts")
    rows = page.locator("#workouts tbody tr")
    assert await rows.count() == 2
    listed = await page.locator("#workouts tbody tr td[data-label=Title] a").all_inner_texts()
    assert sorted(listed) == sorted(w.title for w in workouts)
    assert await page.locator("#workouts .state-failed").count() == 1
    await shot(page, "03-workouts")

    # Each workout's page draws its recorded metrics over time, with lap boundaries.
    for workout in workouts:
        activity = parse_bundle(workout.bundle())
        await page.goto(f"{site.url}/workouts/{workout.id}")
        drawn = {
            await c.get_attribute("data-metric")
            for c in await page.locator("figure.chart-card").all()
        }
        recorded = {
            key
            for key in (metric.key for metric in METRICS)
            if any(getattr(s, key) is not None for s in activity.samples)
        }
        assert drawn == recorded and "heart_rate" in drawn
        for metric in drawn:
            chart = page.locator(f"figure[data-metric={metric}] svg.chart")
            box = await chart.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 80
            path = await chart.locator("path.series").get_attribute("d")
            assert path is not None and 100 < points_in(path) <= 600
            laps = [lap for lap in activity.laps if lap.start_offset_s > 0]
            assert await chart.locator("line.lap").count() == len(laps)
            assert await chart.locator("text.tick").count() >= 4
        route = page.locator("svg.route path.route")
        if activity.has_gps:
            assert points_in(await route.get_attribute("d") or "") > 100
            assert await page.locator("svg.route circle.start").count() == 1
        else:
            assert await route.count() == 0
        formats = await page.locator("#downloads a").evaluate_all(
            "links => links.map(a => a.dataset.format)"
        )
        assert formats == (
            ["tcx", "gpx", "fit", "json"] if activity.has_gps else ["tcx", "fit", "json"]
        )
        await shot(page, f"04-workout-{'gps' if activity.has_gps else 'indoor'}")

    # A download link gives the file without an API key (a signed link).
    json_link = await page.locator("#downloads a[data-format=json]").get_attribute("href")
    assert json_link is not None
    download = await context.request.get(site.url + json_link)
    assert download.status == 200
    assert len(json.loads(await download.body())["samples"]) > 100

    # The failed delivery: listed with its error; retried, it succeeds (the same message).
    await page.goto(site.url + "/deliveries")
    failed = page.locator("#delivery-list tbody tr")
    assert await failed.count() == 1
    assert "HTTP 413" in await failed.inner_text()
    delivery_id = int(await failed.get_attribute("data-delivery") or 0)
    await shot(page, "05-deliveries-failed")
    receiver.rule = None  # the receiver takes it now
    await failed.locator("button", has_text="Retry").click()
    assert f"Delivery {delivery_id} will be sent again now." in await flash(page)

    async def retried() -> bool:
        async with site.runtime.sessions() as session:
            delivery = await session.get(Delivery, delivery_id)
            return delivery is not None and delivery.state == "succeeded"

    await eventually(retried, "the retry")
    await page.reload()
    assert await page.locator("#none").inner_text() == "No failed deliveries."
    async with site.runtime.sessions() as session:
        delivery = await session.get(Delivery, delivery_id)
        assert delivery is not None
    await page.goto(f"{site.url}/workouts/{delivery.workout_id}")
    row = page.locator(f"#deliveries tr[data-delivery='{delivery_id}']")
    assert await row.get_attribute("data-state") == "succeeded"
    await page.click("#deliveries summary")
    outcomes = await page.locator("#deliveries .attempt-log li").all_inner_texts()
    assert [o.split(" · ")[1] for o in outcomes] == ["failed", "succeeded"]
    sent = [r for r in receiver.requests if r.headers["webhook-id"] == delivery.message_id]
    assert len(sent) == 3  # refused inline and as a link, then taken: one message throughout

    for name, path in (
        ("06-destinations", "/destinations"),
        ("07-destination", "/destinations/1"),
        ("08-accounts", "/accounts"),
        ("09-account", "/accounts/1"),
    ):
        await page.goto(site.url + path)
        await shot(page, name)

    # Readable on a phone: nothing wider than the screen
    # (and in dark mode, which the stylesheet follows)
    phone = await browser.new_context(
        viewport=PHONE, color_scheme="dark", storage_state=await context.storage_state()
    )
    small = await phone.new_page()
    for name, path in (
        ("10-phone-overview", "/"),
        ("11-phone-workout", f"/workouts/{workouts[-1].id}"),
    ):
        await small.goto(site.url + path)
        width = await small.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width}px wide on a phone"
        await shot(small, name)
    await phone.close()
    await context.close()


@SQLITE_ONLY
async def test_read_only_key_sees_but_cannot_act(live_site: LiveSite, browser: Any) -> None:
    site = live_site
    user = list(site.sandbox.accounts.values())[0]
    site.sandbox.add_workouts(user, kind="cycling_class")
    refresh = site.sandbox.describe_user(user)["refresh_tokens"][0]["token"]
    async with site.runtime.sessions() as session, session.begin():
        account = await accounts.link(
            site.runtime, session, accounts.LinkRequest(refresh_token=refresh)
        )
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, site, site.keys.read_only)
    assert await page.locator("#read-only").is_visible()
    assert await page.locator("#accounts tbody tr").count() == 1
    for path in ("/", "/accounts", f"/accounts/{account.id}", "/destinations", "/deliveries"):
        await page.goto(site.url + path)
        # The only form a read-only key gets is signing out.
        actions = await page.locator("form[method=post]").evaluate_all(
            "forms => forms.map(f => f.getAttribute('action'))"
        )
        assert actions == ["/logout"], (path, actions)
    await shot(page, "20-read-only-overview")

    async def runs() -> int:
        async with site.runtime.sessions() as session:
            stmt = select(func.count()).select_from(SyncRun)
            return int((await session.execute(stmt)).scalar_one())

    async def first_sync_done() -> bool:
        return await runs() > 0

    await eventually(first_sync_done, "the first sync")
    before = await runs()
    # A form posted from the page anyway (its CSRF token is valid): refused with a 403 page.
    csrf = await page.locator("form[action='/logout'] input[name=csrf]").get_attribute("value")
    async with page.expect_navigation() as navigation:
        await page.evaluate(
            """([url, csrf]) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = url;
                const input = document.createElement("input");
                input.name = "csrf";
                input.value = csrf;
                form.appendChild(input);
                document.body.appendChild(form);
                form.submit();
            }""",
            [f"/accounts/{account.id}/sync", csrf],
        )
    response = await navigation.value
    assert response.status == 403
    assert "read-only" in await page.locator("#error-message").inner_text()
    await shot(page, "21-read-only-refused")
    for url in (f"/accounts/{account.id}/pause", "/deliveries/1/retry", "/destinations/1/test"):
        refused = await context.request.post(site.url + url, form={"csrf": csrf or ""})
        assert refused.status == 403, url
    async with site.runtime.sessions() as session:
        stmt = select(SyncRun).where(SyncRun.trigger == "manual")
        assert (await session.execute(stmt)).first() is None
        unchanged = await session.get(type(account), account.id)
        assert unchanged is not None and not unchanged.paused
    assert await runs() == before
    await context.close()


@SQLITE_ONLY
async def test_api_docs_from_the_dashboard_need_no_internet(
    live_site: LiveSite, browser: Any
) -> None:
    site = live_site
    own = urllib.parse.urlsplit(site.url).netloc
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    requested: list[str] = []

    async def outside(route: Any) -> None:
        requested.append(route.request.url)
        await route.abort()

    # Anything for another host is recorded and refused (a CDN would be tried here).
    await context.route(re.compile(r"^(?!" + re.escape(site.url) + r")"), outside)
    page = await context.new_page()
    await sign_in(page, site, site.keys.admin)
    await page.click("#api-docs")
    await page.wait_for_url(site.url + "/docs")
    await page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert "pelosync" in await page.locator(".swagger-ui .info .title").inner_text()
    assert await page.locator(".opblock").count() > 20  # every operation, rendered
    await shot(page, "30-api-docs")
    assert [url for url in requested if not url.startswith("data:")] == [], own
    await context.close()


# Elements that stick out of the page, or are cut by a box that hides its overflow, unless a
# box that scrolls sideways holds them (a wide table on a phone scrolls: that is allowed).
OVERFLOWING = """() => {
  const found = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    let box = el.parentElement;
    while (box && getComputedStyle(box).overflowX === "visible") box = box.parentElement;
    const kind = box ? getComputedStyle(box).overflowX : "page";
    if (kind === "auto" || kind === "scroll") continue;
    const right = box && kind !== "page" ? box.getBoundingClientRect().right : window.innerWidth;
    if (r.right > right + 1) found.push(`${el.tagName}.${el.className} ${Math.round(r.right)}`);
  }
  return found.slice(0, 5);
}"""


@SQLITE_ONLY
async def test_pages_fit_a_phone_and_charts_read_well(live_site: LiveSite, browser: Any) -> None:
    """At 390 px nothing sticks out or is cut; at 1280 px charts keep one size whatever their
    number, their last time label is inside the chart, the heart-rate card holds one line."""
    from service.commands.demo import demo_setup  # the demo's account and folder

    site = live_site
    user = list(site.sandbox.accounts.values())[0]
    for kind in ("cycling_class", "outdoor_run", "strength"):
        site.sandbox.add_workouts(user, kind=kind, heart_rate=True)
    await demo_setup(site.sandbox, ARTIFACTS / "exports", site.url)(site.runtime)

    async def synced() -> bool:
        return len(await stored(site)) == 3

    await eventually(synced, "the demo rider's workouts")
    workouts = {w.discipline: w.id for w in await stored(site)}
    pages = ["/", "/workouts", "/deliveries", "/events", "/destinations", "/destinations/1"]
    pages += ["/accounts"]
    pages += ["/accounts/1", "/destinations/new?kind=webhook", "/destinations/new?kind=garmin"]
    pages += ["/workouts/999"]
    pages += [f"/workouts/{workout_id}" for workout_id in workouts.values()]
    for width in (390, 1280):
        context = await browser.new_context(viewport={"width": width, "height": 900})
        page = await context.new_page()
        await sign_in(page, site, site.keys.admin)
        for path in pages:
            await page.goto(site.url + path)
            assert await page.evaluate(OVERFLOWING) == [], (width, path)
            name = path.strip("/").replace("/", "-").replace("?", "-") or "overview"
            await shot(page, f"40-{name}-{width}")
        if width == 390:
            await page.goto(site.url + f"/workouts/{workouts['cycling']}")
            laps = page.locator(".scroll").first
            scroll_width, client_width = await laps.evaluate("e => [e.scrollWidth, e.clientWidth]")
            assert scroll_width > client_width  # the laps table scrolls, nothing is cut
        else:
            await page.goto(site.url + f"/workouts/{workouts['cycling']}")
            ride = await page.locator("svg.chart").evaluate_all(
                "svgs => svgs.map(s => s.getBoundingClientRect().width)"
            )
            metrics = await page.locator("figure.chart-card").evaluate_all(
                "figs => figs.map(f => f.dataset.metric)"
            )
            assert "resistance" in metrics and len(ride) >= 5
            assert await page.locator("svg.chart-heart_rate rect.zone").count() > 0
            assert await page.locator("#zone-legend").count() == 1
            # The last time label ends inside its chart, and every axis names its unit.
            inside = await page.locator("svg.chart").evaluate_all(
                """svgs => svgs.map(s => {
                    const box = s.getBoundingClientRect();
                    const labels = [...s.querySelectorAll("text.tick.x")];
                    const last = labels[labels.length - 1].getBoundingClientRect();
                    return last.right <= box.right + 0.5 && !!s.querySelector("text.unit");
                })"""
            )
            assert all(inside), inside
            heart = page.locator("#facts div", has_text="Heart rate").locator("dd")
            one_line = await heart.evaluate(
                """d => d.scrollWidth <= d.clientWidth && d.getBoundingClientRect().height
                    < 1.8 * parseFloat(getComputedStyle(d).fontSize)"""
            )
            assert one_line
            await page.goto(site.url + f"/workouts/{workouts['strength']}")
            (alone,) = await page.locator("svg.chart").evaluate_all(
                "svgs => svgs.map(s => s.getBoundingClientRect().width)"
            )
            assert alone == pytest.approx(ride[0], abs=1)  # one chart: the size of one of five
        await context.close()


@SQLITE_ONLY
async def test_reloading_after_a_form_repeats_nothing(
    live_site: LiveSite, browser: Any, tmp_path: Path
) -> None:
    site = live_site
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, site, site.keys.admin)

    async def names() -> list[str]:
        async with site.runtime.sessions() as session:
            return list((await session.execute(select(Destination.name))).scalars())

    await page.goto(site.url + "/destinations/new?kind=directory")
    await page.fill("input[name=name]", "Once")
    await page.fill("input[name=root]", str(tmp_path / "once"))
    await page.click("form[action='/destinations'] button[type=submit]")
    await page.wait_for_url(re.compile(r".*/destinations/\d+$"))  # post/redirect/get
    reloaded = await page.reload()
    assert reloaded is not None and reloaded.status == 200
    assert await names() == ["Once"]

    # A refused form answers in place; reloading that answer posts it again: refused, saying so.
    await page.goto(site.url + "/destinations/new?kind=webhook")
    await page.fill("input[name=name]", "Bad")
    await page.fill("input[name=url]", "ftp://x")
    await page.click("form[action='/destinations'] button[type=submit]")
    await page.wait_for_load_state()
    again = await page.reload()
    assert again is not None and again.status == 409
    assert "nothing more was done" in await page.locator("#error-message").inner_text()
    assert await names() == ["Once"]
    await shot(page, "50-form-sent-twice")
    await context.close()
