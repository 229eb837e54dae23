"""What the dashboard's forms and buttons do: link, edit, pause, sync and re-authenticate
accounts; add, edit, test, pause and connect destinations; retry and replay deliveries."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from service.accounts.models import Account, SyncRun
from service.deliveries.models import Delivery
from service.destinations.kinds.spec import decrypted_secrets
from service.destinations.kinds.webhook import WebhookConfig
from service.destinations.models import Destination
from service.web import session as cookies
from service.workouts.models import Workout
from tests.api.seed import START
from tests.destinations.receiver import Receiver
from tests.web.conftest import Site, fresh, page, sign_in


def flash(response: httpx.Response) -> str:
    return " ".join(page(response).xpath("string(//p[contains(@class, 'flash')])").split())


async def follow(client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    assert response.status_code == 303, response.text
    return await client.get(response.headers["location"])


async def row(site: Site, model: Any, row_id: int) -> Any:
    async with site.runtime.sessions() as session:
        return await session.get(model, row_id)


def refresh_token(site: Site, index: int) -> str:
    user = list(site.sandbox.accounts.values())[index]
    token: str = site.sandbox.describe_user(user)["refresh_tokens"][0]["token"]
    return token


async def test_link_edit_pause_sync_and_reauthenticate_an_account(site: Site) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    token = refresh_token(site, 0)

    refused = await client.post(
        "/accounts",
        data={
            "csrf": await fresh(client),
            "method": "refresh_token",
            "refresh_token": "not-a-token",
            "label": "X",
        },
    )
    assert refused.status_code == 422
    assert "Peloton" in page(refused).xpath("string(//p[@id='form-error'])")
    assert "not-a-token" not in refused.text  # never echoed back
    assert page(refused).xpath("string(//input[@name='label']/@value)") == "X"
    missing = await client.post(
        "/accounts", data={"csrf": await fresh(client), "method": "password"}
    )
    assert "username and a password are required" in missing.text

    linked = await client.post(
        "/accounts",
        data={
            "csrf": await fresh(client),
            "label": "Alex",
            "method": "refresh_token",
            "refresh_token": token,
            "sync_since": "2001-02-03",
            "poll_interval_min": "45",
        },
    )
    shown = await follow(client, linked)
    assert "Linked Alex; syncing now." in flash(shown)
    account_id = int(linked.headers["location"].rsplit("/", 1)[1])
    account = await row(site, Account, account_id)
    assert account.label == "Alex" and account.poll_interval_s == 2700
    assert account.sync_since.isoformat() == "2001-02-03T00:00:00+00:00"
    assert token not in shown.text

    edited = await client.post(
        f"/accounts/{account_id}/edit",
        data={
            "csrf": await fresh(client),
            "label": "Alex B",
            "poll_interval_min": "",
            "sync_since": "2000-01-01",
        },
    )
    assert "Settings saved." in flash(await follow(client, edited))
    account = await row(site, Account, account_id)
    assert (account.label, account.poll_interval_s) == ("Alex B", None)
    assert not account.backfill_complete  # an earlier since-date walks back again
    bad = await client.post(
        f"/accounts/{account_id}/edit",
        data={"csrf": await fresh(client), "label": "Alex B", "poll_interval_min": "1"},
    )
    assert bad.status_code == 422
    assert "poll interval" in page(bad).xpath("string(//p[@id='form-error'])")
    assert (await row(site, Account, account_id)).label == "Alex B"

    paused = await client.post(
        f"/accounts/{account_id}/pause", data={"csrf": await fresh(client), "next": "/"}
    )
    assert paused.headers["location"] == "/"
    assert "Paused Alex B." in flash(await follow(client, paused))
    assert (await row(site, Account, account_id)).paused
    overview = page(await client.get("/"))
    assert "paused" in overview.xpath(f"string(//tr[@data-account='{account_id}'])")
    await client.post(f"/accounts/{account_id}/resume", data={"csrf": await fresh(client)})
    assert not (await row(site, Account, account_id)).paused

    synced = await client.post(
        f"/accounts/{account_id}/sync", data={"csrf": await fresh(client), "next": "/"}
    )
    assert "Syncing now." in flash(await follow(client, synced))

    async def manual_run() -> SyncRun | None:
        async with site.runtime.sessions() as session:
            stmt = select(SyncRun).where(SyncRun.trigger == "manual", SyncRun.outcome.is_not(None))
            return (await session.execute(stmt)).scalars().first()

    for _ in range(600):
        if (run := await manual_run()) is not None:
            break
        await asyncio.sleep(0.05)
    assert run is not None and run.outcome == "ok" and run.account_id == account_id
    detail = page(await client.get(f"/accounts/{account_id}"))
    assert "manual" in detail.xpath("string(//table[@id='runs'])")

    current = refresh_token(site, 0)  # Peloton rotated the one given at linking
    again = await client.post(
        f"/accounts/{account_id}/reauthenticate",
        data={"csrf": await fresh(client), "method": "refresh_token", "refresh_token": current},
    )
    assert "Re-authenticated" in flash(await follow(client, again))
    other = await client.post(
        f"/accounts/{account_id}/reauthenticate",
        data={
            "csrf": await fresh(client),
            "method": "refresh_token",
            "refresh_token": refresh_token(site, 1),
        },
    )
    assert other.status_code == 409
    assert "different Peloton user" in page(other).xpath("string(//p[@id='reauth-error'])")


async def test_add_edit_test_and_pause_destinations(site: Site, receiver: Receiver) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)

    # A webhook without a secret: one is generated and shown on this one page only.
    created = await client.post(
        "/destinations",
        data={
            "csrf": await fresh(client),
            "kind": "webhook",
            "name": "hook",
            "url": receiver.url(),
            "formats": ["fit", "json"],
        },
    )
    # Post/redirect/get: the secret rides to the destination's page in an encrypted cookie.
    assert created.status_code == 303 and "whsec_" not in str(created.headers)
    async with site.runtime.sessions() as session:
        destination = (await session.execute(select(Destination))).scalar_one()
    assert created.headers["location"] == f"/destinations/{destination.id}"
    landed = await follow(client, created)
    shown = page(landed).xpath("string(//code[@class='secret'])")
    assert "Added hook." in flash(landed)
    config = WebhookConfig.parse(destination.config, decrypted_secrets(site.runtime, destination))
    assert config.secret.get_secret_value() == shown and shown.startswith("whsec_")
    assert destination.formats == ["fit", "json"] and destination.account_ids is None
    assert shown not in (await client.get(f"/destinations/{destination.id}")).text  # once
    # Nor does another session of the same key see it, even with the cookie copied.
    reveal = created.cookies[cookies.REVEAL_COOKIE]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=site.app), base_url="http://testserver"
    ) as other:
        await sign_in(other, site.keys.admin)
        other.cookies.set(cookies.REVEAL_COOKIE, reveal)
        assert shown not in (await other.get(f"/destinations/{destination.id}")).text

    invalid = await client.post(
        "/destinations",
        data={
            "csrf": await fresh(client),
            "kind": "webhook",
            "name": "bad",
            "url": "ftp://x",
            "formats": "fit",
        },
    )
    assert invalid.status_code == 422
    assert "URL" in page(invalid).xpath("string(//p[@id='form-error'])")
    assert page(invalid).xpath("string(//input[@name='name']/@value)") == "bad"
    relative = await client.post(
        "/destinations",
        data={
            "csrf": await fresh(client),
            "kind": "directory",
            "name": "f",
            "root": "rel/dir",
            "formats": "fit",
        },
    )
    assert relative.status_code == 422 and "absolute" in relative.text
    async with site.runtime.sessions() as session:
        assert len((await session.execute(select(Destination))).scalars().all()) == 1

    # Edit: name, formats and filters change; a blank secret keeps the stored one.
    edited = await client.post(
        f"/destinations/{destination.id}/edit",
        data={
            "csrf": await fresh(client),
            "name": "hook 2",
            "url": receiver.url(),
            "secret": "",
            "formats": ["tcx"],
            "disciplines": ["cycling", "running"],
            "concurrency": "2",
        },
    )
    assert "Saved." in flash(await follow(client, edited))
    changed = await row(site, Destination, destination.id)
    assert (changed.name, changed.formats, changed.concurrency) == ("hook 2", ["tcx"], 2)
    assert changed.disciplines == ["cycling", "running"]
    kept = WebhookConfig.parse(changed.config, decrypted_secrets(site.runtime, changed))
    assert kept.secret.get_secret_value() == shown
    none = await client.post(
        f"/destinations/{destination.id}/edit",
        data={"csrf": await fresh(client), "name": "hook 2", "url": receiver.url()},
    )
    assert none.status_code == 422 and "tick at least one" in none.text

    # Test: a signed ping the receiver verifies with the generated secret.
    receiver.secrets.append(shown)
    tested = await client.post(
        f"/destinations/{destination.id}/test", data={"csrf": await fresh(client)}
    )
    assert "Test succeeded (HTTP 200)." in flash(await follow(client, tested))
    assert receiver.requests[-1].payload["type"] == "ping"
    assert receiver.requests[-1].verified_by == [shown]

    paused = await client.post(
        f"/destinations/{destination.id}/disable", data={"csrf": await fresh(client)}
    )
    assert "Paused hook 2." in flash(await follow(client, paused))
    assert not (await row(site, Destination, destination.id)).enabled
    resumed = await client.post(
        f"/destinations/{destination.id}/enable",
        data={"csrf": await fresh(client), "next": "/destinations"},
    )
    assert resumed.headers["location"] == "/destinations"
    assert (await row(site, Destination, destination.id)).enabled


async def test_strava_destinations_connect_through_strava(site: Site) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    form = {"kind": "strava", "name": "Strava", "formats": "fit"}
    # No Strava app configured: refused when made, nothing stored.
    refused = await client.post("/destinations", data={**form, "csrf": await fresh(client)})
    assert refused.status_code == 422
    shown = page(refused).xpath("string(//p[@id='form-error'])")
    assert "PELOSYNC_STRAVA_CLIENT_ID" in shown
    async with site.runtime.sessions() as session:
        assert (await session.execute(select(Destination))).first() is None

    site.runtime.settings.strava_client_id = "4242"
    site.runtime.settings.strava_client_secret = SecretStr("app-secret")
    created = await client.post("/destinations", data={**form, "csrf": await fresh(client)})
    detail = await follow(client, created)
    connect = page(detail).xpath("string(//a[@id='strava-connect']/@href)")
    assert "not connected" in detail.text
    redirect = await client.get(connect)
    assert redirect.status_code == 303
    target = urlsplit(redirect.headers["location"])
    assert target.netloc == "www.strava.com" and target.path == "/oauth/authorize"
    query = parse_qs(target.query)
    assert query["client_id"] == ["4242"]
    assert query["redirect_uri"] == ["http://testserver/v1/strava/callback"]
    assert query["state"][0]


async def test_retry_and_replay_deliveries(site: Site, seeded: dict[str, Any]) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    failed_id = seeded["deliveries"][2]
    succeeded_id = seeded["deliveries"][0]
    retried = await client.post(
        f"/deliveries/{failed_id}/retry", data={"csrf": await fresh(client), "next": "/deliveries"}
    )
    assert f"Delivery {failed_id} will be sent again now." in flash(await follow(client, retried))
    delivery = await row(site, Delivery, failed_id)
    # Its attempts are counted on; the retry schedule starts again from here.
    assert delivery.state == "pending" and delivery.attempts > 0
    assert delivery.budget_start == delivery.attempts
    refused = await client.post(
        f"/deliveries/{succeeded_id}/retry", data={"csrf": await fresh(client)}
    )
    assert "already succeeded" in flash(await follow(client, refused))
    assert (await row(site, Delivery, succeeded_id)).state == "succeeded"

    destination = seeded["destinations"][0]
    async with site.runtime.sessions() as session:
        workouts = (await session.execute(select(Workout))).scalars().all()
        message = (await session.get(Delivery, succeeded_id)).message_id  # type: ignore[union-attr]
    day = START.date().isoformat()
    on_the_day = [
        w for w in workouts if w.started_at.date() == START.date() and not w.conversion_error
    ]
    replayed = await client.post(
        "/deliveries/replay",
        data={
            "csrf": await fresh(client),
            "destination_id": str(destination),
            "start": day,
            "end": day,
        },
    )
    assert f"Replay queued {len(on_the_day)} deliveries." in flash(await follow(client, replayed))
    delivery = await row(site, Delivery, succeeded_id)
    assert delivery.state == "pending" and delivery.message_id != message  # a new message
    backwards = await client.post(
        "/deliveries/replay",
        data={
            "csrf": await fresh(client),
            "destination_id": str(destination),
            "start": day,
            "end": "2000-01-01",
        },
    )
    assert "the last day is before the first" in flash(await follow(client, backwards))
    unknown = await client.post(
        "/deliveries/replay",
        data={
            "csrf": await fresh(client),
            "destination_id": "99999999999",
            "start": day,
            "end": day,
        },
    )
    assert "destination: choose one" in flash(await follow(client, unknown))


async def test_a_refused_webhook_address_is_shown_beside_its_field(site: Site) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    site.runtime.settings.webhook_allow_private = False
    form = {"kind": "webhook", "name": "lan", "url": "http://192.168.1.20/hook"}
    form["csrf"] = await fresh(client)
    refused = await client.post("/destinations", data={**form, "formats": "fit"})
    assert refused.status_code == 422
    shown = page(refused)
    beside = shown.xpath("string(//label[input[@name='url']]/following-sibling::*[1])")
    assert "192.168.1.20 is a private address" in beside
    assert "PELOSYNC_WEBHOOK_ALLOW_PRIVATE" in beside
    assert shown.xpath("string(//input[@name='url']/@aria-invalid)") == "true"
    assert shown.xpath("string(//input[@name='url']/@value)") == "http://192.168.1.20/hook"
    # A format the kind cannot take is shown beside the formats.
    intervals = {"kind": "intervals", "name": "i", "api_key": "k" * 20}
    intervals["csrf"] = await fresh(client)
    refused = await client.post("/destinations", data={**intervals, "formats": "json"})
    assert refused.status_code == 422
    assert "not json" in page(refused).xpath("string(//span[@id='formats-error'])")
    async with site.runtime.sessions() as session:
        assert (await session.execute(select(Destination))).first() is None


async def test_the_account_page_turns_imported_workouts_on_and_off(site: Site) -> None:
    from tests.api import seed

    client = site.client
    await sign_in(client, site.keys.admin)
    async with site.runtime.sessions() as session, session.begin():
        account = seed.account("imports")
        session.add(account)
        await session.flush()
        imported = seed.workout(account.id, 1, "running", origin="garmin")
        own = seed.workout(account.id, 2, "running")
        session.add_all([imported, own])
        await session.flush()
        account_id, imported_id, own_id = account.id, imported.id, own.id

    def box(response: httpx.Response) -> list[Any]:
        found: list[Any] = page(response).xpath("//input[@name='include_external']")
        return found

    shown = await client.get(f"/accounts/{account_id}")
    (checkbox,) = box(shown)
    assert checkbox.get("checked") is None  # off by default

    form = {"label": "imports", "poll_interval_min": "", "sync_since": "2025-03-01"}
    on = await client.post(
        f"/accounts/{account_id}/edit",
        data={**form, "csrf": await fresh(client), "include_external": "1"},
    )
    assert "Settings saved." in flash(await follow(client, on))
    assert (await row(site, Account, account_id)).include_external
    (checkbox,) = box(await client.get(f"/accounts/{account_id}"))
    assert checkbox.get("checked") is not None

    off = await client.post(  # an unticked box is not sent at all
        f"/accounts/{account_id}/edit", data={**form, "csrf": await fresh(client)}
    )
    assert "Settings saved." in flash(await follow(client, off))
    assert not (await row(site, Account, account_id)).include_external

    # The ledger marks the imported workout, in the list and on its page.
    listing = page(await client.get("/workouts"))
    assert "imported from Garmin" in listing.xpath(f"string(//tr[@data-workout='{imported_id}'])")
    assert "imported" not in listing.xpath(f"string(//tr[@data-workout='{own_id}'])")
    detail = page(await client.get(f"/workouts/{imported_id}"))
    assert detail.xpath("string(//*[@id='origin'])") == "imported from Garmin"
    # Not delivered: the page says why (not "no destination wanted it") and where to change it.
    why = detail.xpath("//*[@id='not-delivered-imported']")
    assert len(why) == 1 and "imported this workout from Garmin" in why[0].text_content()
    assert why[0].xpath(".//a/@href") == [f"/accounts/{account_id}#settings"]
    own_page = page(await client.get(f"/workouts/{own_id}"))
    assert own_page.xpath("//*[@id='origin']") == []
    assert own_page.xpath("//*[@id='not-delivered-imported']") == []
    assert "No destination wanted this workout." in own_page.xpath("string(//*[@id='deliveries'])")
