"""Linking Peloton accounts: verify credentials with Peloton, store them encrypted, replace
them (re-authentication). The admin API and the dashboard reach these through
:mod:`service.accounts.service`; the CLI (``pelosync account link``, the demo) calls them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.models import Account, AccountStatus, AuthMethod
from service.accounts.repository import AccountRepository
from service.accounts.tokens import (
    auth_method_of,
    encrypt_credentials,
    encrypt_tokens,
    peloton_config,
)
from service.errors import Conflict, InvalidInput, NotFound
from service.peloton.budget import Priority
from service.peloton.client import PelotonClient
from service.peloton.models import Credentials, LoginMethod, TokenSet
from service.runtime import Runtime

log = structlog.get_logger(__name__)

MIN_POLL_INTERVAL_S = 300


@dataclass(frozen=True)
class LinkRequest:
    """How to reach a Peloton account: tokens, or a username and password and a method."""

    label: str | None = None
    refresh_token: str | None = None
    access_token: str | None = None
    username: str | None = None
    password: str | None = None
    method: AuthMethod | None = None
    sync_since: datetime | None = None
    poll_interval_s: int | None = None

    def auth_method(self) -> AuthMethod:
        if self.refresh_token or self.access_token:
            if self.username or self.password:
                raise InvalidInput("give either tokens or a username and password, not both")
            return AuthMethod.TOKEN
        if not self.username or not self.password:
            raise InvalidInput(
                "credentials need a refresh_token, an access_token, or a username and password"
            )
        method = self.method or AuthMethod.PASSWORD
        if method is AuthMethod.TOKEN:
            raise InvalidInput("method 'token' needs a refresh_token or access_token")
        return method


def check_interval(seconds: int | None) -> None:
    if seconds is not None and seconds < MIN_POLL_INTERVAL_S:
        raise InvalidInput(f"poll_interval_s must be at least {MIN_POLL_INTERVAL_S} seconds")


async def verify(
    runtime: Runtime, request: LinkRequest
) -> tuple[str, str | None, TokenSet, Credentials | None]:
    """Log in to Peloton as the request says; (user id, username, tokens, credentials to keep).

    Raises the Peloton client's typed errors (bad credentials: NeedsReauthentication).
    """
    method = request.auth_method()
    credentials: Credentials | None = None
    tokens: TokenSet | None = None
    if method is AuthMethod.TOKEN:
        tokens = TokenSet.supplied(
            access_token=request.access_token, refresh_token=request.refresh_token
        )
    else:
        login = LoginMethod.PKCE if method is AuthMethod.PKCE else LoginMethod.PASSWORD
        credentials = Credentials(request.username, request.password, login)
    latest: list[TokenSet] = []
    # While Peloton throttles this address, say so at once (no login meeting it halfway).
    await runtime.budget.check()

    async def keep(new: TokenSet) -> None:
        latest.append(new)

    async with PelotonClient(
        http=runtime.http,
        config=peloton_config(runtime),
        credentials=credentials,
        tokens=tokens,
        on_tokens=keep,
        semaphore=runtime.peloton_slots,
        clock=runtime.clock,
        sleep=runtime.sleep,
        gate=runtime.budget.gate(Priority.INTERACTIVE),
    ) as client:
        me = await client.me()
        final = client.tokens
        if credentials is not None:
            # The method that worked: the web login when the password grant was refused.
            credentials = client.session.credentials
    if not me.id:
        raise InvalidInput("Peloton did not say which user these credentials belong to")
    final_tokens = latest[-1] if latest else final
    if final_tokens is None:
        raise InvalidInput("Peloton gave no tokens for these credentials")
    return me.id, me.username, final_tokens, credentials


async def link(runtime: Runtime, session: AsyncSession, request: LinkRequest) -> Account:
    """Verify the credentials with Peloton and store the account (secrets encrypted)."""
    check_interval(request.poll_interval_s)
    user_id, username, tokens, credentials = await verify(runtime, request)
    method = auth_method_of(credentials)
    accounts = AccountRepository(session)
    if await accounts.by_peloton_user(user_id) is not None:
        raise Conflict(f"Peloton user {username or user_id} is already linked")
    now = runtime.clock()
    box = runtime.secrets
    account = await accounts.add(
        Account(
            label=request.label or username or user_id,
            peloton_user_id=user_id,
            peloton_username=username,
            auth_method=method,
            # A password is kept only when the method may need to log in again by itself.
            credentials_encrypted=encrypt_credentials(box, credentials) if credentials else None,
            tokens_encrypted=encrypt_tokens(box, tokens),
            token_expires_at=tokens.expires_at,
            poll_interval_s=request.poll_interval_s,
            paused=False,
            status=AccountStatus.ACTIVE,
            next_poll_at=now,
            consecutive_failures=0,
            sync_since=request.sync_since or now - timedelta(days=runtime.settings.backfill_days),
            backfill_complete=False,
            pending_workout_ids=[],
        )
    )
    log.info("accounts.linked", account_id=account.id, method=method.value)
    return account


async def reauthenticate(
    runtime: Runtime, session: AsyncSession, account_id: int, request: LinkRequest
) -> Account:
    """Replace an account's credentials (after needs_reauth); it must be the same Peloton user."""
    accounts = AccountRepository(session)
    account = await accounts.get(account_id)
    if account is None:
        raise NotFound(f"account {account_id} not found")
    user_id, username, tokens, credentials = await verify(runtime, request)
    method = auth_method_of(credentials)
    if user_id != account.peloton_user_id:
        raise Conflict("these credentials belong to a different Peloton user")
    box = runtime.secrets
    account.auth_method = method
    account.peloton_username = username or account.peloton_username
    account.credentials_encrypted = encrypt_credentials(box, credentials) if credentials else None
    account.tokens_encrypted = encrypt_tokens(box, tokens)
    account.token_expires_at = tokens.expires_at
    account.status = AccountStatus.ACTIVE
    account.consecutive_failures = 0
    account.last_error = None
    account.next_poll_at = runtime.clock()
    await session.flush()
    log.info("accounts.reauthenticated", account_id=account.id, method=method.value)
    return account
