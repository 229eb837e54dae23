"""The dashboard's Strava destination with its own Strava application: added on a service without
one, connected through (the fake's) Strava, deleted with its access revoked."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.destinations.fakes import fake_strava
from tests.support.servers import serve
from tests.web.conftest import Site, fresh, page, sign_in
from tests.web.test_actions import flash, follow
from tests.web.test_manage import confirm_form, text

OWN_ID = "67890"
OWN_SECRET = "riders-own-strava-app-secret-0a1b2c"


@pytest.fixture
def strava(site: Site) -> Iterator[fake_strava.FakeStrava]:
    with serve("strava") as (url, switch):
        fake = fake_strava.FakeStrava()
        fake.add_app(OWN_ID, OWN_SECRET)
        switch.app = fake.app()
        site.runtime.settings.strava_oauth_url = f"{url}/oauth"
        site.runtime.settings.strava_api_url = f"{url}/api/v3"
        yield fake


async def test_a_riders_own_strava_application_from_the_dashboard(
    site: Site, strava: fake_strava.FakeStrava
) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    new = await client.get("/destinations/new?kind=strava")
    form = page(new).xpath("//form[@id='destination-form']")[0]
    assert form.xpath(".//input[@name='client_id']/@type") == ["text"]
    assert form.xpath(".//input[@name='client_secret']/@type") == ["password"]
    assert "an application of their own" in text(new, "//form[@id='destination-form']")

    fields = {"kind": "strava", "name": "Sam", "formats": "fit"}
    half = await client.post(
        "/destinations", data={**fields, "client_id": OWN_ID, "csrf": await fresh(client)}
    )
    assert half.status_code == 422
    assert "client secret" in page(half).xpath("string(//p[@id='form-error'])").lower()
    own = {"client_id": OWN_ID, "client_secret": OWN_SECRET, "csrf": await fresh(client)}
    created = await client.post("/destinations", data={**fields, **own})
    detail = await follow(client, created)
    assert OWN_SECRET not in detail.text
    connect = page(detail).xpath("string(//a[@id='strava-connect']/@href)")
    unconnected = await client.get(connect.replace("/strava/connect", "/delete"))
    assert "Strava account" not in text(unconnected)  # nothing to revoke yet
    started = await client.get(connect)
    assert started.status_code == 303
    assert parse_qs(urlsplit(started.headers["location"]).query)["client_id"] == [OWN_ID]

    strava.signed_in = dict(fake_strava.SECOND_ATHLETE)
    async with httpx.AsyncClient() as browser:
        approved = await browser.get(started.headers["location"])
    back = urlsplit(approved.headers["location"])
    callback = await client.get(f"{back.path}?{back.query}")
    assert callback.status_code == 200, callback.text
    detail = await client.get(connect.removesuffix("/strava/connect"))
    assert "not connected" not in detail.text

    confirm = await client.get(connect.replace("/strava/connect", "/delete"))
    assert "Its access to the Strava account is revoked" in text(confirm)
    action, form_fields = confirm_form(confirm)
    deleted = await client.post(action, data=form_fields)
    assert "Strava access is being revoked" in flash(await follow(client, deleted))
    assert strava.deauthorized == [fake_strava.SECOND_ATHLETE["id"]]
    assert strava.apps[OWN_ID].connected == set()
