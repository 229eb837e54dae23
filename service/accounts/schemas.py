"""Account schemas. Credentials are write-only: no response ever carries one."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from service.accounts.linking import MIN_POLL_INTERVAL_S
from service.schemas import Instant, Name

MAX_POLL_INTERVAL_S = 7 * 86400
_SECRET = Field(default=None, min_length=1, max_length=8192)
TOKEN = re.compile(r"^[\x21-\x7e]+$")


class PelotonCredentials(BaseModel):
    """One of: ``{"refresh_token"}``, ``{"access_token"}`` (both together is fine), or
    ``{"username", "password"}`` with an optional ``method`` (``password``: Peloton's password
    grant, the default; ``pkce``: its web login, scripted). A password is kept (encrypted) only
    then, because those methods log in again by themselves; tokens alone keep no password."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    refresh_token: SecretStr | None = _SECRET
    access_token: SecretStr | None = _SECRET
    username: Name | None = None
    password: SecretStr | None = _SECRET
    method: Literal["password", "pkce"] | None = None

    @field_validator("refresh_token", "access_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        # Tokens travel in HTTP headers: visible ASCII only.
        if value is not None and not TOKEN.match(value.get_secret_value()):
            raise ValueError("a token is printable ASCII without spaces")
        return value


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    label: Name | None = Field(default=None, description="Default: the Peloton username.")
    credentials: PelotonCredentials
    sync_since: Instant | None = Field(
        default=None,
        description="Fetch workouts from this time on (default: PELOSYNC_BACKFILL_DAYS ago).",
    )
    poll_interval_s: int | None = Field(
        default=None,
        ge=MIN_POLL_INTERVAL_S,
        le=MAX_POLL_INTERVAL_S,
        description="Seconds between polls (default: PELOSYNC_POLL_INTERVAL).",
    )


class AccountReauthenticate(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    credentials: PelotonCredentials


class AccountUpdate(BaseModel):
    """Only the fields given change. ``poll_interval_s: null`` goes back to the default."""

    model_config = ConfigDict(extra="forbid")

    label: Name | None = None
    poll_interval_s: int | None = Field(
        default=None, ge=MIN_POLL_INTERVAL_S, le=MAX_POLL_INTERVAL_S
    )
    paused: bool | None = None
    include_external: bool | None = Field(
        default=None,
        description="Deliver the workouts Peloton imported from other services (Garmin...) "
        "too. Off by default: sending them back where they came from duplicates them. Applies "
        "to workouts fetched from now on.",
    )
    sync_since: Instant | None = Field(
        default=None,
        description="Moving it earlier fetches the older workouts on the next poll.",
    )


class AccountCounts(BaseModel):
    workouts: int
    deliveries: dict[str, int] | None = Field(
        default=None, description="Deliveries by state; only on GET /v1/accounts/{id}."
    )


class AccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    label: str
    peloton_user_id: str
    peloton_username: str | None
    auth_method: str
    status: str = Field(description="active, needs_reauth or error.")  # AccountStatus
    paused: bool
    include_external: bool = Field(
        description="Whether workouts Peloton imported from other services are delivered."
    )
    poll_interval_s: int | None
    sync_since: datetime
    backfill_complete: bool
    backfill_found: int = Field(
        description="Workouts the backfill has found on Peloton back to sync_since, so far."
    )
    backfill_reached: datetime | None = Field(
        description="The oldest workout start the backfill has reached, so far."
    )
    last_poll_at: datetime | None
    last_success_at: datetime | None
    next_poll_at: datetime | None = Field(description="Null while paused or needing re-auth.")
    last_error: str | None
    consecutive_failures: int
    created_at: datetime
    counts: AccountCounts


class SyncRequested(BaseModel):
    account_id: int
    status: Literal["started", "already_running"] = Field(
        description="started: a poll runs now; already_running: one was running already."
    )


class SyncRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    trigger: str = Field(description="schedule or manual.")  # SyncTrigger
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None = Field(
        description="ok, rate_limited, needs_reauth or error; null while the poll runs."
    )  # PollOutcome
    found: int
    new: int
    in_progress: int
    errors: int
    error: str | None
