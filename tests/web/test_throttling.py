"""The overview shows the Peloton request budget, and a throttling pause in red; sync now
during the pause says when to retry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from service.accounts.models import Account
from tests.web.conftest import Site, page, sign_in


async def test_the_overview_shows_a_throttling_pause_and_sync_now_says_when_to_retry(
    site: Site, seeded: dict[str, Any]
) -> None:
    client = site.client
    csrf = await sign_in(client, site.keys.admin)
    line = page(await client.get("/")).xpath("string(//*[@id='peloton-budget'])")
    assert "at most 1000.0 per second" in line and "throttling" not in line

    await site.runtime.budget.throttled(330, "GET /api/me")
    overview = page(await client.get("/"))
    (banner,) = overview.xpath("//*[@id='peloton-budget']")
    assert "flash error" in banner.get("class")
    assert "Peloton is throttling us" in banner.text_content()
    assert "polls resume by themselves in 5 min" in banner.text_content()

    async with site.runtime.sessions() as session:
        account = (await session.execute(select(Account).limit(1))).scalar_one()
    answer = await client.post(
        f"/accounts/{account.id}/sync", data={"csrf": csrf, "next": "/"}, follow_redirects=True
    )
    assert "Peloton is throttling us, retry at " in answer.text
