"""Error pages: the reason, the site's navigation, and ways on that work (never the page that
failed)."""

from __future__ import annotations

from typing import Any

import pytest

from service.web import overview
from tests.web.conftest import Site, page, sign_in

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def ways(response: Any) -> list[str]:
    return [str(href) for href in page(response).xpath("//ul[@id='error-ways']//a/@href")]


def message(response: Any) -> str:
    return " ".join(page(response).xpath("string(//p[@id='error-message'])").split())


@SQLITE_ONLY
async def test_a_failing_page_links_to_pages_that_work(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(site.client, site.keys.admin)

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the overview's query broke")

    monkeypatch.setattr(overview, "render", broken)  # the overview only
    failed = await site.client.get("/", headers={"referer": "http://testserver/"})
    assert failed.status_code == 500
    assert "failed on the server" in message(failed)
    assert "the overview's query broke" not in failed.text  # no internals to the user
    reference = page(failed).xpath("string(//code[@id='error-reference'])")
    assert reference == failed.headers["x-request-id"]
    # The navigation is there, and the ways on never lead back to the page that failed.
    assert page(failed).xpath("//nav[@aria-label='Main']//a[@href='/workouts']")
    assert ways(failed) and "/" not in ways(failed)
    for href in ways(failed):
        assert (await site.client.get(href)).status_code == 200, href


@SQLITE_ONLY
async def test_refused_requests_say_why(site: Site) -> None:
    await sign_in(site.client, site.keys.admin)
    bad = await site.client.get("/deliveries?state=bogus")
    assert bad.status_code == 422
    assert message(bad).startswith("State:") and "failed" in message(bad)
    assert page(bad).xpath("//nav[@aria-label='Main']")
    missing = await site.client.get("/workouts/not-a-number")
    assert missing.status_code == 404
    assert message(missing) == "There is no page at /workouts/not-a-number"
    gone = await site.client.get("/workouts/999")
    assert gone.status_code == 404 and "999" in message(gone)
    assert "/" in ways(gone) and "/workouts" in ways(gone)


@SQLITE_ONLY
async def test_an_error_before_signing_in_offers_the_sign_in_page(site: Site) -> None:
    await site.client.get("/login")
    refused = await site.client.post("/login", data={"csrf": "forged", "key": "x"})
    assert refused.status_code == 403
    assert "expired" in message(refused)
    assert ways(refused) == ["/login"]
    assert not page(refused).xpath("//nav[@aria-label='Main']")


@SQLITE_ONLY
async def test_a_mistyped_address_gets_a_page_in_a_browser_and_json_elsewhere(site: Site) -> None:
    await sign_in(site.client, site.keys.admin)
    html = {"accept": "text/html,application/xhtml+xml"}
    missing = await site.client.get("/workotus", headers=html)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert message(missing) == "There is no page at /workotus"
    assert page(missing).xpath("//nav[@aria-label='Main']") and "/workouts" in ways(missing)
    assert "default-src 'none'" in missing.headers["content-security-policy"]
    for path, headers in (("/workotus", {}), ("/v1/workotus", html)):
        response = await site.client.get(path, headers=headers)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
