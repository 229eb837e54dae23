"""The API's documentation page needs nothing from outside this service: every script, style
and icon it references is same-origin and served."""

from __future__ import annotations

import re
import urllib.parse

import httpx
import pytest
from lxml import html

from service.runtime import Runtime
from tests.api.conftest import Keys

ABSOLUTE = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_docs_use_only_their_own_assets(
    api: tuple[httpx.AsyncClient, Keys, Runtime, object],
) -> None:
    client, _, _, _ = api
    expected = {"swagger-ui-bundle.js", "swagger-ui.css", "icon.svg"}
    response = await client.get("/docs")
    assert response.status_code == 200
    # No address of another host anywhere in the page: not in tags, not in its script.
    assert ABSOLUTE.findall(response.text) == []
    tree = html.fromstring(response.text)
    assets = [str(a) for a in tree.xpath("//script/@src | //link/@href | //img/@src")]
    assert {a.rsplit("/", 1)[-1] for a in assets} == expected
    for asset in assets:
        assert urllib.parse.urlsplit(asset).netloc == "" and asset.startswith("/"), asset
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 200, asset
    # And the document the page loads.
    assert "'/openapi.json'" in response.text or '"/openapi.json"' in response.text
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "pelosync"
