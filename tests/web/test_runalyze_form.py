"""The dashboard adds a Runalyze destination: its token input, FIT and TCX only, and a handler
that uploads to the configured Runalyze."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from service.destinations.kinds.registry import build_handler
from service.destinations.kinds.runalyze import RunalyzeDestination
from service.destinations.kinds.spec import decrypted_secrets
from service.destinations.models import Destination
from tests.web.conftest import Site, fresh, page, sign_in
from tests.web.test_actions import follow

TOKEN = "f3b1c9e07a2d4c58b6e1d0a9c7f24e6b"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_dashboard_adds_a_runalyze_destination(site: Site) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    listing = page(await client.get("/destinations"))
    assert listing.xpath("//a[@href='/destinations/new?kind=runalyze']/text()") == ["Runalyze"]
    new = page(await client.get("/destinations/new?kind=runalyze"))
    assert new.xpath("//input[@name='token']/@type") == ["password"]
    assert len(new.xpath("//input[@name='token'][@required]")) == 1
    assert "runalyze.com/settings/personal-api" in new.text_content()
    assert new.xpath("//input[@name='formats']/@value") == ["fit", "tcx"]

    form = {"kind": "runalyze", "name": "Runalyze", "formats": "fit"}
    refused = await client.post(
        "/destinations", data={**form, "token": "no spaces ok", "csrf": await fresh(client)}
    )
    assert refused.status_code == 422
    assert page(refused).xpath("string(//input[@name='token']/@aria-invalid)") == "true"

    created = await client.post(
        "/destinations",
        data={**form, "token": TOKEN, "import_wait_s": "10", "csrf": await fresh(client)},
    )
    detail = page(await follow(client, created))
    assert TOKEN not in detail.text_content()
    async with site.runtime.sessions() as session:
        (destination,) = (await session.execute(select(Destination))).scalars()
    assert destination.kind == "runalyze" and destination.formats == ["fit"]
    assert destination.config == {"import_wait_s": 10.0}
    assert decrypted_secrets(site.runtime, destination) == {"token": TOKEN}
    site.runtime.settings.runalyze_api_url = "http://127.0.0.1:9/api/v1"
    handler = build_handler(site.runtime, destination)
    assert isinstance(handler, RunalyzeDestination)
    assert handler.config.import_wait_s == 10.0
    assert handler.api_url == "http://127.0.0.1:9/api/v1"
