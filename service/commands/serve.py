"""``pelosync serve`` and ``pelosync sync``."""

from __future__ import annotations

import os
import socket
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from service.accounts.jobs import PollJob
from service.app import create_app
from service.commands.apikeys import announce_first_key, first_key_setup
from service.commands.common import run, setup
from service.commands.demo import demo_sandbox, demo_setup
from service.config import Settings
from service.db import create_engine, create_session_factory, utcnow
from service.deliveries.jobs import DeliveryJob
from service.deliveries.retry import next_attempt_delay
from service.errors import PelosyncError
from service.events.jobs import EventJob
from service.migrate import check_current, upgrade
from service.peloton.sandbox import run_sandbox
from service.peloton.sandbox.server import ForegroundServer, bind
from service.runtime import open_runtime

_BACKLOG = 2048  # uvicorn's default
# uvicorn's settings for ``serve``: the service logs requests itself (JSON, without query
# strings), and a stop waits up to 25 s for requests in flight.
_SERVER_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "lifespan": "on",
    "timeout_graceful_shutdown": 25,
}


def _proxy_options(settings: Settings) -> dict[str, Any]:
    """Believe X-Forwarded-For/-Proto only from PELOSYNC_FORWARDED_ALLOW_IPS (a reverse
    proxy), so the client address throttling counts by is the real client's."""
    return {"proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}


def listen(host: str, port: int, backlog: int) -> socket.socket:
    """The service's listening socket, taken before anything else starts (migrations, the demo
    sandbox, workers), so a port in use is one line and exit code 2, and changes nothing."""
    try:
        sock = bind(host, port)
        sock.listen(backlog)
    except OSError as exc:
        raise PelosyncError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(another pelosync may be running there; choose a port with --port or PELOSYNC_PORT)"
        ) from None
    # uvicorn's own sockets are inheritable too: --workers hands this one to its processes.
    sock.set_inheritable(True)
    return sock


def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default PELOSYNC_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default PELOSYNC_PORT).")] = None,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help="Refuse to start on an outdated schema.")
    ] = False,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="Also run a sandbox Peloton with a demo account and a folder export."
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Processes on the port, each a whole replica (default PELOSYNC_WORKERS, 1).",
        ),
    ] = None,
) -> None:
    """Run the admin API and the scheduler (polling and deliveries): in one process, or in
    several processes sharing the port (--workers), each a replica of the others."""
    settings = setup()
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    if workers > 1:
        if demo:
            raise typer.BadParameter("--demo runs in one process: leave out --workers")
        serve_workers(settings, host, port, workers, migrate=not no_migrate)
        return
    exports = Path(settings.data_dir).resolve() / "exports"
    sock = listen(host, port, _BACKLOG)

    async def go() -> None:
        async with AsyncExitStack() as stack:
            # Where it listens, as the service knows it (download links without a public URL).
            current = settings.model_copy(update={"host": host, "port": port})
            on_started = None
            if demo:
                state = demo_sandbox(int(time.time()))
                url = await stack.enter_async_context(run_sandbox(state))
                current = current.model_copy(
                    update={"peloton_api_url": url, "peloton_auth_url": url}
                )
                on_started = demo_setup(state, exports, f"http://{host}:{port}")
            if no_migrate:
                engine = create_engine(current.resolved_database_url())
                try:
                    await check_current(engine)
                finally:
                    await engine.dispose()
            on_started = first_key_setup(f"http://{host}:{port}", demo=demo, then=on_started)
            app = create_app(current, migrate=not no_migrate, on_started=on_started)
            config = uvicorn.Config(
                app, host=host, port=port, **_SERVER_OPTIONS, **_proxy_options(current)
            )
            await ForegroundServer(config).serve(sockets=[sock])

    try:
        run(go())
    finally:
        sock.close()


def worker_app() -> FastAPI:
    """The app of one ``serve --workers`` process (uvicorn's factory, in a fresh interpreter):
    settings from the environment, the schema checked, not migrated (the parent did that)."""
    return create_app(setup(), migrate=False)


def serve_workers(settings: Settings, host: str, port: int, workers: int, *, migrate: bool) -> None:
    """``workers`` processes serving one socket under uvicorn's supervisor, which restarts a
    worker that dies and stops them all (each draining its work) on SIGTERM or SIGINT.
    Migrations and the first API key are done here, once, before any worker starts (the
    port already listening)."""

    async def prepare() -> None:
        engine = create_engine(settings.resolved_database_url())
        try:
            await (upgrade(engine) if migrate else check_current(engine))
            sessions = create_session_factory(engine)
            await announce_first_key(
                sessions,
                utcnow(),
                f"http://{host}:{port}",
                demo=False,
                data_dir=settings.data_dir,
            )
        finally:
            await engine.dispose()

    config = uvicorn.Config(
        "service.commands.serve:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **_SERVER_OPTIONS,
        **_proxy_options(settings),
    )
    # The port is taken and listened on first, as gunicorn's arbiter does: a port in use fails
    # before any migration, and a request sent while the workers start waits in the backlog
    # for the first of them instead of being refused.
    sock = listen(host, port, config.backlog)
    # The workers read their settings from the environment: where they listen included
    # (download links without a public URL are made from it).
    os.environ.update(PELOSYNC_HOST=host, PELOSYNC_PORT=str(port))
    run(prepare())
    supervisor = Multiprocess(config, sockets=[sock])
    supervisor.run()
    if any(p.process.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise PelosyncError("a worker could not start (see the log above)")


def sync(
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            show_default=False,
            help="One pass, then exit (the only mode: `pelosync serve` runs continuously).",
        ),
    ] = True,
    account: Annotated[int | None, typer.Option(help="Only this account, now.")] = None,
) -> None:
    """Poll due accounts (or one account now) and send due deliveries, then exit."""
    settings = setup()
    if not once:
        raise typer.BadParameter("only --once is supported; `pelosync serve` runs continuously")

    async def go() -> list[str]:
        async with open_runtime(settings) as rt:
            await check_current(rt.engine)
            results = await PollJob(rt).run_once(account)
            await DeliveryJob(rt).run_until_idle()
            # What went wrong meanwhile reaches the subscribed webhooks too.
            await EventJob(rt, next_attempt_delay).run_until_idle()
        lines = []
        for account_id, result in sorted(results.items()):
            if result is None:
                lines.append(f"account {account_id}: crashed (see the log)")
            else:
                lines.append(
                    f"account {account_id}: {result.outcome}, {result.new} new, "
                    f"{result.in_progress} in progress"
                    + (f", error: {result.error}" if result.error else "")
                )
        return lines or ["nothing was due"]

    typer.echo("\n".join(run(go())))
