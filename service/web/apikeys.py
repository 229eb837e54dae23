"""API keys: the list (name, role, created, last used), creating one, revoking one.

A new key is shown once, on the page the creating POST redirects to: it travels there in a
short-lived cookie encrypted with the service's key (never in a URL, never readable by the
page's scripts), bound to the signed-in key, and is dropped as soon as it is shown.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from service.auth import service as keys
from service.auth.models import Role
from service.auth.repository import ApiKeyRepository
from service.auth.schemas import ApiKeyCreate
from service.crypto import SecretKeyError
from service.deps import RuntimeDep, SessionDep
from service.errors import InvalidInput, NotFound, PelosyncError
from service.runtime import Runtime
from service.schemas import IdPath
from service.web import forms
from service.web import session as cookies
from service.web.confirm import Confirmation, confirm_page, require_admin
from service.web.deps import ActionDep, Viewer, ViewerDep, WebRoute, redirect, render

router = APIRouter(route_class=WebRoute, include_in_schema=False)

NEW_KEY_COOKIE = "pelosync_new_key"
NEW_KEY_PATH = "/api-keys"
NEW_KEY_TTL = timedelta(minutes=5)


def _reveal(request: Request, runtime: Runtime, viewer: Viewer) -> dict[str, object] | None:
    """The key just created by this signed-in key, if its cookie is fresh and ours."""
    token = request.cookies.get(NEW_KEY_COOKIE)
    if not token or len(token) > 2000:
        return None
    try:
        value = runtime.secrets.decrypt_json(token)
    except (SecretKeyError, ValueError):
        return None
    at = value.get("at")
    if value.get("by") != viewer.key_id or not isinstance(at, int | float):
        return None
    if not 0 <= runtime.clock().timestamp() - at <= NEW_KEY_TTL.total_seconds():
        return None
    return value


@router.get("/api-keys")
async def list_keys(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    viewer: ViewerDep,
    revoked: Annotated[bool, Query()] = False,
) -> Response:
    """Every active key (and the revoked ones on request); never a key itself."""
    created = _reveal(request, runtime, viewer)
    response = render(
        request,
        runtime,
        "apikeys.html",
        viewer,
        page="keys",
        keys=await keys.list_keys(db, include_revoked=revoked),
        show_revoked=revoked,
        created=created,
    )
    if request.cookies.get(NEW_KEY_COOKIE):
        response.delete_cookie(NEW_KEY_COOKIE, path=NEW_KEY_PATH)
    return response


@router.post("/api-keys")
async def create_key(
    request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    """Create a key; the next page shows it, once."""
    try:
        body = forms.parse(
            ApiKeyCreate,
            {"name": action.form.get("name"), "role": action.form.get("role") or "read_only"},
        )
    except InvalidInput as exc:
        return redirect(request, runtime, "/api-keys", error=exc.message)
    row, key = await keys.create_key(db, name=body.name, role=Role(body.role), now=runtime.clock())
    response = redirect(request, runtime, "/api-keys", ok=f"Created {row.name}.")
    value = {
        "id": row.id,
        "name": row.name,
        "key": key,
        "by": action.viewer.key_id,
        "at": runtime.clock().timestamp(),
    }
    response.set_cookie(
        NEW_KEY_COOKIE,
        runtime.secrets.encrypt_json(value),
        max_age=int(NEW_KEY_TTL.total_seconds()),
        path=NEW_KEY_PATH,
        httponly=True,
        samesite="strict",
        secure=cookies.is_https(request, runtime),
    )
    return response


@router.get("/api-keys/{key_id}/revoke")
async def confirm_revoke(
    key_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep
) -> Response:
    require_admin(viewer, "revoke a key")
    row = await ApiKeyRepository(db).get(key_id)
    if row is None or row.revoked_at is not None:
        raise NotFound(f"API key {key_id} not found (or already revoked)")
    lines = [
        f"The {row.role.replace('_', '-')} key {row.name} ({row.prefix}…) stops working at "
        "once: the API answers 401 to anything using it, and its dashboard sessions end.",
        "A revoked key cannot be restored; create a new one instead.",
    ]
    if row.id == viewer.key_id:
        lines.append("This is the key you are signed in with: you will be signed out.")
    return confirm_page(
        request,
        runtime,
        viewer,
        "keys",
        Confirmation(
            title=f"Revoke {row.name}?",
            back="/api-keys",
            back_text="API keys",
            lines=lines,
            action=f"/api-keys/{key_id}/revoke",
            button="Revoke key",
            danger=True,
        ),
    )


@router.post("/api-keys/{key_id}/revoke")
async def revoke_key(
    key_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    try:
        row = await keys.revoke(db, key_id, runtime.clock())
    except PelosyncError as exc:
        if exc.status_code == 404:
            raise
        await db.rollback()
        return redirect(request, runtime, "/api-keys", error=exc.message)
    if row.id == action.viewer.key_id:
        return redirect(request, runtime, "/login")  # its session ends with it
    return redirect(request, runtime, "/api-keys", ok=f"Revoked {row.name}.")
