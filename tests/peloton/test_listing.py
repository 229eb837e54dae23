"""Paging through workouts: boundaries, a constant limit, and the incremental stop rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from service.errors import InvalidInput
from service.peloton.client import PelotonClient
from service.peloton.models import PelotonConfig, TokenSet
from tests.peloton.fake_peloton import USER_ID, FakePeloton, make_workout, workout_id
from tests.support.clock import FakeClock, RecordingSleep

T0 = 1_700_000_000


def seed(fake: FakePeloton, count: int, *, unfinished: tuple[int, ...] = ()) -> list[str]:
    """``count`` workouts ten minutes apart, newest first; returns their ids."""
    fake.workouts = [
        make_workout(n, T0 - 600 * n, status="IN_PROGRESS" if n in unfinished else "COMPLETE")
        for n in range(count)
    ]
    return [w["id"] for w in fake.workouts]


@pytest.fixture
async def client(
    http: httpx.AsyncClient,
    fake_config: PelotonConfig,
    fake_peloton: FakePeloton,
    clock: FakeClock,
    no_sleep: RecordingSleep,
) -> PelotonClient:
    access, _ = fake_peloton.seed_tokens()
    return PelotonClient(
        http=http,
        config=fake_config,
        tokens=TokenSet.supplied(access_token=access),
        clock=clock,
        sleep=no_sleep,
    )


def pages_requested(fake: FakePeloton) -> list[tuple[str, str]]:
    return [(r.query_params["page"], r.query_params["limit"]) for r in fake.api_requests]


@pytest.mark.parametrize(("count", "pages"), [(0, 1), (1, 1), (100, 1), (101, 2), (250, 3)])
async def test_iter_workouts_page_boundaries(
    client: PelotonClient, fake_peloton: FakePeloton, count: int, pages: int
) -> None:
    ids = seed(fake_peloton, count)
    got = [w.id async for w in client.iter_workouts(USER_ID)]
    assert got == ids
    assert pages_requested(fake_peloton) == [(str(p), "100") for p in range(pages)]


@pytest.mark.parametrize("count", [0, 1, 100, 101])
async def test_list_new_workouts_with_nothing_known(
    client: PelotonClient, fake_peloton: FakePeloton, count: int
) -> None:
    ids = seed(fake_peloton, count)
    result = await client.list_new_workouts(USER_ID, known_ids=set(), page_size=100)
    assert [w.id for w in result.complete] == ids
    assert result.in_progress == []
    assert result.stopped_by == "end"
    assert result.pages_fetched == max(1, -(-count // 100))
    assert {limit for _, limit in pages_requested(fake_peloton)} == {"100"}


async def test_stops_at_the_first_known_id(
    client: PelotonClient, fake_peloton: FakePeloton
) -> None:
    ids = seed(fake_peloton, 45)
    result = await client.list_new_workouts(USER_ID, known_ids=set(ids[25:]), page_size=20)
    assert [w.id for w in result.complete] == ids[:25]
    assert result.stopped_by == "known"
    assert result.pages_fetched == 2
    assert pages_requested(fake_peloton) == [("0", "20"), ("1", "20")]  # page 2 never fetched


async def test_known_ids_may_be_an_async_predicate(
    client: PelotonClient, fake_peloton: FakePeloton
) -> None:
    ids = seed(fake_peloton, 10)
    asked: list[str] = []

    async def known(workout_id: str) -> bool:
        asked.append(workout_id)
        return workout_id == ids[3]

    result = await client.list_new_workouts(USER_ID, known_ids=known)
    assert [w.id for w in result.complete] == ids[:3]
    assert asked == ids[:4]


async def test_stops_at_a_workout_created_before_since(
    client: PelotonClient, fake_peloton: FakePeloton
) -> None:
    ids = seed(fake_peloton, 30)
    since = datetime.fromtimestamp(T0 - 600 * 12, tz=UTC)  # workout 12 was created exactly then
    result = await client.list_new_workouts(USER_ID, since=since, page_size=10)
    assert [w.id for w in result.complete] == ids[:13]  # created_at == since is still new
    assert result.stopped_by == "since"
    assert result.pages_fetched == 2


async def test_unfinished_workouts_are_reported_apart(
    client: PelotonClient, fake_peloton: FakePeloton
) -> None:
    ids = seed(fake_peloton, 6, unfinished=(0, 2))
    result = await client.list_new_workouts(USER_ID, known_ids={ids[5]})
    assert [w.id for w in result.in_progress] == [ids[0], ids[2]]
    assert [w.id for w in result.complete] == [ids[1], ids[3], ids[4]]
    assert all(w.created_at is not None and w.created_at.tzinfo is UTC for w in result.complete)


async def test_max_pages_bounds_a_listing(client: PelotonClient, fake_peloton: FakePeloton) -> None:
    seed(fake_peloton, 50)
    result = await client.list_new_workouts(USER_ID, page_size=10, max_pages=2)
    assert len(result.complete) == 20
    assert result.stopped_by == "max_pages"


async def test_a_window_shifted_by_a_new_workout_yields_no_duplicates(
    clock: FakeClock, no_sleep: RecordingSleep
) -> None:
    # Between page 0 and page 1 a workout was added, so page 1 repeats the last of page 0.
    pages: dict[str, list[dict[str, Any]]] = {
        "0": [make_workout(3, T0), make_workout(2, T0 - 600)],
        "1": [make_workout(2, T0 - 600), make_workout(1, T0 - 1200)],
    }
    limits: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        page = request.url.params["page"]
        limits.append(request.url.params["limit"])
        return httpx.Response(
            200, json={"data": pages[page], "page": int(page), "page_count": 2, "limit": 2}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = PelotonClient(
            http=http,
            tokens=TokenSet(access_token="t", expires_at=clock.now + timedelta(days=1)),
            clock=clock,
            sleep=no_sleep,
        )
        got = [w.id async for w in client.iter_workouts(USER_ID, page_size=2)]
        new = await client.list_new_workouts(USER_ID, page_size=2)
    assert got == [workout_id(3), workout_id(2), workout_id(1)]
    assert [w.id for w in new.complete] == got
    assert limits == ["2"] * 4


@pytest.mark.parametrize("limit", [0, 101])
async def test_page_size_must_be_1_to_100(client: PelotonClient, limit: int) -> None:
    with pytest.raises(InvalidInput, match=r"1\.\.100"):
        await client.list_workouts(USER_ID, 0, limit)
    with pytest.raises(InvalidInput):
        await client.list_new_workouts(USER_ID, page_size=limit)


async def test_since_must_be_aware(client: PelotonClient) -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        await client.list_new_workouts(USER_ID, since=datetime(2026, 1, 1))
