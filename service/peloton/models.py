"""Data the Peloton client takes and returns: its configuration, credentials, tokens, and
tolerant pydantic models of Peloton's JSON.

Peloton's API is unofficial and changes without notice, so the response models accept unknown
fields (``extra="allow"``), default every field, and keep the JSON object they were built from
verbatim in ``.raw`` (that is what gets stored and what the converter reads). Timestamps arrive
as epoch seconds and become timezone-aware UTC datetimes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, cast

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from service.config import Settings
from service.errors import InvalidInput


def _setting_default(name: str) -> Any:
    # One source of truth for Peloton's real values: the Settings defaults.
    return Settings.model_fields[name].default


@dataclass(frozen=True, slots=True)
class PelotonConfig:
    """Where and how to talk to Peloton. Defaults are Peloton's real values."""

    api_url: str = cast(str, _setting_default("peloton_api_url"))
    auth_url: str = cast(str, _setting_default("peloton_auth_url"))
    web_client_id: str = cast(str, _setting_default("peloton_web_client_id"))
    password_client_id: str = cast(str, _setting_default("peloton_password_client_id"))
    audience: str = cast(str, _setting_default("peloton_audience"))
    scope: str = cast(str, _setting_default("peloton_scope"))
    redirect_uri: str = cast(str, _setting_default("peloton_redirect_uri"))
    user_agent: str = cast(str, _setting_default("peloton_user_agent"))
    timeout_s: float = cast(float, _setting_default("peloton_timeout_s"))
    concurrency: int = cast(int, _setting_default("peloton_concurrency"))
    every_n: int = cast(int, _setting_default("peloton_every_n"))
    #: The password grant is done with the mobile client, which only asks for these scopes.
    password_scope: str = "offline_access openid"
    #: The web login pages are served to browsers; Auth0 gets a browser-like agent there.
    browser_user_agent: str = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:145.0) Gecko/20100101 Firefox/145.0"
    )
    #: base64 of {"name":"auth0.js-ulp","version":"9.14.3"}, what Peloton's login page sends.
    auth0_client: str = "eyJuYW1lIjoiYXV0aDAuanMtdWxwIiwidmVyc2lvbiI6IjkuMTQuMyJ9"
    tenant: str = "peloton-prod"
    connection: str = "pelo-user-password"
    #: Refresh this long before the access token expires.
    refresh_margin_s: float = 300.0
    #: Tries per request for transient failures (first try included).
    max_attempts: int = 4
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    #: After a login failed for a transient reason, no new login before this long.
    login_cooldown_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise InvalidInput(f"Peloton concurrency must be at least 1, got {self.concurrency}")
        if self.timeout_s <= 0:
            raise InvalidInput(f"Peloton timeout must be positive, got {self.timeout_s}")
        if self.max_attempts < 1:
            raise InvalidInput(f"Peloton max_attempts must be at least 1, got {self.max_attempts}")
        if not 1 <= self.every_n <= 60:
            raise InvalidInput(f"Peloton every_n must be 1..60, got {self.every_n}")
        for name in ("api_url", "auth_url"):
            object.__setattr__(self, name, getattr(self, name).rstrip("/"))

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PelotonConfig:
        """The config matching the ``peloton_*`` settings (plus any ``overrides``)."""
        values: dict[str, Any] = {
            "api_url": settings.peloton_api_url,
            "auth_url": settings.peloton_auth_url,
            "web_client_id": settings.peloton_web_client_id,
            "password_client_id": settings.peloton_password_client_id,
            "audience": settings.peloton_audience,
            "scope": settings.peloton_scope,
            "redirect_uri": settings.peloton_redirect_uri,
            "user_agent": settings.peloton_user_agent,
            "timeout_s": settings.peloton_timeout_s,
            "concurrency": settings.peloton_concurrency,
            "every_n": settings.peloton_every_n,
        }
        values.update(overrides)
        return cls(**values)


# --- credentials and tokens ---------------------------------------------------------------


class LoginMethod(StrEnum):
    """How to log in with a username and password."""

    #: ``grant_type=password`` with Peloton's mobile client id (simple; may be revoked).
    PASSWORD = "password"
    #: Peloton's own web login, scripted (authorization code + PKCE).
    PKCE = "pkce"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What an account may log in with. Without a ``method`` the client never logs in."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    method: LoginMethod | None = None

    def __post_init__(self) -> None:
        if self.method is None:
            return
        try:
            object.__setattr__(self, "method", LoginMethod(self.method))
        except ValueError:
            choices = ", ".join(m.value for m in LoginMethod)
            raise InvalidInput(
                f"unknown Peloton login method {self.method!r} (choose {choices})"
            ) from None
        if not self.username or not self.password:
            raise InvalidInput(f"Peloton login method {self.method} needs a username and password")

    @property
    def can_login(self) -> bool:
        return self.method is not None and bool(self.username) and bool(self.password)


def jwt_expiry(token: str | None) -> datetime | None:
    """The ``exp`` claim of a JWT, read without verifying it (we only use it to plan refreshes)."""
    if not token:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = payload.get("exp") if isinstance(payload, dict) else None
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            return datetime.fromtimestamp(exp, tz=UTC)
    except (ValueError, binascii.Error, OverflowError, OSError):
        pass
    return None


class TokenSet(BaseModel):
    """An account's OAuth tokens, as handed to ``on_tokens`` for (encrypted) storage.

    ``client_id`` is the Auth0 client the tokens were issued to: a refresh must use the same one.
    Tokens are left out of ``repr`` so they cannot leak into logs by accident.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    access_token: str | None = Field(default=None, repr=False)
    refresh_token: str | None = Field(default=None, repr=False)
    expires_at: AwareDatetime | None = None
    client_id: str | None = None
    scope: str | None = None

    @classmethod
    def supplied(
        cls,
        *,
        access_token: str | None = None,
        refresh_token: str | None = None,
        client_id: str | None = None,
    ) -> TokenSet:
        """Tokens a user pasted; the expiry is read from the access token's JWT when possible."""
        if not access_token and not refresh_token:
            raise InvalidInput("give a Peloton access token, a refresh token, or both")
        return cls(
            access_token=access_token or None,
            refresh_token=refresh_token or None,
            expires_at=jwt_expiry(access_token),
            client_id=client_id,
        )

    @classmethod
    def from_token_response(
        cls,
        body: Mapping[str, Any],
        *,
        now: datetime,
        client_id: str,
        previous_refresh_token: str | None = None,
    ) -> TokenSet:
        """Tokens from an ``/oauth/token`` answer. ``expires_in`` is in SECONDS.

        A refresh answer without a ``refresh_token`` means the old one stays valid.
        Raises ``ValueError`` if there is no access token.
        """
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("token response has no access_token")
        expires_in = body.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            expires_at: datetime | None = now + timedelta(seconds=float(expires_in))
        else:
            expires_at = jwt_expiry(access)
        refresh = body.get("refresh_token")
        scope = body.get("scope")
        return cls(
            access_token=access,
            refresh_token=refresh
            if isinstance(refresh, str) and refresh
            else previous_refresh_token,
            expires_at=expires_at,
            client_id=client_id,
            scope=scope if isinstance(scope, str) else None,
        )

    def expires_within(self, seconds: float, now: datetime) -> bool:
        """Whether the access token expires within ``seconds`` of ``now`` (False if unknown)."""
        return self.expires_at is not None and self.expires_at - now <= timedelta(seconds=seconds)


# --- Peloton JSON ---------------------------------------------------------------------------


def _from_epoch(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a timestamp cannot be a boolean")
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        value = float(value)
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"timestamp {value!r} is out of range") from exc
    return value  # anything else (ISO strings) goes to pydantic's own datetime parsing


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: Epoch seconds (or an ISO string) as an aware UTC datetime.
UtcDatetime = Annotated[datetime, BeforeValidator(_from_epoch), AfterValidator(_as_utc)]


class PelotonModel(BaseModel):
    """Base of the response models: tolerant, and keeps its source JSON in ``raw``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        model = handler(data)
        if isinstance(data, dict) and isinstance(model, PelotonModel):
            model._raw = data
        return model

    @property
    def raw(self) -> dict[str, Any]:
        """The JSON object this model was built from, as Peloton sent it."""
        return self._raw


class Me(PelotonModel):
    """``GET /api/me``: the logged-in user."""

    id: str | None = None
    username: str | None = None
    email: str | None = None
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    location: str | None = None
    image_url: str | None = None
    total_workouts: int | None = None
    created_at: UtcDatetime | None = None
    last_workout_at: UtcDatetime | None = None
    cycling_ftp: float | None = None
    default_max_heart_rate: float | None = None
    customized_max_heart_rate: float | None = None
    weight: float | None = None
    height: float | None = None


class UserSettings(PelotonModel):
    """``GET /api/user/{id}/settings``: the user's display preferences."""

    distance_unit: str | None = None  # "imperial" | "metric"
    weight_unit: str | None = None
    height_unit: str | None = None
    timezone: str | None = None


class Instructor(PelotonModel):
    id: str | None = None
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    image_url: str | None = None


class Ride(PelotonModel):
    """The class a workout followed (``joins=ride,ride.instructor``)."""

    id: str | None = None
    title: str | None = None
    description: str | None = None
    duration: float | None = None
    fitness_discipline: str | None = None
    fitness_discipline_display_name: str | None = None
    instructor_id: str | None = None
    instructor: Instructor | None = None
    distance_unit: str | None = None
    is_outdoor: bool | None = None
    image_url: str | None = None
    original_air_time: UtcDatetime | None = None
    pedaling_start_offset: float | None = None


class Workout(PelotonModel):
    """One workout, from the list (``data[]``) or from ``GET /api/workout/{id}``."""

    id: str | None = None
    user_id: str | None = None
    created_at: UtcDatetime | None = None
    start_time: UtcDatetime | None = None
    end_time: UtcDatetime | None = None
    timezone: str | None = None
    status: str | None = None
    fitness_discipline: str | None = None
    metrics_type: str | None = None
    workout_type: str | None = None
    name: str | None = None
    title: str | None = None
    device_type: str | None = None
    platform: str | None = None
    is_outdoor: bool | None = None
    total_work: float | None = None
    has_pedaling_metrics: bool | None = None
    ride: Ride | None = None

    @property
    def is_complete(self) -> bool:
        return self.status == "COMPLETE"

    @property
    def ride_id(self) -> str | None:
        """The class's id, or None for no class (Just Ride/Run have an all-zero id)."""
        ride_id = self.ride.id if self.ride is not None else None
        return ride_id if ride_id and ride_id.strip("0") else None


class ListCursor(PelotonModel):
    workout_id: str | None = None
    created_at: UtcDatetime | None = None


class WorkoutListPage(PelotonModel):
    """One page of ``GET /api/user/{id}/workouts``."""

    data: list[Workout] = Field(default_factory=list)
    limit: int | None = None
    page: int | None = None
    total: int | None = None
    count: int | None = None
    page_count: int | None = None
    show_previous: bool | None = None
    show_next: bool | None = None
    sort_by: str | None = None
    next: ListCursor | None = None
    summary: dict[str, int] | None = None

    def has_next(self, page: int, limit: int) -> bool:
        """Whether a page after ``page`` exists, by ``show_next``, then ``page_count``, then
        (if Peloton sent neither) by whether this page was full."""
        if not self.data:
            return False
        if self.show_next is not None:
            return self.show_next
        if self.page_count is not None:
            return page + 1 < self.page_count
        return len(self.data) >= limit


@dataclass(frozen=True, slots=True)
class NewWorkouts:
    """What :meth:`PelotonClient.list_new_workouts` found, newest first.

    ``in_progress`` holds workouts not yet ``COMPLETE``: don't store them as known, so a later
    poll picks them up once finished. ``stopped_by`` says why listing ended: ``"known"`` (an
    already-known id), ``"since"`` (a workout older than ``since``), ``"end"`` (no more pages) or
    ``"max_pages"``.
    """

    complete: list[Workout]
    in_progress: list[Workout]
    pages_fetched: int
    stopped_by: str
