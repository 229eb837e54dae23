"""``/v1/accounts``: linked Peloton accounts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status

from service.accounts import service as accounts_service
from service.accounts.deps import PollJobDep
from service.accounts.models import Account, AccountStatus
from service.accounts.schemas import (
    AccountCounts,
    AccountCreate,
    AccountOut,
    AccountReauthenticate,
    AccountUpdate,
    SyncRequested,
    SyncRunOut,
)
from service.auth.deps import current_key
from service.deps import RuntimeDep, SessionDep
from service.openapi import errors
from service.pagination import decode_id_cursor, encode_cursor, page_of
from service.schemas import CursorQuery, IdPath, Limit, Page

router = APIRouter(
    prefix="/v1/accounts",
    tags=["accounts"],
    dependencies=[Depends(current_key)],
    responses=errors(401, 403, 422),
)


def account_out(
    account: Account, workouts: int, deliveries: dict[str, int] | None = None
) -> AccountOut:
    out = AccountOut.model_validate(
        {
            **{
                name: getattr(account, name) for name in AccountOut.model_fields if name != "counts"
            },
            "counts": AccountCounts(workouts=workouts, deliveries=deliveries),
        }
    )
    if account.paused or account.status == AccountStatus.NEEDS_REAUTH:
        out.next_poll_at = None
    return out


@router.get("")
async def list_accounts(
    session: SessionDep, limit: Limit = 50, cursor: CursorQuery = None
) -> Page[AccountOut]:
    """List linked accounts in the order they were linked (never their credentials)."""
    accounts, counts = await accounts_service.page(
        session, after_id=decode_id_cursor(cursor), limit=limit
    )
    items = [account_out(a, counts.get(a.id, 0)) for a in accounts]
    return page_of(items, limit, lambda a: encode_cursor(None, a.id))


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(409, 502, 503))
async def link_account(body: AccountCreate, runtime: RuntimeDep, session: SessionDep) -> AccountOut:
    """Link a Peloton account.

    The credentials are checked with Peloton first; the answer carries the Peloton user id and
    username they belong to. Tokens are stored encrypted; a password is stored (encrypted) only
    with a username and password, whose login methods need it to log in again by themselves.
    422 if Peloton refuses them, 409 if that Peloton user is already linked.
    """
    request = accounts_service.link_request(
        body.credentials,
        label=body.label,
        sync_since=body.sync_since,
        poll_interval_s=body.poll_interval_s,
    )
    account = await accounts_service.link(runtime, session, request)
    return account_out(account, 0, {})


@router.get("/{account_id}", responses=errors(404))
async def get_account(account_id: IdPath, session: SessionDep) -> AccountOut:
    """One account: status, last and next poll, last error, counts of workouts and deliveries."""
    account = await accounts_service.get(session, account_id)
    workouts, deliveries = await accounts_service.counts(session, account)
    return account_out(account, workouts, deliveries)


@router.patch("/{account_id}", responses=errors(404))
async def update_account(
    account_id: IdPath, body: AccountUpdate, runtime: RuntimeDep, session: SessionDep
) -> AccountOut:
    """Change the label, poll interval, pause or resume, or move the since-date.

    Resuming polls at once. Moving ``sync_since`` earlier fetches the older workouts on the
    next poll (at once); moving it later keeps what is already stored.
    """
    account = await accounts_service.update(
        runtime, session, account_id, body.model_dump(exclude_unset=True)
    )
    workouts, deliveries = await accounts_service.counts(session, account)
    return account_out(account, workouts, deliveries)


@router.delete("/{account_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
async def delete_account(account_id: IdPath, session: SessionDep) -> Response:
    """Delete the account and everything that came from it.

    Its workouts, their deliveries and delivery attempts, and its sync runs are deleted with
    it. Files already delivered stay where they went (webhooks, folders, Strava...). A poll or
    delivery running at that moment finds the rows gone and writes nothing. Destinations are
    kept; an account id left in a destination's ``account_ids`` filter matches nothing.
    """
    await accounts_service.delete(session, account_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{account_id}/sync", status_code=status.HTTP_202_ACCEPTED, responses=errors(404, 409))
async def sync_account(
    account_id: IdPath, session: SessionDep, poll_job: PollJobDep
) -> SyncRequested:
    """Poll the account now, in the background (also when paused).

    ``already_running``: a poll of this account is running already (here or on another
    replica). 409 if the account must be re-authenticated first.
    """
    started = await accounts_service.sync_now(session, poll_job, account_id)
    return SyncRequested(account_id=account_id, status="started" if started else "already_running")


@router.post("/{account_id}/reauthenticate", responses=errors(404, 409, 502, 503))
async def reauthenticate_account(
    account_id: IdPath, body: AccountReauthenticate, runtime: RuntimeDep, session: SessionDep
) -> AccountOut:
    """Give an account new credentials (after ``needs_reauth``) and make it due at once.

    They must belong to the same Peloton user (409 otherwise).
    """
    request = accounts_service.link_request(body.credentials)
    account = await accounts_service.reauthenticate(runtime, session, account_id, request)
    workouts, deliveries = await accounts_service.counts(session, account)
    return account_out(account, workouts, deliveries)


@router.get("/{account_id}/sync-runs", responses=errors(404))
async def list_sync_runs(
    account_id: IdPath, session: SessionDep, limit: Limit = 50, cursor: CursorQuery = None
) -> Page[SyncRunOut]:
    """The account's sync runs (one per poll), newest first."""
    rows = await accounts_service.runs(
        session, account_id, before_id=decode_id_cursor(cursor), limit=limit
    )
    items = [SyncRunOut.model_validate(r) for r in rows]
    return page_of(items, limit, lambda r: encode_cursor(None, r.id))
