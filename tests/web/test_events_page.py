"""The Events page, the overview's problems, and the webhook form's events setting."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from service.destinations.models import Destination
from service.events import service as events
from service.events.conditions import resolve_cleared
from tests.destinations.receiver import Receiver
from tests.web.conftest import Site, fresh, page, sign_in


async def _disabled(site: Site, name: str) -> Destination:
    """A destination the engine has just disabled (the event in the same transaction)."""
    rt = site.runtime
    async with rt.sessions() as session, session.begin():
        row = Destination(
            name=name,
            kind="directory",
            config={"root": "/tmp/x"},
            formats=["tcx"],
            enabled=False,
            disabled_reason="gone: the folder went away",
        )
        session.add(row)
        await session.flush()
        await events.destination_disabled(session, row, row.disabled_reason, now=rt.clock())
    return row


async def test_events_page_and_overview_problems(site: Site, receiver: Receiver) -> None:
    client = site.client
    await sign_in(client, site.keys.read_only)
    empty = page(await client.get("/events"))
    assert empty.xpath("string(//p[@id='none'])").startswith("No events")
    assert not page(await client.get("/")).xpath("//section[@id='problems']")
    nav = page(await client.get("/")).xpath("//nav[@aria-label='Main']//a/@href")
    assert "/events" in nav

    folder = await _disabled(site, "nas folder")
    listed = page(await client.get("/events"))
    (row,) = listed.xpath("//tr[@data-event]")
    assert row.get("data-type") == "destination.disabled"
    text = " ".join(row.text_content().split())
    assert "Destination disabled" in text and "nas folder" in text
    assert "gone: the folder went away" in text and "open" in text
    assert row.xpath(".//a/@href") == [f"/destinations/{folder.id}"]
    filtered = page(await client.get("/events?type=delivery.failed"))
    assert filtered.xpath("//tr[@data-event]") == []
    assert (await client.get("/events?type=bogus")).status_code == 422

    overview = page(await client.get("/"))
    problems = overview.xpath("//section[@id='problems']")
    assert problems and "nas folder" in problems[0].text_content()
    assert "gone: the folder went away" in problems[0].text_content()
    assert "1 problem needs you" in " ".join(problems[0].text_content().split())

    # Re-enabled: the check resolves it, and the overview is clear again.
    async with site.runtime.sessions() as session, session.begin():
        stored = await session.get(Destination, folder.id)
        assert stored is not None
        stored.enabled = True
        await resolve_cleared(session, site.runtime.secrets, site.runtime.clock())
    assert not page(await client.get("/")).xpath("//section[@id='problems']")
    assert "resolved" in page(await client.get("/events")).xpath("string(//tr[@data-event])")


async def test_the_webhook_form_sets_its_events(site: Site, receiver: Receiver) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    form = page(await client.get("/destinations/new?kind=webhook"))
    boxes = form.xpath("//fieldset[@id='webhook-events']//input[@name='events']")
    assert [b.get("value") for b in boxes] == [
        "workout.synced",
        "account.needs_reauth",
        "destination.disabled",
        "destination.credentials_expiring",
        "delivery.failed",
    ]
    assert [b.get("value") for b in boxes if b.get("checked") is not None] == ["workout.synced"]

    base: dict[str, Any] = {"kind": "webhook", "name": "ops", "url": receiver.url()}
    created = await client.post(
        "/destinations",
        data={
            **base,
            "csrf": await fresh(client),
            "formats": "json",
            "events_shown": "1",
            "events": ["delivery.failed", "account.needs_reauth"],
        },
    )
    assert created.status_code == 303, created.text
    async with site.runtime.sessions() as session:
        hook = (await session.execute(select(Destination))).scalar_one()
    assert hook.config["events"] == ["account.needs_reauth", "delivery.failed"]
    shown = page(await client.get(f"/destinations/{hook.id}"))
    ticked = shown.xpath("//input[@name='events' and @checked]/@value")
    assert ticked == ["account.needs_reauth", "delivery.failed"]

    none = await client.post(
        f"/destinations/{hook.id}/edit",
        data={**base, "csrf": await fresh(client), "formats": "json", "events_shown": "1"},
    )
    assert none.status_code == 422 and "at least one" in none.text
    # A form without the boxes (an older page) leaves the setting as it is.
    kept = await client.post(
        f"/destinations/{hook.id}/edit",
        data={**base, "csrf": await fresh(client), "formats": "json"},
    )
    assert kept.status_code == 303
    async with site.runtime.sessions() as session:
        again = await session.get(Destination, hook.id)
    assert again is not None and again.config["events"] == [
        "account.needs_reauth",
        "delivery.failed",
    ]
