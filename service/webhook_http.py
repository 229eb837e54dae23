"""The webhook client (:func:`build_client`) and its transport: httpx's API over aiohttp's
connection pool.

It lives in the core, not in ``destinations/kinds/``, because the :class:`~service.runtime.Runtime`
opens the one client every webhook delivery shares.

Webhook requests go to the address the SSRF guard checked (``https://203.0.113.7/hook`` with
``Host: hooks.example.com`` and the TLS server name set through the ``sni_hostname``
extension). Two things matter for them here:

- A kept-alive connection must only be reused for the TLS server name its certificate was
  verified for. httpx's own pool keys connections by scheme, address and port only, so one
  address serving ``a.example.com`` and ``b.example.com`` could carry one name's request on the
  other's connection; aiohttp's pool keys them by server name too.
- Sending is the delivery engine's main cost. httpcore (pure Python, on anyio, checking every
  idle connection's socket for each request) spends about 1.9 ms of CPU per webhook; aiohttp,
  whose HTTP parser is C, about 0.6 ms (``benchmarks/deliver.py``). This transport is
  performance machinery: it buys those 1.3 ms of CPU per webhook.

The service keeps httpx's client API (timeouts, headers, the ``sni_hostname`` extension, the
same error classes); only the transport underneath changes. aiohttp's errors are mapped onto
httpx's: a refused or failed connection (TLS included) is a ``ConnectError``, so the next
checked address is tried; a dropped connection a ``RemoteProtocolError``; timeouts
``ConnectTimeout``/``ReadTimeout``. Redirects are never followed, nor proxies or netrc read
from the environment, and nothing is decompressed (only an excerpt of the answer is read).
"""

from __future__ import annotations

import contextlib
import io
import ssl
from collections.abc import AsyncIterator, Iterator

import aiohttp
import certifi
import httpx
from yarl import URL

from service import __version__
from service.config import Settings, get_settings

USER_AGENT = f"pelosync/{__version__}"
CONNECT_TIMEOUT_S = 5.0

#: How long an idle kept-alive connection stays open (httpx's default).
KEEPALIVE_S = 5.0
#: Bodies over this size are streamed from a buffer (aiohttp's own threshold for raw bytes).
LARGE_BODY_BYTES = 1024 * 1024


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    """aiohttp's exceptions raised as the httpx ones the callers handle."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "timed out connecting", request=request) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "timed out reading", request=request) from exc
    except aiohttp.ClientConnectorError as exc:  # refused, unreachable, TLS handshake or cert
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        ) from exc
    except (aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
    except aiohttp.ClientResponseError as exc:  # an answer that is not valid HTTP
        raise httpx.RemoteProtocolError(exc.message, request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.TransportError(f"{type(exc).__name__}: {exc}", request=request) from exc


def _ssl(verify: ssl.SSLContext | bool) -> ssl.SSLContext | bool:
    if isinstance(verify, ssl.SSLContext):
        return verify
    # The same trust store as httpx's default (certifi's), so both clients agree.
    return ssl.create_default_context(cafile=certifi.where()) if verify else False


# Performance machinery (benchmarks/deliver.py): 0.6 ms of CPU per webhook instead of httpcore's
# 1.9 ms (see the module's docstring; it also pools connections per TLS server name).
class WebhookTransport(httpx.AsyncBaseTransport):
    """An httpx transport sending through one aiohttp session (created on first use, inside
    the running event loop, and closed with the client)."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True) -> None:
        self._ssl = _ssl(verify)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the webhook transport is closed")
        if self._session is None:
            # No overall connection limit: the delivery engine bounds each destination's
            # concurrency itself, and a limit here would make destinations queue for each
            # other's slots (a slow one delaying the rest).
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=0, keepalive_timeout=KEEPALIVE_S)
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # receivers' cookies are never sent back
                auto_decompress=False,
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None),  # per request, from httpx's timeout
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        timeout = request.extensions.get("timeout", {})
        sni = request.extensions.get("sni_hostname")
        body = await request.aread()
        # aiohttp writes bytes in one go (and warns over 1 MiB); a file-sized body (webhooks
        # carry files of up to 16 MiB inline) goes in chunks from a buffer instead, letting
        # the event loop run between them.
        data = io.BytesIO(body) if len(body) > LARGE_BODY_BYTES else (body or None)
        with _as_httpx_errors(request):
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),  # httpx has already encoded it
                headers=request.headers.multi_items(),
                data=data,
                allow_redirects=False,
                server_hostname=sni if isinstance(sni, str) and sni else None,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _Body(httpx.AsyncByteStream):
    """An aiohttp response's body as an httpx stream. Closing it before the body is read
    closes the connection (it cannot carry another request); a read body frees it for reuse."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


def build_client(
    settings: Settings | None = None, *, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """The HTTP client for webhooks: no redirects, no proxies/netrc from the environment, and
    keep-alive connections pooled per address and TLS server name, sent through aiohttp
    (see :class:`WebhookTransport`)."""
    timeout_s = (settings or get_settings()).webhook_timeout_s
    return httpx.AsyncClient(
        transport=WebhookTransport(verify=verify),
        follow_redirects=False,
        trust_env=False,  # env proxies and ~/.netrc credentials must not apply to user URLs
        timeout=httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s)),
        headers={"user-agent": USER_AGENT},
    )
