"""Deleting a destination or an account: a page saying what will be removed, then a POST.

Read-only keys get the 403 page on both (they never see the buttons that lead here).
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from starlette.responses import Response

from service.accounts import service as accounts
from service.accounts.repository import AccountRepository
from service.deliveries.models import DeliveryState
from service.deps import RuntimeDep, SessionDep
from service.destinations import service as destinations
from service.destinations.kinds import strava
from service.schemas import IdPath
from service.web import queries
from service.web.confirm import Confirmation, confirm_page, plural, require_admin
from service.web.deps import ActionDep, ViewerDep, WebRoute, redirect

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _states(counts: dict[str, int]) -> str:
    words = {
        DeliveryState.SUCCEEDED: "delivered",
        DeliveryState.FAILED: "failed",
        DeliveryState.PENDING: "pending",
    }
    parts = [f"{counts[state]} {text}" for state, text in words.items() if counts.get(state)]
    return f" ({', '.join(parts)})" if parts else ""


@router.get("/destinations/{destination_id}/delete")
async def confirm_delete_destination(
    destination_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep
) -> Response:
    require_admin(viewer, "delete a destination")
    destination = await destinations.get(db, destination_id)
    counts = (await queries.delivery_counts(db)).get(destination_id, {})
    total = sum(counts.values())
    return confirm_page(
        request,
        runtime,
        viewer,
        "destinations",
        Confirmation(
            title=f"Delete {destination.name}?",
            back=f"/destinations/{destination_id}",
            back_text=destination.name,
            lines=[
                f"The destination {destination.name} and its record of "
                f"{plural(total, 'delivery')}{_states(counts)} with every attempt are deleted. "
                "Nothing more is sent to it.",
                "The workouts stay, and files already delivered stay where they went.",
                *(
                    [
                        "Its access to the Strava account is revoked, so pelosync no longer "
                        "appears among the athlete's connected apps on Strava."
                    ]
                    if destination.kind == strava.KIND
                    and "refresh_token" in destinations.masked_secrets(runtime, destination)
                    else []
                ),
            ],
            action=f"/destinations/{destination_id}/delete",
            button="Delete destination",
            danger=True,
        ),
    )


@router.post("/destinations/{destination_id}/delete")
async def delete_destination(
    destination_id: IdPath,
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    action: ActionDep,
    background: BackgroundTasks,
) -> Response:
    destination = await destinations.get(db, destination_id)
    name = destination.name
    revocation = await destinations.delete(runtime, db, destination_id)
    if revocation is None:
        return redirect(request, runtime, "/destinations", ok=f"Deleted {name}.")
    # After the commit and the response: the deletion never waits for Strava, and the log says
    # whether Strava took the revocation.
    background.add_task(destinations.revoke, runtime, revocation)
    return redirect(
        request,
        runtime,
        "/destinations",
        ok=f"Deleted {name}. Its Strava access is being revoked; if Strava cannot be reached, "
        f"the log says so and the athlete can remove pelosync at {destinations.STRAVA_APPS_PAGE}.",
    )


@router.get("/accounts/{account_id}/delete")
async def confirm_delete_account(
    account_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep
) -> Response:
    require_admin(viewer, "delete an account")
    account = await accounts.get(db, account_id)
    workouts, deliveries = await accounts.counts(db, account)
    runs = await AccountRepository(db).run_count(account_id)
    return confirm_page(
        request,
        runtime,
        viewer,
        "accounts",
        Confirmation(
            title=f"Delete {account.label}?",
            back=f"/accounts/{account_id}",
            back_text=account.label,
            lines=[
                f"The account {account.label} (Peloton user "
                f"{account.peloton_username or account.peloton_user_id}) is unlinked, with its "
                f"{plural(workouts, 'workout')}, their "
                f"{plural(sum(deliveries.values()), 'delivery')}{_states(deliveries)} and every "
                f"attempt, and its {plural(runs, 'sync run')}. Its stored credentials are erased.",
                "Files already delivered stay where they went; destinations are kept. Linking the "
                "account again fetches its workouts again.",
            ],
            action=f"/accounts/{account_id}/delete",
            button="Delete account",
            danger=True,
        ),
    )


@router.post("/accounts/{account_id}/delete")
async def delete_account(
    account_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    account = await accounts.get(db, account_id)
    label = account.label
    await accounts.delete(db, account_id)
    return redirect(request, runtime, "/accounts", ok=f"Deleted {label} and its workouts.")
