"""Managing from the dashboard: deleting destinations and accounts, API keys, what a
destination received, retrying all its failed deliveries, sending chosen workouts, previewing
a replay, a backfill's progress — each change behind a confirmation page, none for read-only
keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from service.accounts.models import Account
from service.auth.models import ApiKey
from service.deliveries.models import Delivery
from service.destinations.models import Destination
from service.web import sending
from service.web.apikeys import NEW_KEY_COOKIE
from service.workouts.models import Workout
from tests.api.conftest import bearer
from tests.api.seed import START
from tests.web.conftest import Site, csrf_of, page, sign_in
from tests.web.test_actions import flash, follow

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def text(response: httpx.Response, xpath: str = "//section[@id='confirm']") -> str:
    return " ".join(page(response).xpath(f"string({xpath})").split())


def confirm_form(response: httpx.Response) -> tuple[str, dict[str, list[str]]]:
    """The confirmation page's POST form: (action, fields)."""
    doc = page(response)
    forms = doc.xpath("//section[@id='confirm']//form[@method='post']")
    assert len(forms) == 1, response.text
    fields: dict[str, list[str]] = {}
    for field in forms[0].xpath(".//input"):
        fields.setdefault(field.get("name"), []).append(field.get("value"))
    return forms[0].get("action"), fields


async def count(site: Site, model: Any, *where: Any) -> int:
    async with site.runtime.sessions() as session:
        stmt = select(func.count()).select_from(model).where(*where)
        return int((await session.execute(stmt)).scalar_one())


async def test_delete_a_destination_and_an_account_after_confirming(
    site: Site, seeded: dict[str, Any]
) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    one = seeded["destinations"][0]
    shown = await client.get(f"/destinations/{one}")
    assert page(shown).xpath("//a[@id='delete']/@href") == [f"/destinations/{one}/delete"]
    confirm = await client.get(f"/destinations/{one}/delete")
    assert confirm.status_code == 200
    assert "5 deliveries (2 delivered, 2 failed, 1 pending)" in text(confirm)
    assert "The workouts stay" in text(confirm)
    assert await count(site, Destination, Destination.id == one) == 1  # asking changes nothing
    action, fields = confirm_form(confirm)
    deleted = await client.post(action, data=fields)
    assert deleted.headers["location"] == "/destinations"
    assert "Deleted one." in flash(await follow(client, deleted))
    assert await count(site, Destination, Destination.id == one) == 0
    assert await count(site, Delivery, Delivery.destination_id == one) == 0
    assert await count(site, Workout) == 8
    assert (await client.get(f"/destinations/{one}/delete")).status_code == 404

    account = seeded["accounts"][0]
    shown = await client.get(f"/accounts/{account}")
    assert page(shown).xpath("//a[@id='delete']/@href") == [f"/accounts/{account}/delete"]
    confirm = await client.get(f"/accounts/{account}/delete")
    # Workouts 0, 2, 4, 6 are this account's; the other destination holds 3 of their files.
    assert "with its 4 workouts, their 3 deliveries (3 delivered)" in text(confirm)
    action, fields = confirm_form(confirm)
    deleted = await client.post(action, data=fields)
    assert "Deleted u-a and its workouts." in flash(await follow(client, deleted))
    assert await count(site, Account, Account.id == account) == 0
    assert await count(site, Workout, Workout.account_id == account) == 0
    assert await count(site, Workout) == 4


@SQLITE_ONLY
async def test_read_only_keys_see_but_never_act(site: Site, seeded: dict[str, Any]) -> None:
    client = site.client
    csrf = await sign_in(client, site.keys.read_only)
    one, account = seeded["destinations"][0], seeded["accounts"][0]
    workout = seeded["workouts"][0]
    for path in (
        f"/destinations/{one}/delete",
        f"/accounts/{account}/delete",
        f"/destinations/{one}/retry-failed",
        f"/send?workout_ids={workout}",
        "/api-keys/1/revoke",
    ):
        refused = await client.get(path)
        assert refused.status_code == 403, path
        assert "read-only" in text(refused, "//p[@id='error-message']")
    for path in (
        f"/destinations/{one}/delete",
        f"/accounts/{account}/delete",
        f"/destinations/{one}/retry-failed",
        "/send",
        "/api-keys",
        "/api-keys/1/revoke",
    ):
        data = {"csrf": csrf, "destination_id": str(one), "workout_ids": str(workout)}
        refused = await client.post(path, data=data | {"name": "x", "role": "admin"})
        assert refused.status_code == 403, path
    assert await count(site, Destination) == 2 and await count(site, Account) == 2
    assert await count(site, ApiKey) == 2
    assert await count(site, Delivery, Delivery.state == "failed") == 2
    # What they may see: the lists and previews, without a button.
    for path in (
        "/api-keys",
        f"/destinations/{one}/delivered",
        f"/destinations/{one}/replay?start=2026-03-01&end=2026-03-01",
        "/workouts",
        f"/workouts/{workout}",
        f"/destinations/{one}",
        f"/accounts/{account}",
    ):
        shown = await client.get(path)
        assert shown.status_code == 200, path
        doc = page(shown)
        assert [str(a) for a in doc.xpath("//form[@method='post']/@action")] == ["/logout"], path
        assert not doc.xpath("//input[@name='workout_ids']"), path
        assert not doc.xpath("//a[contains(@href, '/delete') or contains(@href, '/revoke')]")


async def test_api_keys_are_created_shown_once_listed_and_revoked(
    site: Site, seeded: dict[str, Any]
) -> None:
    client = site.client
    csrf = await sign_in(client, site.keys.admin)
    listed = await client.get("/api-keys")
    names = [" ".join(n.split()) for n in page(listed).xpath("//tr[@data-key]/td[1]/span/text()")]
    assert names == ["first admin key", "dashboard"]
    assert site.keys.admin not in listed.text and site.keys.read_only not in listed.text

    refused = await client.post("/api-keys", data={"csrf": csrf, "name": "", "role": "admin"})
    assert "name" in flash(await follow(client, refused))
    # Form tokens are single-use: each submission takes the one of a page shown for it.
    csrf = csrf_of(await client.get("/api-keys"))
    created = await client.post(
        "/api-keys", data={"csrf": csrf, "name": "backup script", "role": "read_only"}
    )
    assert created.status_code == 303 and created.headers["location"] == "/api-keys"
    assert "psk_" not in str(created.headers)  # not in a URL, not in a readable cookie
    carried = created.cookies[NEW_KEY_COOKIE]
    assert "psk_" not in carried  # encrypted
    # Bound to the key that created it: another session carrying the cookie sees nothing.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=site.app), base_url="http://testserver"
    ) as other:
        await sign_in(other, site.keys.read_only)
        other.cookies.set(NEW_KEY_COOKIE, carried, path="/api-keys")
        assert not page(await other.get("/api-keys")).xpath("//div[@id='new-key']")
    shown = await client.get("/api-keys")
    key = text(shown, "//div[@id='new-key']//code")
    assert key.startswith("psk_") and "Created backup script." in flash(shown)
    again = await client.get("/api-keys")
    assert not page(again).xpath("//div[@id='new-key']") and key not in again.text
    # The key works, read-only.
    assert (await client.get("/v1/accounts", headers=bearer(key))).status_code == 200
    assert (await client.post("/v1/api-keys", headers=bearer(key))).status_code == 403
    row = page(again).xpath("//tr[td[1][contains(., 'backup script')]]")[0]
    assert "read-only" in row.text_content() and "never" in row.text_content()
    new_id = int(row.get("data-key"))

    confirm = await client.get(f"/api-keys/{new_id}/revoke")
    assert "stops working at once" in text(confirm)
    action, fields = confirm_form(confirm)
    revoked = await client.post(action, data=fields)
    assert "Revoked backup script." in flash(await follow(client, revoked))
    assert (await client.get("/v1/accounts", headers=bearer(key))).status_code == 401
    assert f'data-key="{new_id}"' not in (await client.get("/api-keys")).text
    assert f'data-key="{new_id}"' in (await client.get("/api-keys?revoked=true")).text

    # The last admin key cannot go; the key you are signed in with signs you out.
    me = int(page(again).xpath("//tr[td[1]//span[text()='you']]/@data-key")[0])
    confirm = await client.get(f"/api-keys/{me}/revoke")
    assert "you will be signed out" in text(confirm)
    last = await client.post(f"/api-keys/{me}/revoke", data={"csrf": csrf_of(confirm)})
    assert "last admin key" in flash(await follow(client, last))
    csrf = csrf_of(await client.get("/api-keys"))
    await client.post("/api-keys", data={"csrf": csrf, "name": "second", "role": "admin"})
    confirm = await client.get(f"/api-keys/{me}/revoke")
    signed_out = await client.post(f"/api-keys/{me}/revoke", data={"csrf": csrf_of(confirm)})
    assert signed_out.headers["location"] == "/login"
    assert (await client.get("/api-keys")).headers["location"].startswith("/login")


async def test_delivered_list_pages_through_what_a_destination_received(
    site: Site, seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = site.client
    await sign_in(client, site.keys.read_only)
    one = seeded["destinations"][0]
    w, d = seeded["workouts"], seeded["deliveries"]
    shown = await client.get(f"/destinations/{one}")
    assert page(shown).xpath("//a[@id='delivered-link']/@href") == [
        f"/destinations/{one}/delivered"
    ]
    listed = await client.get(f"/destinations/{one}/delivered")
    doc = page(listed)
    assert [int(i) for i in doc.xpath("//tr[@data-delivery]/@data-delivery")] == [d[6], d[0]]
    assert doc.xpath("//tr[@data-delivery]//a/@href") == [f"/workouts/{w[3]}", f"/workouts/{w[0]}"]
    assert "FIT" in text(listed, "//table[@id='delivered']")
    monkeypatch.setattr(sending, "PAGE_SIZE", 1)
    first = page(await client.get(f"/destinations/{one}/delivered"))
    older = first.xpath("string(//a[@id='older']/@href)")
    assert older == f"/destinations/{one}/delivered?before={d[6]}"
    second = page(await client.get(older))
    assert second.xpath("//tr[@data-delivery]/@data-delivery") == [str(d[0])]
    assert not second.xpath("//a[@id='older']")
    assert (await client.get("/destinations/9999/delivered")).status_code == 404


async def test_retry_every_failed_delivery_after_confirming(
    site: Site, seeded: dict[str, Any]
) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    one, two = seeded["destinations"]
    shown = await client.get(f"/destinations/{one}")
    link = page(shown).xpath("//a[@id='retry-failed']")[0]
    assert link.get("href") == f"/destinations/{one}/retry-failed" and "2 failed" in link.text
    confirm = await client.get(link.get("href"))
    assert "2 failed deliveries to one will be sent again now" in text(confirm)
    assert await count(site, Delivery, Delivery.state == "failed") == 2
    action, fields = confirm_form(confirm)
    retried = await client.post(action, data=fields)
    assert "2 failed deliveries will be sent again now." in flash(await follow(client, retried))
    assert await count(site, Delivery, Delivery.state == "failed") == 0
    nothing = await client.get(f"/destinations/{two}/retry-failed")
    assert "no failed delivery" in text(nothing)
    assert not page(nothing).xpath("//section[@id='confirm']//form")


async def test_send_chosen_workouts_after_confirming(site: Site, seeded: dict[str, Any]) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    one, two = seeded["destinations"]
    w = seeded["workouts"]
    # From the workout page: a destination to choose, then the confirmation.
    workout_page = page(await client.get(f"/workouts/{w[5]}"))
    form = workout_page.xpath("//form[@id='send-workout']")[0]
    assert form.get("method") == "get" and form.get("action") == "/send"
    assert form.xpath(".//option/@value") == [str(one), str(two)]
    # From the list: a box for each convertible workout.
    listed = page(await client.get("/workouts"))
    boxes = listed.xpath("//form[@id='send-workouts']//input[@name='workout_ids']/@value")
    assert sorted(int(b) for b in boxes) == sorted(w[:7])

    query = f"/send?workout_ids={w[5]}&workout_ids={w[6]}&workout_ids={w[7]}"
    confirm = await client.get(f"{query}&destination_id={two}")
    assert confirm.status_code == 200
    assert "2 workouts will be sent to two now (2 files)" in text(confirm)
    assert "it could not be converted" in text(confirm, "//ul[@id='skipped']")
    planned = page(confirm).xpath("//table[@id='planned']//tr[@data-workout]/@data-workout")
    assert sorted(int(p) for p in planned) == [w[5], w[6]]
    before = await count(site, Delivery, Delivery.destination_id == two)
    action, fields = confirm_form(confirm)
    assert fields["destination_id"] == [str(two)]
    assert sorted(fields["workout_ids"]) == sorted([str(w[5]), str(w[6])])
    sent = await client.post(action, data=fields)
    assert sent.headers["location"] == f"/destinations/{two}"
    assert "Queued 2 deliveries." in flash(await follow(client, sent))
    assert await count(site, Delivery, Delivery.destination_id == two) == before + 2

    # Choosing another destination on the page shows what goes there instead.
    other = await client.get(f"{query}&destination_id={one}")
    assert "2 workouts will be sent to one now" in text(other)
    # Gone since the confirmation: a workout (nothing queued, the reason shown), a destination.
    _, fields = confirm_form(await client.get(f"{query}&destination_id={two}"))
    gone = await client.post(action, data=fields | {"workout_ids": [str(w[5]), "99999"]})
    assert gone.headers["location"] == "/workouts"
    assert "Send: workout 99999 not found" in flash(await follow(client, gone))
    assert await count(site, Delivery, Delivery.destination_id == two) == before + 2
    _, fields = confirm_form(await client.get(f"{query}&destination_id={two}"))
    missing = await client.post(action, data=fields | {"destination_id": "9999"})
    assert missing.status_code == 404
    nothing = await client.get(f"/send?destination_id={one}")
    assert "Tick the workouts to send first." in flash(await follow(client, nothing))
    assert (await client.get(f"/send?workout_ids=99999&destination_id={one}")).status_code == 404


async def test_replay_preview_shows_what_will_be_queued_before_it_is(
    site: Site, seeded: dict[str, Any]
) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    one = seeded["destinations"][0]
    form = page(await client.get(f"/destinations/{one}")).xpath("//section[@id='replay']//form")[0]
    assert form.get("method") == "get" and form.get("action") == f"/destinations/{one}/replay"
    day = START.date().isoformat()
    before = await count(site, Delivery, Delivery.state == "pending")
    preview = await client.get(f"/destinations/{one}/replay?start={day}&end={day}")
    assert "7 workouts started 01 Mar 2026 (UTC) will be sent to one again (7 files)" in text(
        preview
    )
    assert len(page(preview).xpath("//table[@id='planned']//tr[@data-workout]")) == 7
    assert await count(site, Delivery, Delivery.state == "pending") == before  # nothing yet
    action, fields = confirm_form(preview)
    assert action == "/deliveries/replay"
    replayed = await client.post(action, data=fields)
    assert replayed.headers["location"] == f"/destinations/{one}"
    assert "Replay queued 7 deliveries." in flash(await follow(client, replayed))

    monkeypatch_shown = sending.SHOWN
    sending.SHOWN = 3
    try:
        capped = await client.get(f"/destinations/{one}/replay?start={day}&end={day}")
    finally:
        sending.SHOWN = monkeypatch_shown
    assert text(capped, "//p[@id='more-planned']") == "… and 4 more."
    empty = await client.get(f"/destinations/{one}/replay?start=2000-01-01&end=2000-01-02")
    assert "nothing to replay" in text(empty)
    assert not page(empty).xpath("//section[@id='confirm']//form")
    bad = await client.get(f"/destinations/{one}/replay?start={day}&end=2000-01-01")
    assert bad.status_code == 422 and "before the first" in bad.text


async def test_backfill_progress_shows_until_it_completes(
    site: Site, seeded: dict[str, Any]
) -> None:
    client = site.client
    await sign_in(client, site.keys.read_only)
    account = seeded["accounts"][0]
    reached = START - timedelta(days=40)
    async with site.runtime.sessions() as session, session.begin():
        await session.execute(
            update(Account)
            .where(Account.id == account)
            .values(backfill_complete=False, backfill_found=37, backfill_reached=reached)
        )
    for path, says in (
        (
            f"/accounts/{account}",
            "37 workouts found on Peloton so far, back to 20 Jan 2026; 4 of them stored. "
            "It goes back to 1 Mar 2025.",
        ),
        ("/", "Backfilling: 4 of 37 stored, back to 20 Jan 2026"),
    ):
        shown = await client.get(path)
        assert says in text(shown, f"//*[@id='backfill-{account}']"), path
        meter = page(shown).xpath(f"//*[@id='backfill-{account}']/meter")[0]
        assert (meter.get("value"), meter.get("max")) == ("4", "37")
    async with site.runtime.sessions() as session, session.begin():
        await session.execute(
            update(Account).where(Account.id == account).values(backfill_complete=True)
        )
    for path in (f"/accounts/{account}", "/"):
        assert f"backfill-{account}" not in (await client.get(path)).text
