"""A webhook destination's settings and secrets: their models, checks and rotation."""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
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

from service.config import Settings
from service.destinations.kinds.spec import Validated
from service.destinations.kinds.webhook_signing import SECRET_PREFIX, generate_secret, secret_bytes
from service.destinations.ssrf import (
    AddressPolicy,
    InvalidDestinationUrl,
    UnsafeDestination,
    check_address,
    validate_url,
)
from service.errors import InvalidInput, validation_problems
from service.events.models import DEFAULT_SUBSCRIPTION, EventType

ROTATION_GRACE = timedelta(hours=24)
# Names a user's extra headers may not set: the signature, framing and identity headers.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "transfer-encoding", "host"}
    | {"connection", "user-agent", "te", "upgrade", "expect", "keep-alive", "accept-encoding"}
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
HEADER_VALUE = re.compile(r"^[\x20-\x7e]*$")


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


class WebhookSecrets(BaseModel):
    """The secrets a user sets (checked with the rest by :class:`WebhookConfig`)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    secret: str | None = None
    headers: dict[str, str] | None = None


def validate_settings(config: Mapping[str, Any], secrets: Mapping[str, Any]) -> Validated:
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


async def check_reachable(settings: Settings, config: Mapping[str, Any]) -> None:
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
