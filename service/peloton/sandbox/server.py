"""Serving the sandbox: in-process for tests and demos, or in the foreground for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn

from service.peloton.sandbox.app import create_sandbox_app
from service.peloton.sandbox.state import SandboxState

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host (pytest, the demo)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ForegroundServer(uvicorn.Server):
    """uvicorn's server for a command in the foreground (``serve``, ``sandbox``): a SIGTERM or
    SIGINT ends in exit code 0 once the graceful shutdown (lifespan drain included) is done.

    uvicorn re-raises the caught signal after shutting down, so the process died of SIGTERM
    (exit 143 / -15) even when it stopped cleanly, and supervisors reported a failure.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so, and
    # without it small responses wait for delayed ACKs (~40 ms each).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def uvicorn_config(state: SandboxState, *, foreground: bool = False) -> uvicorn.Config:
    """Quiet in-process serving, or uvicorn's usual console logs (with access log) for the CLI."""
    return uvicorn.Config(
        create_sandbox_app(state),
        lifespan="off",
        ws="none",
        log_config=uvicorn.config.LOGGING_CONFIG if foreground else None,
        log_level="info" if foreground else "warning",
        access_log=foreground,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


@contextlib.asynccontextmanager
async def run_sandbox(
    state: SandboxState, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``state`` on ``host:port`` in the running event loop; yields the base URL.

    On exit, pending sleeps (latency, timeout faults) wake up at once and the server stops
    cleanly, closing its connections and socket.
    """
    sock = bind(host, port)
    server = _EmbeddedServer(uvicorn_config(state))
    state.closing = asyncio.Event()
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped the start-up
                raise RuntimeError("the sandbox server stopped during start-up")
            await asyncio.sleep(0.005)
        yield base_url(sock)
    finally:
        state.closing.set()
        server.should_exit = True
        try:
            await task
        finally:
            state.closing = None
            sock.close()
