"""The account forms point to the guide on getting a Peloton refresh token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.web.conftest import Site, page, sign_in

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "peloton-account.md"


async def test_account_forms_link_to_the_refresh_token_guide(
    site: Site, seeded: dict[str, Any]
) -> None:
    await sign_in(site.client, site.keys.admin)
    for path in ("/accounts", f"/accounts/{seeded['accounts'][0]}"):
        doc = page(await site.client.get(path))
        links = doc.xpath("//fieldset[@class='credentials']//a/@href")
        assert [link.rsplit("/", 2)[-2:] for link in links] == [["docs", GUIDE.name]], path
    assert "## Getting a refresh token, step by step" in GUIDE.read_text()
