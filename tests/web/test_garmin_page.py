"""Garmin Connect from the dashboard: added with a service ticket or a token file (against the
loopback fake), its device chosen, and its page saying when the Garmin sign-in ends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from service.destinations.kinds.garmin_devices import CHOICES
from service.destinations.kinds.spec import decrypted_secrets
from service.destinations.models import Destination
from tests.destinations.fakes.fake_garmin import FakeGarmin
from tests.support.servers import Switch, serve
from tests.web.conftest import Site, fresh, page, sign_in

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "destinations.md"


@pytest.fixture(scope="module")
def garmin_server() -> Iterator[tuple[str, Switch]]:
    with serve("garmin-web") as served:
        yield served


@pytest.fixture
def fake(site: Site, garmin_server: tuple[str, Switch]) -> FakeGarmin:
    fake = FakeGarmin(now=lambda: site.runtime.clock().timestamp())
    garmin_server[1].app = fake.app()
    site.runtime.settings.garmin_enabled = True
    site.runtime.settings.garmin_token_url = f"{garmin_server[0]}/di-oauth2-service/oauth/token"
    return fake


async def _created(site: Site) -> Destination:
    async with site.runtime.sessions() as session:
        rows = list((await session.execute(select(Destination))).scalars())
    assert len(rows) == 1
    return rows[0]


async def _follow(client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    assert response.status_code == 303, response.text
    return await client.get(response.headers["location"])


async def test_garmin_is_added_with_a_service_ticket(site: Site, fake: FakeGarmin) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    listing = page(await client.get("/destinations"))
    assert listing.xpath("//a[@href='/destinations/new?kind=garmin']")
    form = page(await client.get("/destinations/new?kind=garmin"))
    assert form.xpath("//input[@name='service_ticket'][@type='password']")
    assert form.xpath("//textarea[@name='token_file']")
    assert form.xpath("//select[@name='device']/option/@value") == list(CHOICES)
    assert form.xpath("//select[@name='device']/option[@selected]/@value") == ["auto"]
    titles = form.xpath("//select[@name='device']/option/text()")
    assert titles == [
        "auto (one per discipline)", "Tacx Training App", "Epix (Gen 2)", "Forerunner 945",
        "none (pelosync's own)",
    ]  # fmt: skip
    guide = form.xpath("//small[@id='service_ticket-help']/a/@href")
    assert guide == [
        "https://github.com/pelosync/pelosync/blob/main/docs/destinations.md#garmin-connect-experimental"
    ]
    assert "## Garmin Connect (experimental)" in GUIDE.read_text()  # the anchor's heading

    ticket = fake.sign_in()
    data = {
        "kind": "garmin",
        "name": "My Garmin",
        "service_ticket": ticket,
        "device": "epix_gen2",
        "formats": "fit",
        "csrf": await fresh(client),
    }
    detail = await _follow(client, await client.post("/destinations", data=data))
    assert ticket not in detail.text
    destination = await _created(site)
    assert destination.config["device"] == "epix_gen2"
    secrets = decrypted_secrets(site.runtime, destination)
    assert secrets["access_token"] in fake.access_tokens and "service_ticket" not in secrets
    note = page(detail).xpath("string(//p[@id='credentials-note'])")
    assert note.startswith("Garmin sign-in valid until ")
    assert not page(detail).xpath("//p[@id='credentials-note']/span[contains(@class, 'badge')]")
    edit = page(detail)
    assert edit.xpath("//select[@name='device']/option[@selected]/@value") == ["epix_gen2"]


async def test_a_refused_ticket_is_shown_by_its_field(site: Site, fake: FakeGarmin) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    data = {
        "kind": "garmin",
        "name": "My Garmin",
        "service_ticket": "ST-0000000-never-issued-sso",
        "formats": "fit",
        "csrf": await fresh(client),
    }
    refused = await client.post("/destinations", data=data)
    assert refused.status_code == 422
    doc = page(refused)
    assert "Garmin refused the service ticket" in doc.xpath(
        "string(//*[@id='service_ticket-error'])"
    )
    assert doc.xpath("//input[@name='service_ticket'][@aria-invalid='true']")
    assert "ST-0000000-never-issued-sso" not in refused.text


async def test_the_page_warns_a_week_before_the_sign_in_ends(site: Site, fake: FakeGarmin) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    data = {
        "kind": "garmin",
        "name": "My Garmin",
        "token_file": fake.token_file(),
        "formats": "fit",
        "csrf": await fresh(client),
    }
    detail = await _follow(client, await client.post("/destinations", data=data))
    note = page(detail).xpath("string(//p[@id='credentials-note'])")
    assert "not known yet" in note  # a token file's refresh token does not say
    destination = await _created(site)

    # Garmin said at a refresh: the sign-in ends in five days.
    ends = int(site.runtime.clock().timestamp()) + 5 * 86400 + 600
    patched = await client.post(
        f"/destinations/{destination.id}/edit",
        data={
            "kind": "garmin",
            "name": "My Garmin",
            "token_file": json.dumps(
                {**json.loads(fake.token_file()), "di_refresh_token": "refresh-5-days"}
            ),
            "formats": "fit",
            "csrf": await fresh(client),
        },
    )
    assert patched.status_code == 303, patched.text
    async with site.runtime.sessions() as session, session.begin():
        row = await session.get(Destination, destination.id)
        assert row is not None
        secrets = decrypted_secrets(site.runtime, row)
        secrets["refresh_token_expires_at"] = ends
        row.secrets_encrypted = site.runtime.secrets.encrypt_json(secrets)
    shown = page(await client.get(f"/destinations/{destination.id}"))
    note = shown.xpath("string(//p[@id='credentials-note'])")
    assert "renew soon" in note and "Garmin sign-in expires in 5 days" in note


async def test_the_form_says_garmin_is_off_before_it_is_filled_in(site: Site) -> None:
    """With Garmin switched off (the default), the form says so when it opens, not only after
    the rider has pasted a token file and pressed Add."""
    client = site.client
    await sign_in(client, site.keys.admin)
    assert not site.runtime.settings.garmin_enabled
    form = page(await client.get("/destinations/new?kind=garmin"))
    notice = form.xpath("string(//*[@id='form-error'])")
    assert notice.startswith("Garmin Connect uploads are experimental and off")
    assert "PELOSYNC_GARMIN_ENABLED=true" in notice
    webhook = page(await client.get("/destinations/new?kind=webhook"))
    assert webhook.xpath("//*[@id='form-error']") == []  # other kinds: no notice


async def test_the_new_destination_address_without_a_kind_leads_to_the_list(site: Site) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    response = await client.get("/destinations/new")
    assert response.status_code == 303
    assert response.headers["location"] == "/destinations"
