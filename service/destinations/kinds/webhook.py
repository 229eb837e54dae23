"""Webhook destinations, signed as the Standard Webhooks spec says.

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
import binascii
import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import re
import secrets as random_secrets
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, cast

import httpx
import orjson
import structlog
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

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
from service.destinations.kinds.spec import (
    ALL_FORMATS,
    FormField,
    KindSpec,
    Validated,
    decrypted_secrets,
)
from service.destinations.ssrf import (
    AddressPolicy,
    CheckedTarget,
    InvalidDestinationUrl,
    Resolver,
    UnsafeDestination,
    check_address,
    validate_url,
)
from service.errors import InvalidInput, validation_problems
from service.events.models import DEFAULT_SUBSCRIPTION, EventType
from service.events.models import TITLES as EVENT_TITLES
from service.http_headers import parse_retry_after
from service.webhook_http import CONNECT_TIMEOUT_S, USER_AGENT

if TYPE_CHECKING:
    from service.destinations.models import Destination
    from service.runtime import Runtime

log = structlog.get_logger(__name__)

EVENT_TYPE = EventType.WORKOUT_SYNCED.value
SECRET_PREFIX = "whsec_"
ROTATION_GRACE = timedelta(hours=24)
# Names a user's extra headers may not set: the signature, framing and identity headers.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "transfer-encoding", "host"}
    | {"connection", "user-agent", "te", "upgrade", "expect", "keep-alive", "accept-encoding"}
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

Clock = Callable[[], datetime]


#: Bodies from this size on are signed on a thread, beside the event loop (HMAC-SHA256 releases
#: the GIL). Below it they are signed inline: a hand-over to a thread costs the process more CPU
#: than the HMAC of a file-sized body (measured with 46 KB bodies: 0.9 ms of process CPU per
#: delivery more on a thread; the HMAC itself takes about 5 µs per KB).
OFF_LOOP_SIGNING_BYTES = 512 * 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PayloadTooLarge(PermanentFailure):
    """The receiver answered 413: the request is over its body size limit."""


def generate_secret(nbytes: int = 24) -> str:
    """A new signing secret: ``whsec_`` + base64 of ``nbytes`` (24-64) random bytes."""
    if not 24 <= nbytes <= 64:
        raise ValueError("a webhook secret has 24 to 64 bytes")
    return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(nbytes)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the base64-decoded part after the prefix)."""
    body = secret.removeprefix(SECRET_PREFIX).strip()
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"a webhook secret must hold 24 to 64 bytes, this one has {len(key)}")
    return key


def sign(message_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per secret, space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.digest(secret_bytes(s), signed, hashlib.sha256)).decode()
        for s in secrets
    )


class WebhookConfig(BaseModel):
    """A webhook destination's settings. ``SECRET_FIELDS`` belong in the encrypted secrets."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"secret", "previous_secret", "headers"})

    url: str
    secret: SecretStr
    # The secret before the last rotation; it also signs until ``previous_secret_expires_at``.
    previous_secret: SecretStr | None = None
    previous_secret_expires_at: AwareDatetime | None = None
    # Extra request headers (e.g. a receiver's own Authorization); may hold credentials.
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    # Files up to this size travel inside the payload; None means PELOSYNC_WEBHOOK_INLINE_MAX_BYTES.
    inline_max_bytes: int | None = Field(default=None, ge=0)
    # What this webhook receives: workout.synced (its files) and the operational events.
    events: list[EventType] = Field(default_factory=lambda: list(DEFAULT_SUBSCRIPTION))

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            return validate_url(value)
        except InvalidDestinationUrl as exc:
            raise ValueError(exc.message) from None

    @field_validator("secret", "previous_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        key = secret_bytes(value.get_secret_value())  # ValueError names the problem only
        return SecretStr(SECRET_PREFIX + base64.b64encode(key).decode("ascii"))

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            lowered = name.lower()
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if lowered in RESERVED_HEADERS or lowered.startswith("webhook-"):
                raise ValueError(f"the {name} header is set by pelosync and cannot be overridden")
            if any(c in header_value for c in "\r\n\0"):
                raise ValueError(f"the {name} header value contains a line break")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[EventType]) -> list[EventType]:
        if not value:
            raise ValueError("subscribe to at least one event type")
        return sorted(set(value), key=list(EventType).index)  # once each, in a stable order

    @model_validator(mode="after")
    def _rotation(self) -> WebhookConfig:
        if (self.previous_secret is None) != (self.previous_secret_expires_at is None):
            raise ValueError("previous_secret and previous_secret_expires_at go together")
        return self

    @classmethod
    def parse(
        cls, config: Mapping[str, Any], secrets: Mapping[str, Any] | None = None
    ) -> WebhookConfig:
        """From the stored config and decrypted secrets; :class:`InvalidInput` if invalid."""
        try:
            return cls.model_validate({**config, **(secrets or {})})
        except ValidationError as exc:
            problems = "; ".join(
                f"{where or 'config'}: {message}" for where, message in validation_problems(exc)
            )
            raise InvalidInput(f"invalid webhook settings: {problems}") from None

    def split(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(config, secrets)`` as JSON-ready dicts, secrets in clear for encryption."""
        public = self.model_dump(mode="json", exclude=set(self.SECRET_FIELDS))
        hidden: dict[str, Any] = {"secret": self.secret.get_secret_value(), "headers": self.headers}
        if self.previous_secret is not None:
            hidden["previous_secret"] = self.previous_secret.get_secret_value()
        return public, hidden

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign at ``now``: the current one, and the previous during its grace."""
        active = [self.secret.get_secret_value()]
        expires = self.previous_secret_expires_at
        if self.previous_secret is not None and expires is not None and now < expires:
            active.append(self.previous_secret.get_secret_value())
        return active


def rotate(
    config: WebhookConfig, now: datetime, *, grace: timedelta = ROTATION_GRACE
) -> WebhookConfig:
    """A new secret; the current one keeps signing for ``grace`` (an older one is dropped)."""
    return config.model_copy(
        update={
            "secret": SecretStr(generate_secret()),
            "previous_secret": config.secret,
            "previous_secret_expires_at": now + grace,
        }
    )


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


# --- the kind's entry in the registry -----------------------------------------------------------

HEADER_VALUE = re.compile(r"^[\x20-\x7e]*$")


class WebhookSecrets(BaseModel):
    """The secrets a user sets (checked with the rest by :class:`WebhookConfig`)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    secret: str | None = None
    headers: dict[str, str] | None = None


def _validate(config: Mapping[str, Any], secrets: Mapping[str, Any]) -> Validated:
    """Split config and secrets, checked as one :class:`WebhookConfig`; a signing secret is
    generated when none is given (and returned once, to show)."""
    for key in config:
        if key in WebhookConfig.SECRET_FIELDS:
            raise InvalidInput(
                f"config.{key}: secrets go in `secrets`, never in `config`", field=f"config.{key}"
            )
    for name, value in (secrets.get("headers") or {}).items():
        if not isinstance(value, str) or not HEADER_VALUE.match(value):
            raise InvalidInput(
                f"secrets.headers.{name}: printable ASCII only", field="secrets.headers"
            )
    secrets = dict(secrets)
    generated = None
    if "secret" not in secrets:
        generated = secrets["secret"] = generate_secret()
    try:
        parsed = WebhookConfig.model_validate({**config, **secrets})
    except ValidationError as exc:
        field, message = validation_problems(exc)[0]
        secret = field.split(".")[0] in WebhookConfig.SECRET_FIELDS
        where = f"{'secrets' if secret else 'config'}.{field}"
        raise InvalidInput(f"{where}: {message}", field=where) from None
    public, hidden = parsed.split()
    return Validated(public, hidden, generated)


async def _check_reachable(settings: Settings, config: Mapping[str, Any]) -> None:
    """Refuse a URL whose IP address the SSRF guard would refuse at every delivery. A host
    *name* is not resolved here: its addresses may change, and they are checked before every
    delivery (and by the destination's ``test``)."""
    url = httpx.URL(str(config["url"]))  # validated already
    try:
        ipaddress.ip_address(url.raw_host.decode("ascii"))
    except ValueError:
        return
    try:
        await check_address(url, AddressPolicy.from_settings(settings))
    except UnsafeDestination as exc:
        raise InvalidInput(f"config.url: {exc.message}", field="config.url") from None


# Performance machinery (benchmarks/deliver.py): the webhook handler cache.
class WebhookHandlers:
    """The process's webhook handlers, reused while their row is unchanged: decrypting secrets
    and validating config on every delivery cost more than signing and sending the request."""

    def __init__(self) -> None:
        self._handlers: dict[int, tuple[tuple[str | None, str], WebhookKind]] = {}

    def get(self, runtime: Runtime, destination: Destination) -> WebhookKind:
        # The ciphertext changes with every secrets update, the config dict with every edit.
        key = (destination.secrets_encrypted, json.dumps(destination.config, sort_keys=True))
        cached = self._handlers.get(destination.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        config = WebhookConfig.parse(destination.config, decrypted_secrets(runtime, destination))
        handler = WebhookKind(config, client=runtime.webhook_http, settings=runtime.settings)
        self._handlers[destination.id] = (key, handler)
        return handler


def _handler(runtime: Runtime, destination: Destination) -> WebhookKind:
    return runtime.singletons.get(WebhookHandlers, WebhookHandlers).get(runtime, destination)


KIND = "webhook"
SPEC = KindSpec(
    kind=KIND,
    label="Webhook",
    config_model=WebhookConfig,
    factory=_handler,
    formats=ALL_FORMATS,
    secrets_model=WebhookSecrets,
    validate=_validate,
    check_config=_check_reachable,
    config_doc=(
        "`url`, `inline_max_bytes` (files up to it go inline, bigger ones as links; lowered by "
        "pelosync when the receiver answers 413)"
    ),
    secrets_doc=("`secret` (whsec_..., generated if absent) and `headers` (extra request headers)"),
    form_fields=(
        FormField(
            "url",
            "URL",
            input="url",
            required=True,
            placeholder="https://example.com/hooks/pelosync",
        ),
        FormField(
            "secret",
            "Signing secret",
            input="password",
            secret=True,
            placeholder="whsec_… (blank: generate one)",
        ),
        FormField(
            "inline_max_bytes",
            "Largest file sent inline, bytes",
            input="number",
            minimum=0,
            placeholder="default",
            error_label="inline limit",
        ),
        FormField(
            "events",
            "Events",
            input="choices",
            help="what this webhook receives",
            choices=tuple((t.value, EVENT_TITLES[t]) for t in EventType),
            default=DEFAULT_SUBSCRIPTION,
        ),
    ),
)
