"""Serve a fake over real loopback HTTP: one uvicorn per test module or session, in its own
thread (so its event loop outlives each test's loop), on 127.0.0.1 and a free port. Tests install
a fresh fake per test through the :class:`Switch` instead of restarting the server (~0.5 s each).

(The admin API under test is served differently, in the test's own loop with its lifespan: see
``tests/api/conftest.py``.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send


class Switch:
    """The served ASGI app: forwards to the current test's fake."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no fake installed"
        await self.app(scope, receive, send)


@contextmanager
def serve(name: str) -> Iterator[tuple[str, Switch]]:
    """Start uvicorn for a :class:`Switch`; yields (base URL, switch)."""
    switch = Switch()
    config = uvicorn.Config(
        switch,
        host="127.0.0.1",
        port=0,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        http="h11",
        loop="asyncio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"fake-{name}", daemon=True)
    thread.start()
    for _ in range(2000):
        if server.started or not thread.is_alive():
            break
        time.sleep(0.005)
    assert server.started, f"the fake {name} server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", switch
    finally:
        server.should_exit = True
        thread.join()
