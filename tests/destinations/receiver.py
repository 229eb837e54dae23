"""A webhook receiver for tests: a small asyncio HTTP/1.1 server (h11) on loopback.

It verifies *every* request with the reference ``standardwebhooks`` library against each secret
it knows, records what it got, and answers as scripted: a status, a delay, a redirect, or by
dropping the connection without answering. Optionally serves TLS and records the SNI name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Answer:
    """What the receiver does with one request."""

    status: int = 200
    body: bytes = b"thanks"
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay_s: float = 0.0
    drop: bool = False  # close the connection instead of answering
    hold: asyncio.Event | None = None  # answer only once the test sets it (after any delay)


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    verified_by: list[str]  # the known secrets whose signature checks passed
    payload: Any  # the JSON body as decoded by the library (None if nothing verified)


class Receiver:
    """Start with ``await receiver.start()``; ``answers`` are used in order, then ``default``."""

    def __init__(self, secrets: list[str], *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.secrets = secrets
        self.answers: list[Answer] = []
        self.default = Answer()
        self.requests: list[Received] = []
        self.sni_names: list[str | None] = []
        self.connections = 0  # TCP connections accepted
        # A body size limit, as web frameworks have (Express's express.raw: 100 KB by default):
        # bigger requests are answered 413 unread, and their sizes kept in ``refused``.
        self.max_body: int | None = None
        self.refused: list[int] = []
        # Asked first about each verified request: an answer for it, or None for the usual.
        self.rule: Callable[[Received], Answer | None] | None = None
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        if ssl_context is not None:
            ssl_context.sni_callback = self._record_sni

    def _record_sni(self, _sock: Any, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.sni_names.append(name)

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        scheme = "https" if self._ssl else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def unverified(self) -> list[Received]:
        return [r for r in self.requests if not r.verified_by]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self._serve(reader, writer)
        except (ConnectionError, ssl.SSLError, h11.RemoteProtocolError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request, body = event, bytearray()
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                if self.max_body is not None and len(body) > self.max_body:
                    self.refused.append(len(body))
                    answer = Answer(status=413, body=b"request entity too large")
                else:
                    answer = self._record(request, bytes(body))
                if answer.delay_s:
                    await asyncio.sleep(answer.delay_s)
                if answer.hold is not None:
                    await answer.hold.wait()
                if answer.drop:
                    writer.transport.abort()
                    return
                headers = [("content-length", str(len(answer.body))), *answer.headers]
                writer.write(conn.send(h11.Response(status_code=answer.status, headers=headers)))
                writer.write(conn.send(h11.Data(data=answer.body)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
            else:  # ConnectionClosed, PAUSED
                return

    def _record(self, request: h11.Request, body: bytes) -> Answer:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        verified_by: list[str] = []
        payload: Any = None
        for secret in self.secrets:
            try:
                payload = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified_by.append(secret)
        received = Received(
            method=request.method.decode(),
            target=request.target.decode(),
            headers=headers,
            body=body,
            verified_by=verified_by,
            payload=payload,
        )
        self.requests.append(received)
        if self.rule is not None and (answer := self.rule(received)) is not None:
            return answer
        return self.answers.pop(0) if self.answers else self.default


def refuse_the_first_message(receiver: Receiver, status: int = 413) -> None:
    """Answer ``status`` to every request of the first ``workout.synced`` message (its file
    inline, then as a link after a 413) until ``receiver.rule`` is cleared: one delivery fails
    for good, the others go through."""
    first: list[str] = []

    def rule(request: Received) -> Answer | None:
        if not request.payload or request.payload.get("type") != "workout.synced":
            return None
        first[:] = first or [request.headers["webhook-id"]]
        return Answer(status=status) if request.headers["webhook-id"] == first[0] else None

    receiver.rule = rule
