"""The floor for ``benchmarks/api.py``: the same two lists served with nothing but uvicorn and
asyncpg, to tell what the machine allows from what the service costs.

It runs the service's own SQL (each repository's ``page_statement``, compiled once per filter
combination for asyncpg) on a plain asyncpg pool from a bare ASGI callable: no FastAPI, no
SQLAlchemy at run time, no logging, metrics or request ids, the API key compared by its hash.
Two ways of making the body:

* ``rows``: rows to dicts to orjson, as the service does;
* ``json``: PostgreSQL writes the page (``row_to_json`` per row, ``json_agg`` over the page),
  so the server only passes text on.

Answers carry the same items and cursors as the service's (timestamps as PostgreSQL writes
them in ``json``). Only what the benchmark sends is understood; anything else is a 400.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import orjson
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from service.auth.service import hash_key
from service.deliveries import repository as deliveries
from service.errors import InvalidInput
from service.pagination import decode_id_cursor, decode_time_cursor, encode_cursor
from service.workouts import repository as workouts

MODES = ("rows", "json")
POOL_SIZE = 20  # as the service's pool


class Statement:
    """One list statement compiled for asyncpg: its SQL and its parameters in order."""

    def __init__(self, stmt: Select[Any], mode: str, sort: str) -> None:
        compiled = stmt.compile(dialect=asyncpg_dialect(paramstyle="numeric_dollar"))
        self.compiled = compiled
        self.names = list(compiled.positiontup or [])
        sql = str(compiled)
        if mode == "json":
            # The page's items (all but the extra row that says there is more), how many rows
            # came, and the sort key and id of the last item shown, for the cursor.
            shown = f"${len(self.names) + 1}"
            sql = (
                f"SELECT coalesce(json_agg(q.j ORDER BY q.n) FILTER (WHERE q.n <= {shown}), "
                f"'[]')::text, count(*), max(q.sort_key) FILTER (WHERE q.n = {shown}), "
                f"max(q.id) FILTER (WHERE q.n = {shown}) FROM (SELECT row_to_json(p) AS j, "
                f"row_number() OVER () AS n, p.{sort} AS sort_key, p.id FROM ({sql}) AS p) AS q"
            )
        self.sql = sql

    def args(self, params: dict[str, Any]) -> list[Any]:
        values = self.compiled.construct_params(params)
        return [values[name] for name in self.names]


def _workouts(query: dict[str, str], limit: int) -> tuple[Select[Any], dict[str, Any], str]:
    before = decode_time_cursor(query.get("cursor"))
    params: dict[str, Any] = {"limit": limit + 1}
    if "account_id" in query:
        params["account_id"] = int(query["account_id"])
    if "discipline" in query:
        params["discipline"] = query["discipline"]
    for name in ("started_from", "started_before"):
        if name in query:
            params[name] = datetime.fromisoformat(query[name])
    if before is not None:
        params["cursor_started_at"], params["cursor_id"] = before
    stmt = workouts.page_statement(
        before is not None,
        "account_id" in params,
        "discipline" in params,
        "started_from" in params,
        "started_before" in params,
        query.get("status"),
    )
    return stmt, params, "started_at"


def _deliveries(query: dict[str, str], limit: int) -> tuple[Select[Any], dict[str, Any], str]:
    before = decode_id_cursor(query.get("cursor"))
    params: dict[str, Any] = {"limit": limit + 1}
    if before is not None:
        params["cursor_id"] = before
    if "state" in query:
        params["state"] = query["state"]
    for name in ("destination_id", "workout_id"):
        if name in query:
            params[name] = int(query[name])
    stmt = deliveries.page_statement(
        before is not None, "state" in params, "destination_id" in params, "workout_id" in params
    )
    return stmt, params, "id"


LISTS: dict[str, Callable[[dict[str, str], int], tuple[Select[Any], dict[str, Any], str]]] = {
    "/v1/workouts": _workouts,
    "/v1/deliveries": _deliveries,
}


def make_app(dsn: str, key_hash: str, mode: str) -> Any:
    """The bare ASGI app."""
    statements: dict[int, Statement] = {}  # the statements are cached, so their ids last
    state: dict[str, asyncpg.Pool] = {}
    authorization = b"Bearer "

    async def page(path: str, query_string: bytes) -> bytes:
        query = dict(parse_qsl(query_string.decode()))
        limit = int(query.get("limit", 50))
        stmt, params, sort = LISTS[path](query, limit)
        compiled = statements.get(id(stmt))
        if compiled is None:
            compiled = statements[id(stmt)] = Statement(stmt, mode, sort)
        args = compiled.args(params)
        async with state["pool"].acquire() as conn:
            if mode == "json":
                items, fetched, sort_key, last_id = await conn.fetchrow(compiled.sql, *args, limit)
                more, body_items = fetched > limit, items.encode()
            else:
                rows = await conn.fetch(compiled.sql, *args)
                shown = rows[:limit]
                more = len(rows) > limit
                sort_key, last_id = (shown[-1][sort], shown[-1]["id"]) if shown else (None, 0)
                body_items = orjson.dumps([dict(row) for row in shown], option=orjson.OPT_UTC_Z)
        cursor = encode_cursor(sort_key if sort != "id" else None, last_id) if more else None
        return b'{"items":%s,"next_cursor":%s}' % (body_items, orjson.dumps(cursor))

    async def respond(send: Any, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()  # startup
            state["pool"] = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # shutdown
            await state["pool"].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        if path == "/healthz":
            await respond(send, 200, b'{"status":"ok"}')
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        presented = given.removeprefix(authorization)
        if presented == given or hash_key(presented.decode()) != key_hash:
            await respond(send, 401, b'{"title":"Unauthorized"}')
        elif path not in LISTS:
            await respond(send, 404, b'{"title":"Not Found"}')
        else:
            try:
                body = await page(path, scope["query_string"])
            except (InvalidInput, ValueError, KeyError) as exc:
                await respond(send, 400, orjson.dumps({"title": "Bad Request", "detail": str(exc)}))
            else:
                await respond(send, 200, body)

    return app


def serve(sock: socket.socket, dsn: str, key_hash: str, mode: str) -> None:
    """Serve the reference on ``sock`` (in a process of its own); ``dsn`` is asyncpg's."""
    import uvicorn

    sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    config = uvicorn.Config(
        make_app(dsn, key_hash, mode), log_config=None, access_log=False, log_level="warning"
    )
    uvicorn.Server(config).run(sockets=[sock])
