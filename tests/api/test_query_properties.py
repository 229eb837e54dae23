"""Generated query strings (hypothesis): cursors of any JSON shape and times of any year and UTC
offset, on every list. Each answers a page or one 422 problem; never a 5xx."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app
from tests.api.conftest import Keys, api_settings, bearer, key_setup, running
from tests.web.conftest import sign_in

LISTS = [
    "/v1/accounts",
    "/v1/destinations",
    "/v1/deliveries",
    "/v1/accounts/1/sync-runs",
    "/v1/workouts",
    "/workouts",  # the dashboard's list (its own error page, still no 5xx)
]
CLOSED = "http://127.0.0.1:9"

offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
)
times = st.datetimes(timezones=st.none() | st.just(UTC) | offsets).map(datetime.isoformat)
numbers = st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.booleans()
keys = st.none() | numbers | times | st.text(max_size=20)
cursor_values: st.SearchStrategy[Any] = (
    st.tuples(keys, st.none() | numbers | st.text(max_size=5)).map(list)
    | st.lists(keys, max_size=3)
    | keys
)


def _encoded(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


queries = st.one_of(
    st.fixed_dictionaries({"cursor": cursor_values.map(_encoded)}),
    st.fixed_dictionaries({"cursor": st.text(max_size=60)}),
    st.fixed_dictionaries({}, optional={"started_from": times, "started_before": times}),
    st.fixed_dictionaries({"limit": st.integers().map(str) | st.text(max_size=5)}),
)


class _Served:
    """The app and an httpx client living in an event loop of their own thread, so that
    hypothesis (synchronous) can send requests through :meth:`get`."""

    def __init__(self, tmp_path: Path) -> None:
        self.keys = Keys()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop = asyncio.Event()
        self.client: httpx.AsyncClient | None = None
        self.app = create_app(
            api_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'q.db'}", CLOSED),
            scheduler=False,
            on_started=key_setup(self.keys),
        )
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),))

    async def _main(self) -> None:
        async with running(self.app) as client:
            self.client = client
            self._ready.set()
            await self._stop.wait()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        assert self.client is not None
        future = asyncio.run_coroutine_threadsafe(self.client.get(path, **kwargs), self.loop)
        return future.result(30)

    def sign_in(self) -> None:
        """The dashboard's session cookie, for the dashboard's list."""
        assert self.client is not None
        future = asyncio.run_coroutine_threadsafe(sign_in(self.client, self.keys.admin), self.loop)
        future.result(30)

    def __enter__(self) -> _Served:
        self.thread.start()
        assert self._ready.wait(60), "the app did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(60)
        self.loop.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[_Served]:
    with _Served(tmp_path) as app:
        yield app


def test_generated_query_strings_answer_a_page_or_a_422(served: _Served) -> None:
    served.sign_in()
    headers = bearer(served.keys.admin)

    @given(path=st.sampled_from(LISTS), query=queries)
    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(path: str, query: dict[str, str]) -> None:
        response = served.get(path, params=query, headers=headers)
        assert response.status_code in (200, 404, 422), (path, query, response.text[:300])
        if path.startswith("/v1/") and response.status_code == 422:
            assert response.headers["content-type"] == "application/problem+json"

    check()
