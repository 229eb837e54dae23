"""Which Strava API application a destination uses, and revoking a destination's access.

A Strava API application (strava.com/settings/api) starts in "Single Player Mode": it connects
only its owner's account until Strava reviews it and raises its athlete capacity; a second
athlete authorizing it sees Strava's "Error 403: Limit of connected athletes exceeded"
(github.com/jat255/strava-to-fittrackee/issues/22, github.com/craibo/ha_strava/issues/288,
github.com/bokub/stravanity/issues/10). So a household has two ways to connect several riders:

* one shared application, configured for the whole service (``PELOSYNC_STRAVA_CLIENT_ID`` and
  ``PELOSYNC_STRAVA_CLIENT_SECRET``), once Strava has raised its capacity; or
* one application per rider: the destination carries its own ``client_id`` (config) and
  ``client_secret`` (secret), which the connection, token refreshes and revocation use.

Strava's rate limits are per application (developers.strava.com/docs/rate-limits), so there is
one :class:`StravaApp` (OAuth client and rate limiter) per application client id
(:class:`StravaApps`, a runtime singleton; :func:`strava_app` finds a destination's).
:func:`validate_app` and :func:`check_app` are what the kind's registry entry checks of it, and
:func:`revoke_access` what deleting a destination does on Strava.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from service.config import Settings
from service.destinations.kinds.base import DeliveryError, NeedsReauthorization
from service.destinations.kinds.http_common import Clock, utcnow
from service.destinations.kinds.spec import (
    TOKEN_PATTERN,
    Validated,
    decrypted_secrets,
    parse_input,
)
from service.destinations.kinds.strava_oauth import StravaOAuth
from service.destinations.ratelimit import StravaRateLimiter
from service.errors import InvalidInput

if TYPE_CHECKING:
    from service.destinations.models import Destination
    from service.runtime import Runtime

DEFAULT_API_URL = "https://www.strava.com/api/v3"
#: Refresh before revoking when the access token expires within this many seconds.
REVOKE_MARGIN_S = 60

NO_APP = (
    "Strava is not configured: set PELOSYNC_STRAVA_CLIENT_ID and PELOSYNC_STRAVA_CLIENT_SECRET "
    "(from strava.com/settings/api), or give the destination its own application "
    "(config.client_id and secrets.client_secret)"
)


@dataclass(frozen=True)
class AppCredentials:
    """A Strava API application's client id and secret (the secret never in ``repr``)."""

    client_id: str
    client_secret: SecretStr
    own: bool  # the destination's own application, not the service's


def app_credentials(
    settings: Settings, config: Mapping[str, Any], secrets: Mapping[str, Any]
) -> AppCredentials:
    """The destination's own application when it has one, else the service's;
    :class:`InvalidInput` when there is neither."""
    client_id, secret = config.get("client_id"), secrets.get("client_secret")
    if isinstance(client_id, str) and client_id and isinstance(secret, str) and secret:
        return AppCredentials(client_id, SecretStr(secret), own=True)
    if settings.strava_client_id and settings.strava_client_secret is not None:
        return AppCredentials(settings.strava_client_id, settings.strava_client_secret, own=False)
    raise InvalidInput(NO_APP)


@dataclass
class StravaApp:
    """What every destination on one Strava application shares: build one per application
    (client id) and inject it."""

    oauth: StravaOAuth
    limiter: StravaRateLimiter
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_settings(
        cls,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        credentials: AppCredentials | None = None,
    ) -> StravaApp:
        """The application of ``credentials``, or else the service's (``PELOSYNC_STRAVA_*``)."""
        if credentials is None:
            credentials = app_credentials(settings, {}, {})
        oauth = StravaOAuth(
            http,
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
            oauth_url=settings.strava_oauth_url,
            clock=clock,
            own_app=credentials.own,
        )
        return cls(oauth, StravaRateLimiter(clock=clock), settings.strava_api_url.rstrip("/"))


# --- a destination's own application, as the registry checks it (see strava.SPEC) ---------------

STRAVA_UNCONFIGURED = (
    "kind: Strava is not configured on this service: create an API application at "
    "https://www.strava.com/settings/api, set PELOSYNC_STRAVA_CLIENT_ID and "
    "PELOSYNC_STRAVA_CLIENT_SECRET to its Client ID and Client Secret, and restart pelosync; "
    "or give this destination its own application (config.client_id and secrets.client_secret)"
)


class StravaSecrets(BaseModel):
    """The one secret a user sets: the client secret of the destination's own Strava
    application (with ``config.client_id``; see the module docstring). The tokens come from
    connecting."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    client_secret: str | None = Field(
        default=None, min_length=8, max_length=200, pattern=TOKEN_PATTERN
    )


def validate_app(
    config_model: type[BaseModel], config: Mapping[str, Any], secrets: Mapping[str, Any]
) -> Validated:
    """The kind's config (``config_model``) and secrets as to store, with its own application
    given whole (client id and secret) or not at all."""
    # Unset fields are left out, so rows without their own application stay as they were.
    public = parse_input(config_model, config, "config").model_dump(mode="json", exclude_none=True)
    user = {k: v for k, v in secrets.items() if k in StravaSecrets.model_fields}
    own = parse_input(StravaSecrets, user, "secrets")
    if (public.get("client_id") is None) != (own.client_secret is None):
        field = "secrets.client_secret" if "client_id" in public else "config.client_id"
        raise InvalidInput(
            f"{field}: a Strava destination's own application needs both config.client_id "
            "and secrets.client_secret (from strava.com/settings/api), or neither to use the "
            "service's application",
            field=field,
        )
    return Validated(public, dict(secrets))


async def check_app(settings: Settings, config: Mapping[str, Any]) -> None:
    """Refuse a destination that would have no Strava application at all. (A ``client_id``
    comes with its secret: :func:`validate_app` saw to it.)"""
    if not config.get("client_id") and not (
        settings.strava_client_id and settings.strava_client_secret
    ):
        raise InvalidInput(STRAVA_UNCONFIGURED, field="kind")


class StravaApps:
    """The process's Strava applications, one per client id (a runtime singleton)."""

    def __init__(self) -> None:
        self._apps: dict[str, StravaApp] = {}

    def get(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        credentials: AppCredentials,
        *,
        clock: Clock = utcnow,
    ) -> StravaApp:
        """The application of ``credentials``; its rate limiter lives as long as the process,
        its OAuth client until its secret changes (an edited destination)."""
        app = self._apps.get(credentials.client_id)
        if app is None:
            app = StravaApp.from_settings(http, settings, clock=clock, credentials=credentials)
            self._apps[credentials.client_id] = app
        elif not app.oauth.holds_secret(credentials.client_secret):
            fresh = StravaApp.from_settings(http, settings, clock=clock, credentials=credentials)
            app.oauth = fresh.oauth
        return app


def strava_app(
    runtime: Runtime,
    destination: Destination | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> StravaApp:
    """The Strava application ``destination`` uses (its own, else the service's; the
    service's without a destination). ``secrets``: its decrypted secrets, if at hand."""
    config: Mapping[str, Any] = {}
    if destination is not None:
        config = destination.config or {}
        if secrets is None:
            secrets = decrypted_secrets(runtime, destination)
    credentials = app_credentials(runtime.settings, config, secrets or {})
    apps = runtime.singletons.get(StravaApps, StravaApps)
    return apps.get(runtime.http, runtime.settings, credentials, clock=runtime.clock)


async def revoke_access(
    app: StravaApp, secrets: Mapping[str, Any], *, clock: Clock = utcnow
) -> str:
    """Revoke the application's access to the destination's athlete
    (``POST {oauth}/deauthorize``), refreshing an expired access token first. What happened, in
    words; :class:`DeliveryError` when Strava could not be reached or refused."""
    access, refresh = secrets.get("access_token"), secrets.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        return "it was never connected to Strava"
    expires_at = secrets.get("expires_at")
    fresh = (
        isinstance(access, str)
        and bool(access)
        and isinstance(expires_at, int | float)
        and expires_at - clock().timestamp() > REVOKE_MARGIN_S
    )
    for attempt in (1, 2):
        if not fresh:
            try:
                access = (await app.oauth.refresh(refresh)).access_token
            except DeliveryError as exc:
                if exc.retryable:
                    raise
                # A refused refresh token: the athlete revoked pelosync on Strava already.
                return "Strava had already revoked its access"
        try:
            await app.oauth.deauthorize(str(access))
        except NeedsReauthorization:
            if attempt == 2 or not fresh:
                return "Strava had already revoked its access"
            fresh = False  # refused before its time: refresh, then try once more
            continue
        break
    return "its access to Strava is revoked"
