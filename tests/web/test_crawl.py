"""Every page of the dashboard, reached as a person would: sign in, follow every same-site link
of every page, and expect no server error and no broken link, with the data at several ages.

The database is the demo's (``serve --demo``: the sandbox rider synced and delivered to a
folder) plus rows in every state (failed and pending deliveries, a workout that does not
convert, accounts Peloton does not know). Pages added later are crawled as soon as a page links
to them.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from lxml import html

from service.accounts.jobs import PollJob
from service.app import create_app
from service.commands.demo import DEMO_SEED, demo_setup
from service.db import utcnow
from service.deliveries.jobs import DeliveryJob
from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from service.runtime import open_runtime
from tests.api.conftest import Keys, api_settings, key_setup, running
from tests.api.seed import world
from tests.web.conftest import sign_in

# The data's age as the pages see it: now, within a minute (the "45-59 s" case), hours, weeks.
OFFSETS = [
    timedelta(0),
    timedelta(seconds=50),
    timedelta(hours=2),
    timedelta(days=40),
]
MAX_URLS = 600  # a bound on the crawl: the demo has a few dozen pages
# Links in pages that lead away from the dashboard's GET pages on purpose.
NOT_FOLLOWED = ("/logout",)


@dataclass
class Crawled:
    status: dict[str, int]
    linked_from: dict[str, str]

    def broken(self) -> list[str]:
        return [
            f"{url} -> {status} (linked from {self.linked_from.get(url, 'the start')})"
            for url, status in sorted(self.status.items())
            if status >= 400
        ]


def _links(url: str, text: str) -> list[str]:
    """Same-site targets of the page's links, stylesheets, images and GET forms."""
    tree = html.fromstring(text)
    found = tree.xpath("//a/@href | //link/@href | //img/@src | //script/@src")
    found += tree.xpath("//form[not(@method) or translate(@method, 'GET', 'get')='get']/@action")
    targets = []
    for href in found:
        target = urllib.parse.urljoin(url, str(href))
        parts = urllib.parse.urlsplit(target)
        if parts.netloc not in ("", "testserver") or parts.scheme not in ("", "http"):
            continue  # another site (Strava, the project's home page)
        path = urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))
        if path.startswith(NOT_FOLLOWED):
            continue
        targets.append(path)
    return targets


async def crawl(client: httpx.AsyncClient, start: str = "/") -> Crawled:
    """Breadth first over every same-site link, each URL fetched once."""
    result = Crawled({}, {})
    queue = [start]
    while queue:
        url = queue.pop(0)
        if url in result.status:
            continue
        assert len(result.status) < MAX_URLS, "the crawl found more pages than any demo has"
        response = await client.get(url)
        result.status[url] = response.status_code
        if response.status_code in (301, 302, 303, 307, 308):
            target = response.headers["location"]
            result.linked_from.setdefault(target, url)
            queue.append(target)
            continue
        if not response.headers.get("content-type", "").startswith("text/html"):
            continue
        for target in _links(url, response.text):
            if target not in result.status:
                result.linked_from.setdefault(target, url)
                queue.append(target)
    return result


@dataclass
class DemoSite:
    client: httpx.AsyncClient
    keys: Keys
    shift: Callable[[timedelta], None]


@pytest.fixture
async def demo_site(tmp_path: Path, database_url: str) -> AsyncIterator[DemoSite]:
    """The demo's data, synced and delivered, the app in-process with a clock tests move."""
    offset = [timedelta(0)]

    def clock() -> datetime:
        return utcnow() + offset[0]

    def shift(by: timedelta) -> None:
        offset[0] = by

    state = SandboxState(
        SandboxConfig(seed=DEMO_SEED, users=1, workouts=6, anchor=int(time.time()))
    )
    async with run_sandbox(state) as peloton_url:
        settings = api_settings(tmp_path, database_url, peloton_url)
        keys = Keys()
        async with open_runtime(settings, clock=clock) as rt:
            app = create_app(settings, scheduler=False, runtime=rt, on_started=key_setup(keys))
            async with running(app) as client:
                await demo_setup(state, tmp_path / "exports", "http://testserver")(rt)
                async with rt.sessions() as session, session.begin():
                    await world(session)
                await PollJob(rt).run_once()
                await DeliveryJob(rt).run_until_idle()
                yield DemoSite(client, keys, shift)


@pytest.mark.parametrize("offset", OFFSETS, ids=lambda o: f"+{int(o.total_seconds())}s")
async def test_every_linked_page_answers(demo_site: DemoSite, offset: timedelta) -> None:
    demo_site.shift(offset)
    await sign_in(demo_site.client, demo_site.keys.admin)
    crawled = await crawl(demo_site.client)
    assert crawled.broken() == []
    pages = [url for url in crawled.status if not url.startswith(("/static", "/v1/files"))]
    # The crawl did reach the dashboard: every main page, workouts and their downloads.
    for expected in ("/", "/workouts", "/deliveries", "/destinations", "/accounts"):
        assert expected in pages
    assert sum(url.startswith("/workouts/") for url in pages) >= 6
    assert any(url.startswith("/v1/files/") for url in crawled.status)


async def test_a_read_only_key_reaches_every_page_too(demo_site: DemoSite) -> None:
    await sign_in(demo_site.client, demo_site.keys.read_only)
    crawled = await crawl(demo_site.client)
    assert crawled.broken() == []
    assert "/accounts" in crawled.status and "/destinations" in crawled.status
