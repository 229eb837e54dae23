"""An account's Peloton credentials: decrypting them into a client, persisting rotations."""

from __future__ import annotations

from typing import Any

import structlog

from service.accounts.models import Account, AuthMethod
from service.accounts.repository import AccountRepository
from service.crypto import SecretBox
from service.peloton.budget import Priority
from service.peloton.client import PelotonClient
from service.peloton.models import Credentials, LoginMethod, PelotonConfig, TokenSet
from service.runtime import Runtime

log = structlog.get_logger(__name__)


def encrypt_tokens(box: SecretBox, tokens: TokenSet) -> str:
    return box.encrypt(tokens.model_dump_json())


def decrypt_tokens(box: SecretBox, token: str | None) -> TokenSet | None:
    if not token:
        return None
    return TokenSet.model_validate_json(box.decrypt(token))


def encrypt_credentials(box: SecretBox, credentials: Credentials) -> str:
    value: dict[str, Any] = {
        "username": credentials.username,
        "password": credentials.password,
        "method": credentials.method.value if credentials.method else None,
    }
    return box.encrypt_json(value)


def decrypt_credentials(box: SecretBox, token: str | None) -> Credentials | None:
    data = box.decrypt_json(token)
    if not data:
        return None
    method = data.get("method")
    return Credentials(
        username=data.get("username"),
        password=data.get("password"),
        method=LoginMethod(method) if method else None,
    )


def login_method(auth_method: str) -> LoginMethod | None:
    return {AuthMethod.PASSWORD: LoginMethod.PASSWORD, AuthMethod.PKCE: LoginMethod.PKCE}.get(
        AuthMethod(auth_method)
    )


def auth_method_of(credentials: Credentials | None) -> AuthMethod:
    """The account's auth method for these credentials (none: tokens only)."""
    if credentials is None or credentials.method is None:
        return AuthMethod.TOKEN
    return AuthMethod.PKCE if credentials.method is LoginMethod.PKCE else AuthMethod.PASSWORD


def peloton_config(runtime: Runtime) -> PelotonConfig:
    return PelotonConfig.from_settings(runtime.settings)


def client_for(
    runtime: Runtime, account: Account, priority: Priority = Priority.BACKGROUND
) -> PelotonClient:
    """A Peloton client for ``account`` that persists every new token set at once, and asks
    the request budget with ``priority`` before each request.

    Rotated refresh tokens invalidate the old ones, so they are written in their own
    transaction right away, whatever happens to the poll that triggered the refresh.
    """
    box = runtime.secrets
    account_id = account.id

    async def save(tokens: TokenSet) -> None:
        async with runtime.sessions() as session, session.begin():
            await AccountRepository(session).save_tokens(
                account_id, encrypt_tokens(box, tokens), tokens.expires_at
            )
        log.info("accounts.tokens.saved", account_id=account_id)

    credentials = decrypt_credentials(box, account.credentials_encrypted)

    async def remember_method(method: LoginMethod) -> None:
        # The password grant was refused as a grant and the web login worked: log in that way
        # from now on (the next poll, a restart) instead of asking for the refused grant again.
        assert credentials is not None  # a login happened, so there were credentials
        kept = Credentials(credentials.username, credentials.password, method)
        async with runtime.sessions() as session, session.begin():
            await AccountRepository(session).save_login_method(
                account_id, auth_method_of(kept), encrypt_credentials(box, kept)
            )
        log.info("accounts.login_method.saved", account_id=account_id, method=method.value)

    return PelotonClient(
        http=runtime.http,
        config=peloton_config(runtime),
        credentials=credentials,
        tokens=decrypt_tokens(box, account.tokens_encrypted),
        on_tokens=save,
        on_method=remember_method,
        semaphore=runtime.peloton_slots,
        clock=runtime.clock,
        sleep=runtime.sleep,
        gate=runtime.budget.gate(priority),
    )
