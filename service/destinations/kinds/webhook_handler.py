"""Sending to a webhook: signed events, as the Standard Webhooks spec says.

Every request carries ``webhook-id`` (the delivery's message id, the same on every retry:
receivers dedupe on it), ``webhook-timestamp`` (this attempt, Unix seconds) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body`` per active secret,
space-separated, so a rotated-out secret keeps verifying for 24 hours). Signing is plain
``hmac``; the tests verify it with the reference ``standardwebhooks`` library.

Answers (the spec and Svix retry every non-2xx; so do we, but for 410 and 413):

* 2xx: delivered. 3xx: retried; redirects are never followed (one could lead past the SSRF
  guard), the user should fix the URL.
* 410: :class:`DestinationGone`. 413: :class:`PayloadTooLarge`, permanent, but a file sent
  inline goes again at once as a download link when one can be made (see ``deliver``).
* 429/503: retried with ``retry_after`` from ``Retry-After`` (429 without one: 60 s).
* Other statuses (a receiver answering 400/401/404 is usually mid-deploy or misconfigured and
  recovers; the 5-day auto-disable ends hopeless cases), timeouts (also 60 s) and connection
  failures: retried.

Secrets never appear in errors, logs, ``repr`` or stored excerpts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import secrets as random_secrets
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import httpx
import orjson
import structlog

from service.config import Settings, get_settings
from service.destinations.kinds.base import (
    EXCERPT_LIMIT,
    OVERLOAD_PENALTY_S,
    Delivered,
    DeliveryError,
    DeliveryRequest,
    DestinationGone,
    PermanentFailure,
    excerpt,
)
from service.destinations.kinds.http_common import Redactor
from service.destinations.kinds.webhook_config import WebhookConfig
from service.destinations.kinds.webhook_signing import OFF_LOOP_SIGNING_BYTES, SECRET_PREFIX, sign
from service.destinations.ssrf import AddressPolicy, CheckedTarget, Resolver, check_address
from service.events.models import EventType
from service.http_headers import parse_retry_after
from service.webhook_http import CONNECT_TIMEOUT_S, USER_AGENT

if TYPE_CHECKING:
    pass

log = structlog.get_logger(__name__)

EVENT_TYPE = EventType.WORKOUT_SYNCED.value

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PayloadTooLarge(PermanentFailure):
    """The receiver answered 413: the request is over its body size limit."""


def _iso(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WebhookKind:
    """Delivers workouts to one webhook. ``client`` is shared and closed by its owner."""

    def __init__(
        self,
        config: WebhookConfig,
        *,
        client: httpx.AsyncClient,
        settings: Settings | None = None,
        policy: AddressPolicy | None = None,
        resolver: Resolver | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        settings = settings or get_settings()
        self._config = config
        self._client = client
        self._policy = policy or AddressPolicy.from_settings(settings)
        self._resolver = resolver
        self._clock = clock
        self._timeout_s = settings.webhook_timeout_s
        self._inline_max = (
            config.inline_max_bytes
            if config.inline_max_bytes is not None
            else settings.webhook_inline_max_bytes
        )
        self._url = httpx.URL(config.url)  # validated with the config
        self._host = self._url.host
        self._timeout_extension = httpx.Timeout(
            self._timeout_s, connect=min(CONNECT_TIMEOUT_S, self._timeout_s)
        ).as_dict()
        # A receiver may echo what it got (debug endpoints do): keep the secrets and the extra
        # header values (often credentials) out of stored excerpts and messages.
        hidden = [s for s in (config.secret, config.previous_secret) if s is not None]
        keys = [s.get_secret_value() for s in hidden]
        self._redactor = Redactor(
            [*keys, *(k.removeprefix(SECRET_PREFIX) for k in keys)],
            words=config.headers.values(),
        )

    async def deliver(self, request: DeliveryRequest) -> Delivered:
        """POST a ``workout.synced`` event with the file inline or as a download link.

        A file within the inline limit travels inline; if the receiver answers 413 (its body
        limit is lower) and a link can be made, the event goes again at once with the file as
        a link, and ``learned_inline_max`` tells the engine to send bigger files as links
        from then on.
        """
        file = request.file
        if file.size > self._inline_max:
            return await self._send(
                request.message_id, EVENT_TYPE, lambda target: self._event(request, target)
            )
        try:
            return await self._send(
                request.message_id, EVENT_TYPE, lambda _target: self._event(request, None)
            )
        except PayloadTooLarge as refused:
            if request.download_url is None:
                raise
            too_large = refused
        # Half the refused file: a few refusals find a size the receiver takes, and every file
        # refused meanwhile still arrives (as a link).
        learned = min(self._inline_max, file.size) // 2
        log.info("webhook.inline_refused", host=self._host, message_id=request.message_id)
        try:
            delivered = await self._send(
                request.message_id,
                EVENT_TYPE,
                lambda target: self._event(request, target, refused=too_large),
            )
        except DeliveryError as exc:
            if exc is not too_large:  # the link went out (and failed): the lesson still holds
                exc.learned_inline_max = learned
            raise
        note = (
            f"(the receiver refused {file.size} bytes inline with HTTP 413: sent as a link; "
            f"files over {learned} bytes go as links from now on) "
        )
        return dataclasses.replace(
            delivered,
            learned_inline_max=learned,
            response_excerpt=excerpt(note + (delivered.response_excerpt or "")),
        )

    def _event(
        self,
        request: DeliveryRequest,
        target: CheckedTarget | None,
        *,
        refused: PayloadTooLarge | None = None,
    ) -> dict[str, Any]:
        """The event's ``data``: the file inline without a ``target``, else as a link for a
        receiver at that target (:class:`PermanentFailure` if no link can be made)."""
        file = request.file
        entry: dict[str, Any] = {
            "format": file.format,
            "filename": file.filename,
            "content_type": file.content_type,
            "size": file.size,
            "sha256": file.sha256,
        }
        if target is None:
            entry["content_base64"] = base64.b64encode(file.data).decode("ascii")
        else:
            link = None
            if request.download_url is not None:
                link = request.download_url(target.addresses[0])
            if link is None:
                if refused is not None:
                    raise refused
                raise PermanentFailure(
                    f"{file.filename} is {file.size} bytes, over this webhook's inline limit "
                    f"of {self._inline_max} bytes, and no download link can be made for it: "
                    "set PELOSYNC_PUBLIC_URL to where receivers reach pelosync, or raise the "
                    "webhook's inline_max_bytes"
                )
            entry["url"] = link
        account = request.account
        return {
            "account": {
                "id": account.id,
                "label": account.label,
                "peloton_user_id": account.peloton_user_id,
                "peloton_username": account.peloton_username,
            },
            "workout": request.workout.as_payload(),
            "files": [entry],
        }

    async def send_event(self, message_id: str, event_type: str, data: dict[str, Any]) -> Delivered:
        """POST one signed event (an operational one: ``data`` is its payload as stored)."""
        return await self._send(message_id, event_type, lambda _target: data)

    async def ping(self) -> Delivered:
        """A signed ``ping`` event through the same address checks as real deliveries."""
        message_id = f"msg_ping_{random_secrets.token_hex(12)}"
        data = {"message": "Test event from pelosync: this webhook is set up correctly."}
        return await self._send(message_id, "ping", lambda _target: data)

    async def _send(
        self,
        message_id: str,
        event_type: str,
        data: Callable[[CheckedTarget], dict[str, Any]],
    ) -> Delivered:
        """Check the address, then build (``data`` of the checked target), sign and POST the
        event, all within the attempt's time limit."""
        if not message_id or "." in message_id or not message_id.isprintable():
            raise PermanentFailure(f"message id {message_id!r} cannot be a webhook-id")
        try:
            try:
                async with asyncio.timeout(self._timeout_s):
                    target = await check_address(self._url, self._policy, resolver=self._resolver)
                    headers, body = await self._signed(message_id, event_type, data(target))
                    status, response_headers, head = await self._post(target, headers, body)
            except TimeoutError:
                raise DeliveryError(
                    f"{self._host} did not answer within {self._timeout_s:g} s (timeout)",
                    retry_after=OVERLOAD_PENALTY_S,
                ) from None
        except DeliveryError as exc:
            log.info("webhook.failed", host=self._host, message_id=message_id, error=exc.message)
            raise
        log.debug("webhook.answered", host=self._host, message_id=message_id, status=status)
        return self._outcome(status, response_headers, head, len(body))

    async def _signed(
        self, message_id: str, event_type: str, data: dict[str, Any]
    ) -> tuple[dict[str, str], bytes]:
        """The request's headers and body: the event as compact JSON, signed now."""
        now = self._clock()
        timestamp = int(now.timestamp())
        payload = {"type": event_type, "timestamp": _iso(now), "data": data}
        body = orjson.dumps(payload)  # compact UTF-8 JSON
        secrets = self._config.signing_secrets(now)
        if len(body) < OFF_LOOP_SIGNING_BYTES:
            signature = sign(message_id, timestamp, body, secrets)
        else:  # HMAC-SHA256 releases the GIL: on a thread it runs beside the event loop
            signature = await asyncio.to_thread(sign, message_id, timestamp, body, secrets)
        headers = {
            **self._config.headers,
            "content-type": "application/json",
            "accept-encoding": "identity",  # only an excerpt is read: nothing to decompress
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
        return headers, body

    async def _post(
        self, target: CheckedTarget, headers: dict[str, str], body: bytes
    ) -> tuple[int, httpx.Headers, bytes]:
        """Send to the checked addresses in turn (next one only if a connection is refused)."""
        # Kept-alive connections are pooled per TLS server name by the client's transport.
        pinned_headers = {**headers, "host": target.host_header()}
        last: httpx.ConnectError | None = None
        for address in target.addresses:
            # Built whole here (the client's defaults merged in would only be overridden).
            request = httpx.Request(
                "POST",
                target.pinned_url(address),
                headers=pinned_headers,
                content=body,
                extensions={**target.extensions(), "timeout": self._timeout_extension},
            )
            try:
                response = await self._client.send(request, stream=True, follow_redirects=False)
                try:
                    head = await _read_head(response)
                except httpx.HTTPError:
                    head = b""  # the status line arrived; a broken body does not change it
                finally:
                    await response.aclose()
            except httpx.ConnectError as exc:
                last = exc
                continue
            except httpx.TimeoutException as exc:
                raise DeliveryError(
                    f"{target.host} did not answer in time ({type(exc).__name__})",
                    retry_after=OVERLOAD_PENALTY_S,
                ) from None
            except httpx.HTTPError as exc:
                raise DeliveryError(
                    f"could not deliver to {target.host}: {type(exc).__name__}: "
                    f"{self._redactor.text(str(exc)[:300])}"
                ) from None
            return response.status_code, response.headers, head
        reason = self._redactor.text(str(last)[:300])
        raise DeliveryError(f"could not connect to {target.host}: ConnectError: {reason}") from None

    def _outcome(self, status: int, headers: httpx.Headers, head: bytes, size: int) -> Delivered:
        text = self._redactor.text(excerpt(head))
        if 200 <= status < 300:
            return Delivered(status_code=status, response_excerpt=text)
        what = f"{self._host} answered HTTP {status}"
        common: dict[str, Any] = {"remote_status": status, "response_excerpt": text}
        if 300 <= status < 400:
            location = self._redactor.text(headers.get("location", "")[:200]) or "nowhere"
            raise DeliveryError(
                f"{what} redirecting to {location}; redirects are not followed: "
                "update the webhook URL",
                **common,
            )
        if status == 410:
            raise DestinationGone(f"{what} (Gone): the receiver says it no longer exists", **common)
        if status == 413:
            raise PayloadTooLarge(
                f"{what} (payload too large) to a {size}-byte request: raise the receiver's "
                "request size limit, or set PELOSYNC_PUBLIC_URL so that files can go as links",
                **common,
            )
        if status in (429, 503):
            retry_after = parse_retry_after(headers.get("retry-after"), self._clock())
            if retry_after is None and status == 429:
                retry_after = OVERLOAD_PENALTY_S
            raise DeliveryError(what, retry_after=retry_after, **common)
        raise DeliveryError(what, **common)


async def _read_head(response: httpx.Response) -> bytes:
    """The first :data:`EXCERPT_LIMIT` bytes of the body; the rest is never downloaded."""
    head = bytearray()
    # aiter_bytes is an async generator: close it when stopping early, not at GC time
    stream = cast(AsyncGenerator[bytes, None], response.aiter_bytes())
    async with contextlib.aclosing(stream) as chunks:
        async for chunk in chunks:
            head += chunk
            if len(head) >= EXCERPT_LIMIT:
                break
    return bytes(head[:EXCERPT_LIMIT])
