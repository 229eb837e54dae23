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

    return PelotonClient(
        http=runtime.http,
        config=peloton_config(runtime),
        credentials=decrypt_credentials(box, account.credentials_encrypted),
        tokens=decrypt_tokens(box, account.tokens_encrypted),
        on_tokens=save,
        semaphore=runtime.peloton_slots,
        clock=runtime.clock,
        sleep=runtime.sleep,
        gate=runtime.budget.gate(priority),
    )
