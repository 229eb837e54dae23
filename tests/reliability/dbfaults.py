"""Database faults for the reliability suite: a private PostgreSQL server that a test may stop and
restart at will, and a TCP proxy in front of a server that cuts connections on demand, blindly
or at one chosen statement (it reads the client's side of the PostgreSQL protocol).

The machine's shared PostgreSQL server is never restarted: other tests use it in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import glob
import os
import pwd
import shutil
import socket
import struct
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from service.db import create_engine
from service.migrate import upgrade

# --- a private PostgreSQL server -----------------------------------------------------------


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl live: ``pg_config --bindir``, else the newest Debian layout."""
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            )
            candidates.append(found.stdout.strip())
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PrivatePostgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1, its files and socket in ``root``.

    Run as root, the server runs as the ``postgres`` user (PostgreSQL refuses root), in a
    directory that user owns. ``fsync=off``: nothing here must survive an operating-system
    crash, and a stopped server (even ``-m immediate``) loses no committed transaction, since
    commits still write the WAL to the kernel. ``synchronous_commit`` stays on for that reason.
    """

    bindir: Path
    root: Path
    port: int = 0
    restarts: int = 0
    outages: int = 0
    _runner: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, bindir: Path) -> PrivatePostgres:
        root = Path(tempfile.mkdtemp(prefix="pelosync-pg-"))
        runner: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")  # KeyError: the caller skips
            os.chown(root, user.pw_uid, user.pw_gid)
            runner = ["runuser", "-u", "postgres", "--"]
        return cls(bindir, root, _runner=runner)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._runner, *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
            cwd=self.root,  # the postgres user may not be able to read the caller's directory
        )

    def _ctl(self, *args: str) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), *args)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"pg_ctl {' '.join(args)} failed:\n{exc.stdout}{exc.stderr}\n{self.tail()}"
            ) from exc

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            *("-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"),
            "--no-sync",
        )

    def configure(self, port: int) -> None:
        self.port = port
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "60",
            "shared_buffers": "16MB",
        }
        # postgresql.auto.conf is read last: these win over the defaults initdb wrote.
        auto = self.data / "postgresql.auto.conf"
        with auto.open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        self._ctl("start", "-w", "-t", "60")

    def stop(self, mode: str = "immediate") -> None:
        """Stop now; ``immediate`` is a crash as far as clients can tell."""
        self._ctl("stop", "-w", "-t", "60", "-m", mode)
        self.outages += 1

    def restart(self, mode: str = "immediate") -> None:
        self._ctl("restart", "-w", "-t", "60", "-m", mode)
        self.restarts += 1

    def running(self) -> bool:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "status", timeout=30)
        except subprocess.CalledProcessError:
            return False
        return True

    def destroy(self) -> None:
        """Stop the server if it runs and delete every file; never raises."""
        with contextlib.suppress(Exception):
            if self.data.exists() and self.running():
                self._ctl("stop", "-w", "-t", "30", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    async def create_database(self, name: str) -> str:
        """A new database, migrated; returns its URL."""
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        url = self.url(name)
        engine = create_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        return url


def start_private_postgres() -> PrivatePostgres:
    """Initialise and start a private cluster; raises LookupError naming what is missing."""
    bindir = postgres_bindir()
    if bindir is None:
        raise LookupError("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise LookupError("running as root, but there is no postgres user") from None
        if shutil.which("runuser") is None:
            raise LookupError("running as root, but runuser is missing")
    server = PrivatePostgres.create(bindir)
    try:
        server.init()
        for attempt in range(3):  # another process may take the free port first
            server.configure(free_port())
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
    except BaseException:
        server.destroy()
        raise
    return server


# --- a TCP proxy that cuts connections --------------------------------------------------------

#: What the proxy does at the statement it watches for (see :meth:`PgProxy.arm`).
CUT_BEFORE = "before"  # drop the connection instead of sending the statement on
CUT_AFTER = "after"  # send it, let the server run it, drop the connection instead of the reply

_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104
_ENCRYPTION_REQUESTS = {struct.pack("!I", code) for code in (_SSL_REQUEST, _GSS_REQUEST)}


@dataclass
class _Trap:
    after: bytes  # the statement that arms the trap on its connection (e.g. an INSERT)
    then: bytes  # the statement at which it springs on that connection (e.g. COMMIT)
    mode: str
    close: bool  # refuse new connections once it has sprung
    sprung: asyncio.Event = field(default_factory=asyncio.Event)


class CuttableProxy:
    """A TCP proxy on loopback; ``cut()`` drops every connection and refuses new ones.

    It also reads the client's side of the PostgreSQL protocol, so a test can cut one
    connection at one statement (:meth:`arm`); to keep it readable, the proxy itself declines
    the client's request for TLS.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.open = True
        self.cuts = 0
        self.refused = 0  # connections refused while cut
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._trap: _Trap | None = None
        self.port = 0

    async def start(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        self.open = False
        self.cuts += 1
        for writer in list(self._links):
            writer.transport.abort()

    def restore(self) -> None:
        self.open = True

    def arm(self, *, after: bytes, then: bytes, mode: str, close: bool) -> asyncio.Event:
        """Cut the first connection that runs a statement starting with ``then`` after one
        containing ``after`` (an empty ``after``: the first such statement at all), in
        ``mode``: :data:`CUT_BEFORE` or :data:`CUT_AFTER`; with
        ``close``, refuse every connection from then on, until :meth:`restore`. The event is
        set once it has sprung."""
        self._trap = _Trap(after, then, mode, close)
        return self._trap.sprung

    async def close(self) -> None:
        self.open = False
        for writer in list(self._links):
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))
        link = _Link()
        pumps = [
            asyncio.create_task(self._client_to_server(reader, up_writer, writer, link)),
            asyncio.create_task(self._server_to_client(up_reader, writer, up_writer, link)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._tasks.difference_update(pumps)
            for end in (writer, up_writer):
                self._links.discard(end)
                end.transport.abort()

    def _spring(self, trap: _Trap, *ends: asyncio.StreamWriter) -> None:
        self._trap = None
        self.cuts += 1
        if trap.close:
            self.open = False
        for end in ends:
            end.transport.abort()
        trap.sprung.set()

    async def _client_to_server(
        self,
        reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        link: _Link,
    ) -> None:
        try:
            async for message in _frontend_messages(reader):
                if message.kind == b"" and message.body[:4] in _ENCRYPTION_REQUESTS:
                    # Answered here, never passed on: "no TLS", so the client talks in clear
                    # and its statements stay readable (the server never sees the request).
                    client.write(b"N")
                    await client.drain()
                    continue
                trap = self._trap
                springs = False
                if trap is not None and message.kind in (b"Q", b"P"):
                    # A simple query is its text; a Parse names the statement it prepares.
                    name, sql = (b"", message.body)
                    if message.kind == b"P":
                        name, sql = message.body.split(b"\0", 2)[:2]
                    if trap.after and trap.after in sql:
                        link.armed = True
                    elif (link.armed or not trap.after) and sql.lstrip().upper().startswith(
                        trap.then
                    ):
                        # A prepared statement runs at its Bind (asyncpg prepares it first,
                        # in a round trip of its own); a simple query at once.
                        if message.kind == b"P":
                            link.trapped = name
                        else:
                            springs = True
                elif trap is not None and message.kind == b"B" and link.trapped is not None:
                    springs = message.body.split(b"\0", 2)[1] == link.trapped
                if trap is not None and springs:
                    if trap.mode == CUT_BEFORE:
                        self._spring(trap, client, upstream)
                        return
                    link.swallow = functools.partial(self._spring, trap, client, upstream)
                upstream.write(message.raw)
                await upstream.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            upstream.transport.abort()

    async def _server_to_client(
        self,
        reader: asyncio.StreamReader,
        client: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter,
        link: _Link,
    ) -> None:
        try:
            while data := await reader.read(65536):
                if link.swallow is not None:  # the server's reply to the trapped statement
                    link.swallow()
                    return
                client.write(data)
                await client.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            client.transport.abort()


@dataclass
class _Link:
    armed: bool = False
    trapped: bytes | None = None  # the prepared statement the trap springs at
    swallow: Callable[[], None] | None = None


@dataclass
class _Message:
    kind: bytes  # b"" for the untyped start-up messages
    body: bytes
    raw: bytes


async def _frontend_messages(reader: asyncio.StreamReader) -> AsyncIterator[_Message]:
    """The client's messages: untyped ones (SSL request, start-up) first, then typed ones."""
    typed = False
    while True:
        if not typed:
            head = await reader.readexactly(4)
            (length,) = struct.unpack("!I", head)
            body = await reader.readexactly(length - 4)
            code = struct.unpack("!I", body[:4])[0] if len(body) >= 4 else 0
            # After an SSL or GSS request the client waits for a one-byte answer and sends
            # its start-up message next; after the start-up message every message is typed.
            typed = code not in (_SSL_REQUEST, _GSS_REQUEST)
            yield _Message(b"", body, head + body)
            continue
        head = await reader.readexactly(5)
        (length,) = struct.unpack("!I", head[1:])
        body = await reader.readexactly(length - 4)
        yield _Message(head[:1], body, head + body)
