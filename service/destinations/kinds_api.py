"""What the admin API accepts for each destination kind: config, user-settable secrets, formats.

:func:`validate` turns a kind's ``config`` and ``secrets`` as given (merged with what is stored,
on updates) into ``(config, secrets)`` to store, raising :class:`InvalidInput` naming the field.
The kinds' own models (``WebhookConfig``...) do the checking; this module only routes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from service.destinations.kinds.directory import DirectoryConfig
from service.destinations.kinds.garmin import GarminConfig
from service.destinations.kinds.intervals import IntervalsConfig
from service.destinations.kinds.strava import StravaConfig
from service.destinations.kinds.webhook import WebhookConfig, generate_secret
from service.destinations.models import DestinationKind
from service.errors import InvalidInput, validation_problems

M = TypeVar("M", bound=BaseModel)
HEADER_VALUE = re.compile(r"^[\x20-\x7e]*$")

ALL_FORMATS = ("tcx", "gpx", "fit", "json")
SERVICE_FORMATS = ("fit", "tcx", "gpx")
FORMATS: dict[str, tuple[str, ...]] = {
    DestinationKind.WEBHOOK: ALL_FORMATS,
    DestinationKind.DIRECTORY: ALL_FORMATS,
    DestinationKind.STRAVA: SERVICE_FORMATS,
    DestinationKind.INTERVALS: SERVICE_FORMATS,
    DestinationKind.GARMIN: SERVICE_FORMATS,
}
# Credentials travel in HTTP headers: visible ASCII only.
_TOKEN = Field(default=None, min_length=1, max_length=8192, pattern=r"^[\x21-\x7e]+$")


class _IntervalsSecrets(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    api_key: str | None = _TOKEN
    access_token: str | None = _TOKEN

    @model_validator(mode="after")
    def _one(self) -> _IntervalsSecrets:
        if (self.api_key is None) == (self.access_token is None):
            raise ValueError("give an api_key or an access_token")
        return self


class _GarminSecrets(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    # Traded for tokens before this is checked (destinations.manage): never stored.
    service_ticket: str | None = Field(default=None, max_length=2000)
    token_file: str | None = Field(default=None, max_length=64 * 1024)
    access_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=8192,
        pattern=r"^[\x21-\x7e]+$",
        validate_default=True,
    )
    refresh_token: str | None = _TOKEN
    client_id: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$"
    )
    expires_at: int | None = Field(default=None, ge=0, le=2**40)
    refresh_token_expires_at: int | None = Field(default=None, ge=0, le=2**40)

    @field_validator("access_token")
    @classmethod
    def _required(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError(
                "give a service_ticket (from Garmin's sign-in in a browser), a token_file "
                "(python-garminconnect's garmin_tokens.json) or an access_token"
            )
        return value


# Secret keys a user may set per kind; other stored keys (rotated secrets, Strava's tokens and
# pending uploads) are the service's own bookkeeping and are kept as they are.
USER_SECRETS: dict[str, frozenset[str]] = {
    DestinationKind.WEBHOOK: frozenset({"secret", "headers"}),
    DestinationKind.DIRECTORY: frozenset(),
    DestinationKind.STRAVA: frozenset(),
    DestinationKind.INTERVALS: frozenset({"api_key", "access_token"}),
    DestinationKind.GARMIN: frozenset(_GarminSecrets.model_fields),
}


def _parse(model: type[M], data: Mapping[str, Any], where: str) -> M:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        inner, message = validation_problems(exc)[0]
        field = f"{where}.{inner}" if inner else where
        raise InvalidInput(f"{field}: {message}", field=field) from None


def check_user_secrets(kind: str, secrets: Mapping[str, Any]) -> None:
    allowed = USER_SECRETS.get(kind, frozenset())
    for key in secrets:
        if key not in allowed:
            if kind == DestinationKind.STRAVA:
                raise InvalidInput(
                    "secrets: a Strava destination gets its tokens by connecting "
                    "(GET /v1/destinations/{id}/strava/connect)",
                    field="secrets",
                )
            known = ", ".join(sorted(allowed)) or "none"
            raise InvalidInput(
                f"secrets.{key}: not a {kind} secret (known: {known})", field=f"secrets.{key}"
            )


def check_formats(kind: str, formats: list[str]) -> None:
    for fmt in formats:
        if fmt not in FORMATS.get(kind, ALL_FORMATS):
            allowed = ", ".join(FORMATS[kind])
            raise InvalidInput(
                f"formats: {kind} destinations take {allowed}, not {fmt}", field="formats"
            )


def validate(
    kind: str, config: Mapping[str, Any], secrets: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """``(config, secrets, generated webhook secret or None)`` to store, all checked."""
    config = {k: v for k, v in config.items() if v is not None}
    secrets = {k: v for k, v in secrets.items() if v is not None}
    if kind == DestinationKind.WEBHOOK:
        for key in config:
            if key in WebhookConfig.SECRET_FIELDS:
                raise InvalidInput(
                    f"config.{key}: secrets go in `secrets`, never in `config`",
                    field=f"config.{key}",
                )
        for name, value in (secrets.get("headers") or {}).items():
            if not isinstance(value, str) or not HEADER_VALUE.match(value):
                raise InvalidInput(
                    f"secrets.headers.{name}: printable ASCII only", field="secrets.headers"
                )
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
        return public, hidden, generated
    if kind == DestinationKind.DIRECTORY:
        return _parse(DirectoryConfig, config, "config").model_dump(mode="json"), {}, None
    if kind == DestinationKind.STRAVA:
        return _parse(StravaConfig, config, "config").model_dump(mode="json"), dict(secrets), None
    if kind == DestinationKind.INTERVALS:
        public = _parse(IntervalsConfig, config, "config").model_dump(mode="json")
        user = {k: v for k, v in secrets.items() if k in USER_SECRETS[kind]}
        _parse(_IntervalsSecrets, user, "secrets")
        return public, dict(secrets), None
    if kind == DestinationKind.GARMIN:
        public = _parse(GarminConfig, config, "config").model_dump(mode="json")
        user = {k: v for k, v in secrets.items() if k in USER_SECRETS[kind]}
        _parse(_GarminSecrets, user, "secrets")
        return public, dict(secrets), None
    raise InvalidInput(f"kind: unknown destination kind {kind!r}", field="kind")


def mask(value: Any, *, show_tail: bool = True) -> Any:
    """A secret as shown in responses: ``••••`` and, for long strings when ``show_tail``
    (admin keys), the last 4 characters to tell secrets apart; read-only keys see none.

    Numbers and booleans (expiry times, athlete ids) are not credentials and are shown.
    """
    if isinstance(value, str):
        return "••••" + value[-4:] if show_tail and len(value) >= 16 else "••••"
    if isinstance(value, dict):
        return {str(k): mask(v, show_tail=show_tail) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, show_tail=show_tail) for v in value]
    return value
