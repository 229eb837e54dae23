"""One account's authentication state: which token to send, and when to renew it.

Renewal (refresh, or a login when there is no refresh token or it died) is single-flight: a
generation counter goes up on every attempt, and a task that waited for the lock while another
task renewed uses that outcome instead of renewing again. So 20 requests that all get a 401 at
once cause exactly one refresh.

Logins are never repeated in a loop: a refused login (or a login flow that broke) makes the
session dead, and every later call raises the same :class:`Unauthorized` without touching the
network; a login that failed for a transient reason is not tried again for
``config.login_cooldown_s``.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import NamedTuple

import structlog

from service.errors import InvalidInput
from service.peloton.auth import Authenticator, Clock, utcnow
from service.peloton.errors import (
    NeedsReauthentication,
    PelotonError,
    RateLimited,
    TransientError,
    Unauthorized,
)
from service.peloton.models import Credentials, LoginMethod, PelotonConfig, TokenSet

log = structlog.get_logger(__name__)

#: Awaited with the new tokens after every renewal or login; it must persist them, since refresh
#: tokens rotate. It runs under the session lock (so saves happen in order); if it raises, the
#: error reaches the request that triggered the renewal, but the session keeps the new tokens.
OnTokens = Callable[[TokenSet], Awaitable[None]]
#: Awaited with the login method when a login worked with another method than the account's
#: (the password grant refused as a grant, the web login worked): it should persist it, so later
#: logins go straight to the method that works. If it raises, the error is logged and the session
#: keeps the new tokens and uses the new method.
OnMethod = Callable[[LoginMethod], Awaitable[None]]

# After a failed renewal, a still-valid token is used this long before renewing again.
_RENEWAL_BACKOFF = timedelta(seconds=60)
# A 401 on a token we obtained this recently means something else is wrong: don't renew again.
_FRESH_TOKEN = timedelta(seconds=30)


class Bearer(NamedTuple):
    """An access token and the renewal generation it belongs to."""

    token: str
    generation: int


class AuthSession:
    """Hands out bearer tokens for one Peloton account and renews them when needed."""

    def __init__(
        self,
        authenticator: Authenticator,
        config: PelotonConfig,
        *,
        credentials: Credentials | None = None,
        tokens: TokenSet | None = None,
        on_tokens: OnTokens | None = None,
        on_method: OnMethod | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._credentials = credentials or Credentials()
        self._on_method = on_method
        if (tokens is None or not (tokens.access_token or tokens.refresh_token)) and not (
            self._credentials.can_login
        ):
            raise InvalidInput(
                "a Peloton account needs tokens, or a username, password and login method"
            )
        self._auth = authenticator
        self._config = config
        self._tokens = tokens
        self._on_tokens = on_tokens
        self._clock = clock
        self._lock = asyncio.Lock()
        self._generation = 0
        self._last_error: PelotonError | None = None
        self._dead: Unauthorized | None = None
        self._renew_not_before: datetime | None = None
        self._login_not_before: datetime | None = None
        self._obtained_at: datetime | None = None

    @property
    def tokens(self) -> TokenSet | None:
        """The current tokens (persist them; ``on_tokens`` is called when they change)."""
        return self._tokens

    @property
    def credentials(self) -> Credentials:
        """The credentials with the login method that works (see ``on_method``)."""
        return self._credentials

    @property
    def dead(self) -> Unauthorized | None:
        """Why the account must be linked again, once that is known."""
        return self._dead

    async def bearer(self) -> Bearer:
        """The token to send now, renewed first if it expires within the refresh margin."""
        self._raise_if_dead()
        seen = self._generation
        if self._fresh():
            return self._current()
        error = await self._renew(seen)
        self._raise_if_dead()
        if self._usable():  # a failed early refresh still leaves a valid token
            return self._current()
        if error is not None:
            raise error
        if self._last_error is not None:
            raise copy.copy(self._last_error)
        raise Unauthorized("no usable Peloton access token")

    async def renew_after_401(self, rejected: Bearer) -> Bearer:
        """A new token after ``rejected`` got a 401 (single-flight with other tasks)."""
        self._raise_if_dead()
        now = self._clock()
        recently = self._obtained_at is not None and now - self._obtained_at < _FRESH_TOKEN
        if rejected.generation == self._generation and recently:
            raise Unauthorized("Peloton refused an access token it issued moments ago")
        await self._renew(rejected.generation)
        self._raise_if_dead()
        if self._last_error is not None:
            raise copy.copy(self._last_error)
        return self._current()

    async def login(self) -> TokenSet:
        """Log in once now with the account's username, password and method (linking)."""
        if not self._credentials.can_login:
            raise InvalidInput("this Peloton account has no username, password and login method")
        self._raise_if_dead()
        error = await self._renew(self._generation, force_login=True)
        self._raise_if_dead()
        if error is not None:
            raise error
        if self._last_error is not None:  # a concurrent renewal won the lock, and failed
            raise copy.copy(self._last_error)
        if self._tokens is None:
            raise Unauthorized("no Peloton tokens after logging in")
        return self._tokens

    # --- internals ---------------------------------------------------------------------------

    def _raise_if_dead(self) -> None:
        if self._dead is not None:
            # A copy per raise: many tasks re-raise it, and tracebacks would pile up on one object.
            raise copy.copy(self._dead)

    def _current(self) -> Bearer:
        token = self._tokens.access_token if self._tokens else None
        if not token:
            raise Unauthorized("no Peloton access token")
        return Bearer(token, self._generation)

    def _usable(self) -> bool:
        tokens = self._tokens
        if tokens is None or not tokens.access_token:
            return False
        return not tokens.expires_within(0, self._clock())

    def _fresh(self) -> bool:
        if not self._usable():
            return False
        assert self._tokens is not None
        now = self._clock()
        if not self._tokens.expires_within(self._config.refresh_margin_s, now):
            return True
        # Inside the margin: keep using it for a while after a failed renewal.
        return self._renew_not_before is not None and now < self._renew_not_before

    async def _renew(self, seen: int, *, force_login: bool = False) -> PelotonError | None:
        """Renew unless another task already tried since generation ``seen``.

        Returns the error of this task's own attempt (also kept in ``_last_error``).
        """
        async with self._lock:
            if self._generation != seen or self._dead is not None:
                return None  # someone else tried: their outcome stands
            try:
                tokens = await (self._login() if force_login else self._obtain())
            except PelotonError as exc:
                self._last_error = exc
                self._renew_not_before = self._clock() + _RENEWAL_BACKOFF
                log.warning("peloton.auth.renewal_failed", error=str(exc), kind=type(exc).__name__)
                return exc
            finally:
                # Counted when the attempt ends, not when it starts: a task that read the
                # generation while this attempt was in flight must wait for it and use its
                # outcome, not renew a second time.
                self._generation += 1
            self._last_error = None
            self._renew_not_before = None
            self._tokens = tokens
            self._obtained_at = self._clock()
            log.info("peloton.auth.renewed", expires_at=tokens.expires_at)
            if self._on_tokens is not None:
                # Inside the lock, so rotated refresh tokens are persisted in order.
                await self._on_tokens(tokens)
            return None

    async def _obtain(self) -> TokenSet:
        tokens = self._tokens
        if tokens is not None and tokens.refresh_token:
            try:
                return await self._auth.refresh(tokens, default_client_id=self._refresh_client())
            except NeedsReauthentication as exc:
                if not self._credentials.can_login:
                    self._dead = exc
                    raise
                log.warning("peloton.auth.refresh_refused", error_code=exc.error_code)
                return await self._login()
        if self._credentials.can_login:
            return await self._login()
        dead = NeedsReauthentication(
            "the Peloton access token has expired and there is no refresh token or password "
            "to renew it"
        )
        self._dead = dead
        raise dead

    async def _login(self) -> TokenSet:
        now = self._clock()
        if self._login_not_before is not None and now < self._login_not_before:
            wait = (self._login_not_before - now).total_seconds()
            raise TransientError(
                "a Peloton login failed recently; not trying again yet", retry_after=wait
            )
        try:
            login = await self._auth.login(self._credentials)
        except Unauthorized as exc:
            self._dead = exc
            log.warning("peloton.auth.login_refused", error=str(exc), kind=type(exc).__name__)
            raise
        except PelotonError as exc:
            cooldown = self._config.login_cooldown_s
            if isinstance(exc, RateLimited) and exc.retry_after is not None:
                cooldown = max(cooldown, exc.retry_after)
            self._login_not_before = now + timedelta(seconds=cooldown)
            raise
        if login.method is not self._credentials.method:
            self._credentials = dataclasses.replace(self._credentials, method=login.method)
            log.warning("peloton.auth.login_method_changed", method=login.method.value)
            if self._on_method is not None:
                try:
                    await self._on_method(login.method)
                except Exception as exc:  # the tokens matter more than remembering
                    # Not remembered: the next process tries the password grant once more and
                    # falls back again (once per login, never a loop); the tokens are kept.
                    log.warning("peloton.auth.login_method_not_saved", error=type(exc).__name__)
        return login.tokens

    def _refresh_client(self) -> str:
        if self._credentials.method is LoginMethod.PASSWORD:
            return self._config.password_client_id
        return self._config.web_client_id
