"""One Strava account's session: its secrets and the API calls made with them.

:class:`StravaSession` holds what :class:`~.strava.StravaDestination` builds on: the decrypted
secrets (tokens refreshed when due, uploads left to resume remembered, see :mod:`.strava`), the
shared application (its API URL, OAuth client and rate limiter) and the one call every request
goes through (:meth:`StravaSession._api`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from service.destinations.kinds.base import DeliveryError, NeedsReauthorization, Postponed
from service.destinations.kinds.http_common import (
    Clock,
    Redactor,
    json_object,
    status_error,
    transport_error,
    utcnow,
)
from service.destinations.kinds.strava_app import StravaApp
from service.destinations.kinds.strava_oauth import error_summary, missing_permission

log = structlog.get_logger(__name__)


SERVICE = "Strava"
REFRESH_MARGIN_S = 600
UPLOAD_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0
PENDING_KEY = "pending_uploads"
PENDING_MAX_AGE_S = 7 * 86400


class StravaSession:
    """One Strava account's secrets and API calls; the secrets changed are handed back by the
    destination (``_dirty``)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        secrets: Mapping[str, Any],
        *,
        app: StravaApp,
        clock: Clock = utcnow,
    ) -> None:
        self._http = http
        self._secrets = dict(secrets)
        self._app = app
        self._clock = clock
        self._dirty = False  # secrets changed: hand them back
        self._refreshed = False  # one refresh per operation
        self._redactor = Redactor([secrets.get("access_token"), secrets.get("refresh_token")])

    @property
    def secrets(self) -> dict[str, Any]:
        """The current secrets (after any refresh or pending-upload bookkeeping)."""
        return dict(self._secrets)

    # --- pending uploads (see strava.py's docstring) ----------------------------------------

    def _pending(self) -> dict[str, int]:
        raw = self._secrets.get(PENDING_KEY)
        if not isinstance(raw, dict):
            return {}
        return {
            key: entry["upload_id"]
            for key, entry in raw.items()
            if isinstance(entry, dict) and isinstance(entry.get("upload_id"), int)
        }

    def _remember(self, key: str, upload_id: int) -> None:
        now = int(self._clock().timestamp())
        raw = self._secrets.get(PENDING_KEY)
        entries = dict(raw) if isinstance(raw, dict) else {}
        entries = {
            k: v
            for k, v in entries.items()
            if isinstance(v, dict) and now - int(v.get("since", 0)) < PENDING_MAX_AGE_S
        }
        entries[key] = {"upload_id": upload_id, "since": now}
        self._secrets[PENDING_KEY] = entries
        self._dirty = True

    def _forget(self, key: str) -> None:
        raw = self._secrets.get(PENDING_KEY)
        if isinstance(raw, dict) and key in raw:
            entries = {k: v for k, v in raw.items() if k != key}
            if entries:
                self._secrets[PENDING_KEY] = entries
            else:
                del self._secrets[PENDING_KEY]
            self._dirty = True

    # --- HTTP, tokens, rate limits -----------------------------------------------------------

    async def _api(
        self, method: str, path: str, *, what: str, upload: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One API call: rate-limit check, bearer token, one refresh-and-retry on 401, 429 ->
        Postponed. Other statuses are returned for the caller to judge."""
        url = f"{self._app.api_url}{path}"
        timeout = UPLOAD_TIMEOUT_S if upload else REQUEST_TIMEOUT_S
        while True:
            token = await self._access_token()
            wait = self._app.limiter.try_acquire(upload=upload)
            if wait is not None:
                raise self._postponed(wait, f"Strava's app-wide rate limit is used up ({what})")
            try:
                response = await self._http.request(
                    method,
                    url,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                    timeout=timeout,
                    **kwargs,
                )
            except httpx.HTTPError as exc:
                raise transport_error(SERVICE, what, exc) from None
            self._app.limiter.observe(response.headers)
            if response.status_code == 429:
                wait = self._app.limiter.exceeded(response.headers, upload=upload)
                raise self._postponed(wait, f"Strava answered 429 to {what}", response)
            if response.status_code != 401:
                return response
            scope = missing_permission(json_object(response))
            if scope is not None:
                raise NeedsReauthorization(
                    f"Strava's authorization of this destination lacks the '{scope}' "
                    f"permission ({what} needs it): connect the destination again and keep "
                    "'Upload your activities' ticked",
                    remote_status=401,
                    response_excerpt=self._redactor.excerpt(response),
                )
            if self._refreshed:
                raise NeedsReauthorization(
                    f"Strava refused a freshly refreshed access token for {what}; "
                    "authorize the destination again",
                    remote_status=401,
                    response_excerpt=self._redactor.excerpt(response),
                )
            log.info("strava.token.refused", what=what)
            await self._refresh()

    async def _access_token(self) -> str:
        access = self._secrets.get("access_token")
        refresh = self._secrets.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            raise NeedsReauthorization(
                "the Strava destination has no refresh_token; authorize it again"
            )
        expires_at = self._secrets.get("expires_at")
        now = self._clock().timestamp()
        fresh = isinstance(expires_at, int | float) and expires_at - now > REFRESH_MARGIN_S
        if isinstance(access, str) and access and fresh:
            return access
        if not self._refreshed:
            await self._refresh()
            return str(self._secrets["access_token"])
        if isinstance(access, str) and access:  # just refreshed: use it even if short-lived
            return access
        raise NeedsReauthorization("Strava gave no usable access token; authorize again")

    async def _refresh(self) -> None:
        self._refreshed = True
        tokens = await self._app.oauth.refresh(str(self._secrets["refresh_token"]))
        self._redactor.add(tokens.access_token, tokens.refresh_token)
        self._secrets.update(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at,
        )
        if tokens.scope is not None:
            self._secrets["scope"] = tokens.scope
        self._dirty = True
        log.info("strava.token.refreshed", expires_at=tokens.expires_at)

    def _postponed(
        self, wait: float, message: str, response: httpx.Response | None = None
    ) -> Postponed:
        until = datetime.fromtimestamp(self._clock().timestamp() + wait, UTC)
        return Postponed(
            f"{message}; retrying after {until:%H:%M} UTC",
            retry_after=wait,
            remote_status=response.status_code if response is not None else None,
            response_excerpt=self._redactor.excerpt(response) if response is not None else None,
        )

    def _error(
        self, what: str, response: httpx.Response, body: dict[str, Any] | None = None
    ) -> DeliveryError:
        detail = error_summary(body) if body else None
        return status_error(
            SERVICE, what, response, now=self._clock(), redactor=self._redactor, detail=detail
        )
