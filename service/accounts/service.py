"""Accounts for the admin API and the dashboard: link, read, change, delete, sync now, sync
history.

Verifying credentials and storing them are :mod:`service.accounts.linking`'s (the CLI uses it
directly); this module adds what the API needs around them (a 404 before talking to Peloton,
refused credentials as a 422). Every function takes the request's session and only flushes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts import linking
from service.accounts.jobs import PollJob
from service.accounts.models import Account, AccountStatus, AuthMethod, SyncRun
from service.accounts.repository import AccountRepository
from service.accounts.schemas import PelotonCredentials
from service.deliveries.repository import DeliveryRepository
from service.errors import Conflict, InvalidInput, NotFound
from service.peloton.errors import Unauthorized
from service.runtime import Runtime


class CredentialsRefused(InvalidInput):
    """Peloton refused the credentials given to link (or re-link) an account."""

    title = "Peloton refused the credentials"


def link_request(
    credentials: PelotonCredentials,
    *,
    label: str | None = None,
    sync_since: datetime | None = None,
    poll_interval_s: int | None = None,
) -> linking.LinkRequest:
    def reveal(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    if credentials.method is not None and credentials.username is None:
        raise InvalidInput("credentials.method: only applies with a username and password")
    return linking.LinkRequest(
        label=label,
        refresh_token=reveal(credentials.refresh_token),
        access_token=reveal(credentials.access_token),
        username=credentials.username,
        password=reveal(credentials.password),
        method=AuthMethod(credentials.method) if credentials.method else None,
        sync_since=sync_since,
        poll_interval_s=poll_interval_s,
    )


async def link(runtime: Runtime, session: AsyncSession, request: linking.LinkRequest) -> Account:
    """Verify with Peloton and store; refused credentials are a 422 naming Peloton's reason."""
    try:
        return await linking.link(runtime, session, request)
    except Unauthorized as exc:
        raise CredentialsRefused(f"credentials: {exc.message}") from None


async def reauthenticate(
    runtime: Runtime,
    session: AsyncSession,
    account_id: int,
    request: linking.LinkRequest,
) -> Account:
    await get(session, account_id)  # 404 before talking to Peloton
    try:
        return await linking.reauthenticate(runtime, session, account_id, request)
    except Unauthorized as exc:
        raise CredentialsRefused(f"credentials: {exc.message}") from None


async def get(session: AsyncSession, account_id: int) -> Account:
    account = await AccountRepository(session).get(account_id)
    if account is None:
        raise NotFound(f"account {account_id} not found")
    return account


async def page(
    session: AsyncSession, *, after_id: int | None, limit: int
) -> tuple[list[Account], dict[int, int]]:
    """Up to ``limit + 1`` accounts after ``after_id`` and their workout counts."""
    repo = AccountRepository(session)
    accounts = await repo.page(after_id=after_id, limit=limit + 1)
    return accounts, await repo.workout_counts([a.id for a in accounts])


async def counts(session: AsyncSession, account: Account) -> tuple[int, dict[str, int]]:
    """(workouts, deliveries by state) of one account."""
    repo = AccountRepository(session)
    workouts = (await repo.workout_counts([account.id])).get(account.id, 0)
    return workouts, await repo.delivery_counts(account.id)


async def update(
    runtime: Runtime, session: AsyncSession, account_id: int, changes: dict[str, Any]
) -> Account:
    """Apply the fields given (see :class:`~service.accounts.schemas.AccountUpdate`)."""
    account = await get(session, account_id)
    for name in ("label", "paused", "sync_since"):
        if name in changes and changes[name] is None:
            raise InvalidInput(f"{name}: may not be null")
    now = runtime.clock()
    if "include_external" in changes and changes["include_external"] is None:
        raise InvalidInput("include_external: may not be null")
    if "label" in changes:
        account.label = changes["label"]
    if "include_external" in changes:
        # From now on: workouts already stored keep the deliveries they have (send or replay
        # them by hand).
        account.include_external = changes["include_external"]
    if "poll_interval_s" in changes:
        linking.check_interval(changes["poll_interval_s"])
        account.poll_interval_s = changes["poll_interval_s"]
    if "sync_since" in changes and changes["sync_since"] != account.sync_since:
        if changes["sync_since"] < account.sync_since:
            # Older workouts are wanted: walk back again on the next poll, now.
            account.backfill_complete = False
            account.backfill_found, account.backfill_reached = 0, None  # a new walk back
            account.next_poll_at = now
        account.sync_since = changes["sync_since"]
    if "paused" in changes and changes["paused"] != account.paused:
        account.paused = changes["paused"]
        if not account.paused:
            account.next_poll_at = now
    await session.flush()
    return account


async def delete(session: AsyncSession, account_id: int) -> None:
    """Delete the account; the database cascades to its workouts, their deliveries and
    attempts, and its sync runs. What was delivered is kept (Peloton workout, destination,
    format), so linking the account again never sends those workouts again on its own."""
    repo = AccountRepository(session)
    account = await get(session, account_id)
    await DeliveryRepository(session).remember_sent(account.id)
    await repo.delete(account)


async def sync_now(session: AsyncSession, poll_job: PollJob, account_id: int) -> bool:
    """Start a poll in this process now; False if one was already running (here or elsewhere).

    Nothing is written in the request's session: the poll leases the account in its own.
    """
    account = await get(session, account_id)
    if account.status == AccountStatus.NEEDS_REAUTH:
        raise Conflict("the account needs to be re-authenticated before it can sync")
    return await poll_job.sync_now(account_id)


async def runs(
    session: AsyncSession, account_id: int, *, before_id: int | None, limit: int
) -> list[SyncRun]:
    """Up to ``limit + 1`` sync runs, newest first, before ``before_id``."""
    await get(session, account_id)
    return await AccountRepository(session).runs(account_id, limit=limit + 1, before_id=before_id)
