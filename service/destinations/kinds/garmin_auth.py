"""Garmin's "DI" OAuth2 tokens: trading a service ticket for them and refreshing them.

pelosync never signs in to Garmin (Cloudflare blocks scripted sign-ins since March 2026). The user
brings one of:

* a **service ticket** (``ST-…``), copied from the answer of Garmin's mobile sign-in page in their
  browser (peloton-to-garmin 6.1's way, ``mkdocs/docs/authentication/garmin-service-ticket.md``):
  ``https://sso.garmin.com/mobile/sso/en_US/sign-in?clientId=GCM_ANDROID_DARK&service=``
  ``https://mobile.integration.garmin.com/gcm/android``. pelosync trades it at the DI token URL
  (:meth:`DiAuth.exchange_ticket`) within the minute it lasts;
* the **token file** python-garminconnect (0.3+) writes, ``garmin_tokens.json``
  (``di_token``, ``di_refresh_token``, ``di_client_id``): :mod:`.garmin_setup` reads it.

Both become the destination's secrets (:meth:`DiTokens.as_secrets`): ``access_token`` (about a
day), ``refresh_token`` (about 30 days from the sign-in), ``client_id``, and their expiry times
``expires_at`` and ``refresh_token_expires_at`` (epoch seconds; None when Garmin did not say).
The ``destination.credentials_expiring`` event and the dashboard read
``refresh_token_expires_at``.

Every request to the DI token URL looks like Garmin Connect Mobile for Android, as both working
tools send it (python-garminconnect ``garminconnect/client.py`` ``_native_headers``,
``_exchange_service_ticket``, ``_refresh_di_token``; peloton-to-garmin ``src/Garmin/ApiClient.cs``
``ExchangeServiceTicketForDITokenAsync``, ``RefreshDITokenAsync``): HTTP Basic with the client id
and an empty password, an Android ``User-Agent`` with the ``X-Garmin-*`` headers (an Android client
id with an iOS user agent is what pelosync sent before, and no tool does that), and for the ticket
the grant ``…/grant/service_ticket`` with the ``service_url`` the ticket was issued for, trying
the DI client ids in turn (Garmin retires them; the tools keep a list).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from service.destinations.kinds.base import DeliveryError, NeedsReauthorization, Postponed
from service.destinations.kinds.http_common import (
    Clock,
    Redactor,
    json_object,
    retry_after,
    status_error,
    transport_error,
    utcnow,
)

if TYPE_CHECKING:
    from service.config import Settings

log = structlog.get_logger(__name__)

SERVICE = "Garmin Connect"
DEFAULT_TOKEN_URL = "https://diauth.garmin.com/di-oauth2-service/oauth/token"
SERVICE_TICKET_GRANT = "https://connectapi.garmin.com/di-oauth2-service/oauth/grant/service_ticket"
#: The service the browser sign-in above issues tickets for; the exchange must name the same one
#: (python-garminconnect: "service_url must match the one used during SSO login").
DEFAULT_SERVICE_URL = "https://mobile.integration.garmin.com/gcm/android"
SIGN_IN_URL = (
    "https://sso.garmin.com/mobile/sso/en_US/sign-in?clientId=GCM_ANDROID_DARK"
    f"&service={DEFAULT_SERVICE_URL}"
)
#: Tried in this order (python-garminconnect ``DI_CLIENT_IDS``; peloton-to-garmin has the first
#: three).
DEFAULT_CLIENT_IDS = (
    "GARMIN_CONNECT_MOBILE_ANDROID_DI_2025Q2",
    "GARMIN_CONNECT_MOBILE_ANDROID_DI_2024Q4",
    "GARMIN_CONNECT_MOBILE_ANDROID_DI",
    "GARMIN_CONNECT_MOBILE_IOS_DI",
)
#: Garmin Connect Mobile for Android, as python-garminconnect ``_native_headers`` sends it.
NATIVE_USER_AGENT = "GCM-Android-5.23"
_NATIVE_HEADERS = {
    "X-Garmin-User-Agent": (
        "com.garmin.android.apps.connectmobile/5.23; ; Google/sdk_gphone64_arm64/google; "
        "Android/33; Dalvik/2.1.0"
    ),
    "X-Garmin-Paired-App-Version": "10861",
    "X-Garmin-Client-Platform": "Android",
    "X-App-Ver": "10861",
    "X-Lang": "en",
    "X-GCExperience": "GC5",
    "Accept-Language": "en-US,en;q=0.9",
}
REQUEST_TIMEOUT_S = 30.0
RATE_LIMIT_WAIT_S = 900.0


def native_headers(user_agent: str | None = None) -> dict[str, str]:
    """The headers of Garmin Connect Mobile for Android (``user_agent`` overrides its
    ``User-Agent``)."""
    return {"User-Agent": user_agent or NATIVE_USER_AGENT, **_NATIVE_HEADERS}


def basic_auth(client_id: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:".encode()).decode()


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (only to read ``exp`` and ``client_id``); {} if the
    token is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def claim_int(token: str | None, name: str) -> int | None:
    value = jwt_claims(token).get(name) if token else None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class DiTokens:
    """A DI token pair as stored in the destination's secrets."""

    access_token: str
    refresh_token: str | None
    client_id: str | None
    expires_at: int | None = None
    refresh_token_expires_at: int | None = None

    def as_secrets(self) -> dict[str, Any]:
        """The secrets to store; None values remove stale stored ones."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "client_id": self.client_id,
            "expires_at": self.expires_at,
            "refresh_token_expires_at": self.refresh_token_expires_at,
        }


def _seconds(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def tokens_from_answer(
    body: Mapping[str, Any],
    *,
    client_id: str,
    now: datetime,
    previous_refresh_expiry: int | None = None,
) -> DiTokens:
    """The tokens of a DI token answer (``access_token``, ``refresh_token``, ``expires_in``,
    ``refresh_token_expires_in``, as peloton-to-garmin's ``OAuth2Token`` reads it).

    A refresh answer without ``refresh_token_expires_in`` keeps the previous expiry
    (peloton-to-garmin does the same); the client id is the access token's ``client_id`` claim
    when it has one (python-garminconnect ``_extract_client_id_from_jwt``)."""
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise DeliveryError("Garmin's token answer has no access_token")
    refresh = body.get("refresh_token")
    refresh = refresh if isinstance(refresh, str) and refresh else None
    epoch = now.timestamp()
    expires_in = _seconds(body, "expires_in")
    refresh_in = _seconds(body, "refresh_token_expires_in")
    claimed = jwt_claims(access).get("client_id")
    return DiTokens(
        access_token=access,
        refresh_token=refresh,
        client_id=claimed if isinstance(claimed, str) and claimed else client_id,
        expires_at=int(epoch + expires_in) if expires_in else claim_int(access, "exp"),
        refresh_token_expires_at=(
            int(epoch + refresh_in)
            if refresh_in
            else claim_int(refresh, "exp") or previous_refresh_expiry
        ),
    )


class DiAuth:
    """Garmin's DI token endpoint: one per use, on an injected HTTP client.

    Errors follow the kinds' tree (:mod:`.base`): a refused ticket or refresh token is
    :class:`NeedsReauthorization`, a 429 :class:`Postponed`, no answer or a 5xx a retryable
    :class:`DeliveryError`. Token values never appear in messages or excerpts."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token_url: str = DEFAULT_TOKEN_URL,
        client_ids: tuple[str, ...] = DEFAULT_CLIENT_IDS,
        service_url: str = DEFAULT_SERVICE_URL,
        user_agent: str | None = None,
        clock: Clock = utcnow,
        redactor: Redactor | None = None,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._client_ids = client_ids
        self._service_url = service_url
        self._user_agent = user_agent
        self._clock = clock
        self.redactor = redactor or Redactor()

    @classmethod
    def from_settings(
        cls, http: httpx.AsyncClient, settings: Settings, *, clock: Clock = utcnow
    ) -> DiAuth:
        """The token endpoint, client ids and service the operator configured."""
        return cls(
            http,
            token_url=settings.garmin_token_url,
            client_ids=settings.garmin_client_id_list(),
            service_url=settings.garmin_service_url,
            clock=clock,
        )

    async def exchange_ticket(self, ticket: str) -> DiTokens:
        """Trade a service ticket for tokens, trying each DI client id until one is accepted."""
        self.redactor.add(ticket)
        refused: list[str] = []
        last: httpx.Response | None = None
        for client_id in self._client_ids:
            response = await self._post(
                client_id,
                {
                    "client_id": client_id,
                    "service_ticket": ticket,
                    "grant_type": SERVICE_TICKET_GRANT,
                    "service_url": self._service_url,
                },
                "the service ticket exchange",
            )
            if response.is_success:
                tokens = self._tokens(response, client_id)
                log.info("garmin.ticket.exchanged", client_id=tokens.client_id)
                return tokens
            if response.status_code >= 500:
                raise status_error(
                    SERVICE,
                    "the service ticket exchange",
                    response,
                    now=self._clock(),
                    redactor=self.redactor,
                )
            # Another client id may be accepted (Garmin retires old ones).
            refused.append(f"{client_id}: HTTP {response.status_code}")
            last = response
        raise NeedsReauthorization(
            "Garmin refused the service ticket with every client id "
            f"({'; '.join(refused)}); tickets last about a minute and work once: sign in "
            "again and paste the new one",
            remote_status=last.status_code if last is not None else None,
            response_excerpt=self.redactor.excerpt(last) if last is not None else None,
        )

    async def refresh(
        self, client_id: str, refresh_token: str, *, refresh_expiry: int | None = None
    ) -> DiTokens:
        """New tokens for a refresh token (Garmin rotates it: store the answer's)."""
        self.redactor.add(refresh_token)
        response = await self._post(
            client_id,
            {
                "grant_type": "refresh_token",
                "client_id": client_id,
                "refresh_token": refresh_token,
            },
            "the token refresh",
        )
        if response.status_code in (400, 401, 403):
            raise NeedsReauthorization(
                f"Garmin refused the refresh token (HTTP {response.status_code}); it lasts "
                "about 30 days from the sign-in: give the destination a new service ticket "
                "or token file",
                remote_status=response.status_code,
                response_excerpt=self.redactor.excerpt(response),
            )
        if not response.is_success:
            raise status_error(
                SERVICE, "the token refresh", response, now=self._clock(), redactor=self.redactor
            )
        tokens = self._tokens(response, client_id, previous_refresh_expiry=refresh_expiry)
        log.info("garmin.token.refreshed")
        return tokens

    async def _post(self, client_id: str, form: dict[str, str], what: str) -> httpx.Response:
        headers = {
            **native_headers(self._user_agent),
            "Authorization": basic_auth(client_id),
            "Accept": "application/json",
            "Cache-Control": "no-cache",
        }
        try:
            response = await self._http.post(
                self._token_url, data=form, headers=headers, timeout=REQUEST_TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            raise transport_error(SERVICE, what, exc) from None
        if response.status_code == 429:
            wait = retry_after(response, self._clock())
            raise Postponed(
                f"Garmin is rate limiting {what}",
                remote_status=429,
                retry_after=RATE_LIMIT_WAIT_S if wait is None else wait,
            )
        return response

    def _tokens(
        self,
        response: httpx.Response,
        client_id: str,
        *,
        previous_refresh_expiry: int | None = None,
    ) -> DiTokens:
        body = json_object(response)
        if body is None:
            raise DeliveryError(
                "Garmin's token answer is not JSON", remote_status=response.status_code
            )
        self.redactor.add(body.get("access_token"), body.get("refresh_token"))
        return tokens_from_answer(
            body,
            client_id=client_id,
            now=self._clock(),
            previous_refresh_expiry=previous_refresh_expiry,
        )
