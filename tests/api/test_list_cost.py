"""What a list request asks of the database: its one statement, and nothing else.

The API key is checked once for many requests (and once for concurrent ones), the workouts'
status comes with the page, and on PostgreSQL the list runs outside a transaction (no BEGIN
and COMMIT round trips). A revoked key stays refused at once by the process that revoked it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from service.auth.service import generate_key, keys_checked
from service.peloton.sandbox import SandboxState
from service.runtime import Runtime
from tests.api import seed
from tests.api.conftest import Keys, bearer

Api = tuple[httpx.AsyncClient, Keys, Runtime, SandboxState]


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement run meanwhile, with the isolation level it ran under."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append((statement, conn.get_execution_options().get("isolation_level")))

    target = runtime.engine.sync_engine
    event.listen(target, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", record)


async def test_a_list_request_is_one_statement(api: Api) -> None:
    client, keys, runtime, _ = api
    async with runtime.sessions() as session, session.begin():
        world = await seed.world(session)
    key = bearer(keys.read_only)
    assert (await client.get("/v1/workouts", headers=key)).status_code == 200  # key checked
    postgres = runtime.engine.dialect.name == "postgresql"
    for path, params in (
        ("/v1/workouts", {"limit": 3}),
        ("/v1/workouts", {"status": "failed", "account_id": world["accounts"][0]}),
        ("/v1/deliveries", {"state": "succeeded", "limit": 2}),
        ("/v1/deliveries", {"workout_id": world["workouts"][0]}),
    ):
        with statements(runtime) as seen:
            answer = await client.get(path, params=params, headers=key)
        assert answer.status_code == 200 and answer.json()["items"], answer.text
        assert len(seen) == 1 and seen[0][0].lstrip().startswith("SELECT"), seen
        if postgres:
            assert seen[0][1] == "AUTOCOMMIT", seen


async def test_concurrent_requests_with_a_new_key_look_it_up_once(api: Api) -> None:
    client, keys, runtime, _ = api
    created = await client.post(
        "/v1/api-keys", json={"name": "grafana", "role": "read_only"}, headers=bearer(keys.admin)
    )
    key = bearer(created.json()["key"])
    with statements(runtime) as seen:
        answers = await asyncio.gather(
            *(client.get("/v1/deliveries", headers=key) for _ in range(20))
        )
    assert [a.status_code for a in answers] == [200] * 20
    lookups = [s for s, _ in seen if "FROM api_keys" in s and s.lstrip().startswith("SELECT")]
    touches = [s for s, _ in seen if s.lstrip().startswith("UPDATE api_keys")]
    assert len(lookups) == 1 and len(touches) == 1, seen

    # An unknown key is remembered too (briefly): guessing the same key costs one lookup.
    unknown = bearer(generate_key())
    with statements(runtime) as seen:
        for _ in range(3):
            assert (await client.get("/v1/deliveries", headers=unknown)).status_code == 401
    assert sum("FROM api_keys" in s for s, _ in seen) == 1


async def test_a_key_revoked_here_is_refused_at_once_even_while_remembered(api: Api) -> None:
    client, keys, _, _ = api
    admin = bearer(keys.admin)
    created = (await client.post("/v1/api-keys", json={"name": "ci"}, headers=admin)).json()
    key = bearer(created["key"])
    assert (await client.get("/v1/workouts", headers=key)).status_code == 200
    revoked = await client.delete(f"/v1/api-keys/{created['id']}", headers=admin)
    assert revoked.status_code == 200
    assert (await client.get("/v1/workouts", headers=key)).status_code == 401
    # Another key, remembered, keeps working; forgetting everything changes nothing for it.
    assert (await client.get("/v1/workouts", headers=bearer(keys.read_only))).status_code == 200
    keys_checked.clear()
    assert (await client.get("/v1/workouts", headers=bearer(keys.read_only))).status_code == 200
    refused = await client.post("/v1/api-keys", json={"name": "x"}, headers=bearer(keys.read_only))
    assert refused.status_code == 403
