"""An account linked with a password whose password grant Peloton turns off: linking and
polling fall back once to the web login, and the account remembers it (issue 19)."""

from __future__ import annotations

import pytest

from service.accounts import linking as accounts
from service.accounts.jobs import PollJob
from service.accounts.models import Account, AccountStatus, AuthMethod
from service.accounts.tokens import decrypt_credentials
from service.peloton.errors import NeedsReauthentication
from service.peloton.models import LoginMethod
from tests.accounts.conftest import LONG_AGO, World

TOKEN = "/oauth/token"


def _password(world: World, index: int = 0) -> accounts.LinkRequest:
    info = world.sandbox.describe_user(list(world.sandbox.accounts.values())[index])
    return accounts.LinkRequest(
        username=info["username"],
        password=info["password"],
        method=AuthMethod.PASSWORD,
        sync_since=LONG_AGO,
    )


async def _stored(world: World, account_id: int) -> Account:
    async with world.runtime.sessions() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        return account


def _token_requests(world: World) -> int:
    return sum(1 for e in world.sandbox.log.entries if e["path"] == TOKEN)


async def test_linking_falls_back_to_the_web_login_and_stores_it(world: World) -> None:
    world.sandbox.runtime.password_grant = "unauthorized_client"
    async with world.runtime.sessions() as session, session.begin():
        account = await accounts.link(world.runtime, session, _password(world))
    stored = await _stored(world, account.id)
    assert stored.auth_method == AuthMethod.PKCE
    credentials = decrypt_credentials(world.runtime.secrets, stored.credentials_encrypted)
    assert credentials is not None and credentials.method is LoginMethod.PKCE
    assert _token_requests(world) == 2  # the refused grant, then the web login's code exchange


async def test_a_poll_that_must_log_in_again_switches_the_account_to_the_web_login(
    world: World,
) -> None:
    async with world.runtime.sessions() as session, session.begin():
        account = await accounts.link(world.runtime, session, _password(world, 1))
    assert (await _stored(world, account.id)).auth_method == AuthMethod.PASSWORD
    # Peloton turns the grant off and the tokens stop working: the next poll logs in again.
    world.sandbox.runtime.password_grant = "invalid_grant"
    user_id = list(world.sandbox.accounts.values())[1].user.user_id
    world.sandbox.tokens.revoke_user(user_id)
    world.sandbox.tokens.expire_all()
    world.sandbox.log.clear()
    result = (await PollJob(world.runtime).run_once(account.id))[account.id]
    assert result is not None and result.outcome == "ok", result
    stored = await _stored(world, account.id)
    assert stored.auth_method == AuthMethod.PKCE and stored.status == AccountStatus.ACTIVE
    credentials = decrypt_credentials(world.runtime.secrets, stored.credentials_encrypted)
    assert credentials is not None and credentials.method is LoginMethod.PKCE
    assert credentials.password == _password(world, 1).password


async def test_a_wrong_password_is_refused_once_and_nothing_is_stored(world: World) -> None:
    request = _password(world)
    wrong = accounts.LinkRequest(
        username=request.username, password="wrong", method=AuthMethod.PASSWORD
    )
    with pytest.raises(NeedsReauthentication, match="Wrong email or password"):
        async with world.runtime.sessions() as session, session.begin():
            await accounts.link(world.runtime, session, wrong)
    assert _token_requests(world) == 1
    async with world.runtime.sessions() as session:
        assert await session.get(Account, 1) is None
