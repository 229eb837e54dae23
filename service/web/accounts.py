"""Accounts: the list and linking form, one account's settings, pausing, syncing, re-linking."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from service.accounts import service as accounts_service
from service.accounts.deps import PollJobDep
from service.accounts.repository import AccountRepository
from service.deps import RuntimeDep, SessionDep
from service.errors import InvalidInput, PelosyncError
from service.runtime import Runtime
from service.schemas import IdPath
from service.web import forms
from service.web.deps import (
    Action,
    ActionDep,
    Viewer,
    ViewerDep,
    WebRoute,
    redirect,
    render,
    safe_next,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

RUNS_SHOWN = 20


async def _list_page(
    request: Request,
    runtime: Runtime,
    db: AsyncSession,
    viewer: Viewer,
    *,
    status: int = 200,
    error: str | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    repo = AccountRepository(db)
    accounts = await repo.all()
    return render(
        request,
        runtime,
        "accounts.html",
        viewer,
        status=status,
        page="accounts",
        accounts=accounts,
        workouts=await repo.workout_counts([a.id for a in accounts]),
        error=error,
        values=values or {},
    )


@router.get("/accounts")
async def list_accounts(
    request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep
) -> Response:
    return await _list_page(request, runtime, db, viewer)


@router.post("/accounts")
async def link_account(
    request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    """Verify the credentials with Peloton and link the account; it syncs at once."""
    form = action.form
    try:
        link = accounts_service.link_request(
            forms.credentials(form),
            label=form.get("label") or None,
            sync_since=forms.day(form, "sync_since"),
            poll_interval_s=forms.poll_interval(form),
        )
        account = await accounts_service.link(runtime, db, link)
    except PelosyncError as exc:
        await db.rollback()
        # Never echo a token or password back into the page.
        kept = {k: form.get(k) for k in ("label", "method", "username", "sync_since")}
        return await _list_page(
            request,
            runtime,
            db,
            action.viewer,
            status=exc.status_code,
            error=exc.message,
            values=kept,
        )
    return redirect(
        request, runtime, f"/accounts/{account.id}", ok=f"Linked {account.label}; syncing now."
    )


async def _detail_page(
    request: Request,
    runtime: Runtime,
    db: AsyncSession,
    viewer: Viewer,
    account_id: int,
    *,
    status: int = 200,
    error: str | None = None,
    reauth_error: str | None = None,
) -> Response:
    account = await accounts_service.get(db, account_id)
    workouts, deliveries = await accounts_service.counts(db, account)
    runs = await AccountRepository(db).runs(account_id, limit=RUNS_SHOWN)
    return render(
        request,
        runtime,
        "account.html",
        viewer,
        status=status,
        page="accounts",
        account=account,
        workouts=workouts,
        deliveries=deliveries,
        runs=runs,
        error=error,
        reauth_error=reauth_error,
    )


@router.get("/accounts/{account_id}")
async def show_account(
    account_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep
) -> Response:
    return await _detail_page(request, runtime, db, viewer, account_id)


@router.post("/accounts/{account_id}/edit")
async def edit_account(
    account_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    try:
        changes = forms.account_update(action.form)
        await accounts_service.update(runtime, db, account_id, changes)
    except InvalidInput as exc:
        await db.rollback()
        return await _detail_page(
            request, runtime, db, action.viewer, account_id, status=422, error=exc.message
        )
    return redirect(request, runtime, f"/accounts/{account_id}", ok="Settings saved.")


async def _set_paused(
    request: Request,
    runtime: Runtime,
    db: AsyncSession,
    action: Action,
    account_id: int,
    paused: bool,
) -> Response:
    account = await accounts_service.update(runtime, db, account_id, {"paused": paused})
    back = safe_next(action.form.get("next"), f"/accounts/{account_id}")
    verb = "Paused" if paused else "Resumed"
    return redirect(request, runtime, back, ok=f"{verb} {account.label}.")


@router.post("/accounts/{account_id}/pause")
async def pause_account(
    account_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    """No scheduled polls until resumed ("sync now" still works)."""
    return await _set_paused(request, runtime, db, action, account_id, True)


@router.post("/accounts/{account_id}/resume")
async def resume_account(
    account_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    """Polls again, starting now."""
    return await _set_paused(request, runtime, db, action, account_id, False)


@router.post("/accounts/{account_id}/sync")
async def sync_account(
    account_id: IdPath,
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    poll_job: PollJobDep,
    action: ActionDep,
) -> Response:
    """Poll now, in the background, in this process."""
    back = safe_next(action.form.get("next"), f"/accounts/{account_id}")
    try:
        started = await accounts_service.sync_now(db, poll_job, account_id)
    except PelosyncError as exc:
        return redirect(request, runtime, back, error=exc.message)
    message = "Syncing now." if started else "A sync of this account is already running."
    return redirect(request, runtime, back, ok=message)


@router.post("/accounts/{account_id}/reauthenticate")
async def reauthenticate_account(
    account_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    """New credentials for the same Peloton user; the account is due at once."""
    try:
        link = accounts_service.link_request(forms.credentials(action.form))
        await accounts_service.reauthenticate(runtime, db, account_id, link)
    except PelosyncError as exc:
        await db.rollback()
        if exc.status_code == 404:
            raise
        return await _detail_page(
            request,
            runtime,
            db,
            action.viewer,
            account_id,
            status=exc.status_code,
            reauth_error=exc.message,
        )
    return redirect(request, runtime, f"/accounts/{account_id}", ok="Re-authenticated; syncing.")
