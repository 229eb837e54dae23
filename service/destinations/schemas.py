"""Destination schemas. ``secrets`` are write-only: responses show them masked."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from service.convert.formats import Format
from service.destinations.kinds.registry import KINDS
from service.schemas import MAX_ID, Instant, Name

DISCIPLINE_PATTERN = r"^[a-z_]{1,40}$"
_CONFIG_DOC = (
    "Settings of the kind (no secrets). "
    + "; ".join(f"{kind}: {spec.config_doc}" for kind, spec in KINDS.items() if spec.config_doc)
    + "."
)
_SECRETS_DOC = (
    "Write-only credentials of the kind. "
    + "; ".join(f"{kind}: {spec.secrets_doc}" for kind, spec in KINDS.items() if spec.secrets_doc)
    + "."
)


def _known_kind(value: str) -> str:
    """A kind of the registry (read at validation time: the registry is the one list)."""
    if value not in KINDS:
        names = [repr(kind) for kind in KINDS]
        expected = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
        raise PydanticCustomError("enum", "Input should be {expected}", {"expected": expected})
    return value


#: A destination kind: one of the registry's (the OpenAPI enum lists them).
DestinationKind = Annotated[
    str,
    AfterValidator(_known_kind),
    WithJsonSchema({"type": "string", "enum": list(KINDS), "title": "DestinationKind"}),
]


def _no_nul(value: Any, where: str = "") -> None:
    """Refuse NUL characters anywhere in a JSON document (PostgreSQL cannot store them)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where or 'value'}: contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, where)
            _no_nul(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for item in value:
            _no_nul(item, where)


class _Filters(BaseModel):
    formats: list[Format] | None = Field(
        default=None, min_length=1, max_length=4, description="Formats to send."
    )
    account_ids: list[int] | None = Field(
        default=None, max_length=1000, description="Only these accounts' workouts; null: all."
    )
    disciplines: list[str] | None = Field(
        default=None, max_length=50, description="Only these disciplines (cycling...); null: all."
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=32,
        description="Parallel sends to this destination, per replica.",
    )

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: list[Format] | None) -> list[Format] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each format once")
        return value

    @field_validator("account_ids")
    @classmethod
    def _accounts(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(not 1 <= v <= MAX_ID for v in value):
            raise ValueError("account ids are positive 32-bit integers")
        return sorted(set(value)) if value is not None else None

    @field_validator("disciplines")
    @classmethod
    def _disciplines(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not re.match(DISCIPLINE_PATTERN, v) for v in value):
            raise ValueError("disciplines are lower-case words like cycling or strength")
        return sorted(set(value)) if value is not None else None


class DestinationCreate(_Filters):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: Name
    kind: DestinationKind
    config: dict[str, Any] = Field(default_factory=dict, description=_CONFIG_DOC)
    secrets: dict[str, Any] | None = Field(
        default=None, description=_SECRETS_DOC, json_schema_extra={"writeOnly": True}
    )
    enabled: bool = True

    @field_validator("config", "secrets")
    @classmethod
    def _documents(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        _no_nul(value)
        return value


class DestinationUpdate(_Filters):
    """Only the fields given change. ``config`` and ``secrets`` are merged key by key (a key
    set to null is removed); the kind cannot change."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: Name | None = None
    config: dict[str, Any] | None = Field(default=None, description=_CONFIG_DOC)
    secrets: dict[str, Any] | None = Field(
        default=None, description=_SECRETS_DOC, json_schema_extra={"writeOnly": True}
    )

    @field_validator("config", "secrets")
    @classmethod
    def _documents(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        _no_nul(value)
        return value


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    secret: str | None = Field(
        default=None,
        max_length=200,
        description="The new whsec_ secret; generated (and shown once) if absent.",
        json_schema_extra={"writeOnly": True},
    )

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        _no_nul(value, "secret")
        return value


class DestinationOut(BaseModel):
    id: int
    name: str
    kind: str
    config: dict[str, Any]
    secrets: dict[str, Any] = Field(description="Masked: `••••` and at most the last 4 characters.")
    formats: list[str]
    account_ids: list[int] | None
    disciplines: list[str] | None
    enabled: bool
    disabled_reason: str | None
    concurrency: int
    last_success_at: datetime | None
    failing_since: datetime | None
    postponed_until: datetime | None
    created_at: datetime
    updated_at: datetime


class DestinationWithSecret(DestinationOut):
    generated_secret: str | None = Field(
        default=None, description="A signing secret pelosync generated: shown only this once."
    )


class TestResult(BaseModel):
    ok: bool
    status_code: int | None = Field(description="The destination's HTTP status, if it answered.")
    error: str | None
    response_excerpt: str | None


class StravaConnected(BaseModel):
    destination_id: int
    athlete_id: int | None
    scope: str | None
    enabled: bool  # false when an admin had disabled the destination: it stays so


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: Instant = Field(description="Workouts started at or after this time...")
    end: Instant = Field(description="...and before this one.")


class ReplayQueued(BaseModel):
    destination_id: int
    queued: int = Field(description="Deliveries queued (one per workout and format).")
