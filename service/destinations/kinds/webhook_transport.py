"""Keep-alive connections for webhooks without mixing TLS server names.

Webhook requests go to the address the SSRF guard checked (``https://203.0.113.7/hook`` with
``Host: hooks.example.com`` and the TLS server name set through the ``sni_hostname``
extension). httpx pools connections by scheme, address and port only, so one shared pool could
hand a connection whose certificate was verified for ``a.example.com`` to a request for
``b.example.com`` served from the same address. :class:`ServerNamePools` keeps one pool per TLS
server name instead: a connection is only ever reused for the name it was verified for, and a
receiver's connections stay open between deliveries (opening one per request cost as much as
the rest of a delivery). Plain-HTTP requests share one pool: no certificate is involved, and
an HTTP/1.1 connection may carry requests for several ``Host`` names.

A connection is keyed by the checked address, so a DNS answer that changes moves the next
request to a new connection on the new (re-checked) address.
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable

import httpx

#: Server names with pools kept open; the least recently used idle one is closed past this.
MAX_SERVER_NAMES = 256
PLAIN = ""  # the key of the pool for plain-HTTP requests


class ServerNamePools(httpx.AsyncBaseTransport):
    """An httpx transport with one connection pool per TLS server name."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        max_names: int = MAX_SERVER_NAMES,
    ) -> None:
        self._verify = verify
        self._limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._max_names = max_names
        self._pools: OrderedDict[str, httpx.AsyncHTTPTransport] = OrderedDict()
        self._in_flight: dict[str, int] = {}
        self._closed = False

    def _pool(self, name: str) -> httpx.AsyncHTTPTransport:
        if self._closed:
            raise RuntimeError("the webhook transport is closed")
        pool = self._pools.get(name)
        if pool is None:
            pool = httpx.AsyncHTTPTransport(verify=self._verify, limits=self._limits)
            self._pools[name] = pool
        self._pools.move_to_end(name)
        return pool

    async def _evict(self) -> None:
        # Only pools with no request in flight are closed; busy ones wait for a later call.
        if len(self._pools) <= self._max_names:
            return
        for name in list(self._pools):
            if len(self._pools) <= self._max_names:
                return
            if self._in_flight.get(name, 0) == 0:
                await self._pools.pop(name).aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        name = PLAIN
        if request.url.scheme == "https":
            sni = request.extensions.get("sni_hostname")
            name = sni if isinstance(sni, str) and sni else request.url.host
        pool = self._pool(name)
        await self._evict()
        self._in_flight[name] = self._in_flight.get(name, 0) + 1
        try:
            response = await pool.handle_async_request(request)
        except BaseException:
            self._done(name)
            raise
        # The response body is read later: the request stays in flight until it is closed.
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Tracked(_async_stream(response), lambda: self._done(name)),
            extensions=response.extensions,
        )

    def _done(self, name: str) -> None:
        left = self._in_flight.get(name, 1) - 1
        if left > 0:
            self._in_flight[name] = left
        else:
            self._in_flight.pop(name, None)

    async def aclose(self) -> None:
        self._closed = True
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()


def _async_stream(response: httpx.Response) -> httpx.AsyncByteStream:
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):  # pragma: no cover - httpx's own contract
        raise TypeError("an async transport answered with a sync stream")
    return stream


class _Tracked(httpx.AsyncByteStream):
    """A response stream that reports when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, on_close: Callable[[], None]) -> None:
        self._stream = stream
        self._on_close: Callable[[], None] | None = on_close

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        on_close, self._on_close = self._on_close, None
        try:
            await self._stream.aclose()
        finally:
            if on_close is not None:
                on_close()
