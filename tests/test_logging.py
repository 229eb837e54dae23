"""PELOSYNC_LOG_LEVEL=DEBUG does not let libraries log headers, cookies, codes or SQL
parameters."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from service.db import create_engine
from service.logging import QUIET_LIBRARIES, configure_logging

SECRET = "code-4f2a9c1e7b"


async def _answer_with_a_cookie(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(
        f"HTTP/1.1 200 OK\r\nSet-Cookie: session={SECRET}\r\nContent-Length: 2\r\n"
        "Connection: close\r\n\r\nok".encode()
    )
    await writer.drain()
    writer.close()


async def test_debug_logging_keeps_libraries_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)  # everything that reaches the root logger is captured
    try:
        server = await asyncio.start_server(_answer_with_a_cookie, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{port}/callback?code={SECRET}")
            assert answer.cookies["session"] == SECRET
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT :secret"), {"secret": SECRET})
        finally:
            await engine.dispose()
        assert logging.getLogger("service.anything").isEnabledFor(logging.DEBUG)
        leaked = [r.name for r in caplog.records if SECRET in r.getMessage() + str(r.args)]
        assert leaked == []
        for name in (*QUIET_LIBRARIES, "httpcore.http11", "sqlalchemy.engine.Engine"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    finally:
        configure_logging("INFO")
        logging.getLogger().setLevel(logging.WARNING)
