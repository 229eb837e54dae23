"""Signing in to the dashboard with an API key, and signing out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.auth.service import Forbidden, Unauthenticated, authenticate
from service.deps import RuntimeDep, SessionDep
from service.throttle import client_address
from service.web import session as cookies
from service.web.deps import (
    FormDep,
    ViewerDep,
    WebRoute,
    read_form,
    redirect,
    render,
    safe_next,
    use_form_token,
)
from service.web.repository import WebSessionRepository

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/login")
async def login_page(request: Request, runtime: RuntimeDep, next: str = "/") -> Response:
    """The sign-in form; its anonymous session holds the form's CSRF token."""
    found = cookies.read(request, runtime)
    if found is not None and found.signed_in:
        return redirect(request, runtime, safe_next(next))
    if found is None:
        found = cookies.new_session(None, runtime.clock())
    token = cookies.form_token(runtime, found)
    response = render(
        request, runtime, "login.html", None, csrf=token, next=safe_next(next), error=None
    )
    cookies.store(response, request, runtime, found)
    return response


@router.post("/login")
async def login(request: Request, runtime: RuntimeDep, db: SessionDep) -> Response:
    """Check the key; a new session (a new id, a row) for it on success."""
    form = await read_form(request)
    found = cookies.read(request, runtime)
    target = safe_next(form.get("next"))
    if found is None:
        raise Forbidden("the sign-in form has expired (or cookies are off); reload and retry")
    client = client_address(request)
    runtime.auth_failures.check(client)  # before any lookup (service.throttle)
    await use_form_token(runtime, db, found, form)
    try:
        key = await authenticate(db, form.get("key"), runtime.clock())
    except Unauthenticated:
        runtime.auth_failures.failed(client)
        return render(
            request,
            runtime,
            "login.html",
            None,
            status=401,
            csrf=cookies.form_token(runtime, found),
            next=target,
            error="That API key is not valid (unknown or revoked).",
        )
    now = runtime.clock()
    session = cookies.new_session(key.id, now)
    sessions = WebSessionRepository(db)
    await sessions.forget_expired(now)
    await sessions.create(session.hash, key.id, now, cookies.expiry(session))
    response = redirect(request, runtime, target)
    cookies.store(response, request, runtime, session)
    return response


@router.post("/logout")
async def logout(
    request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep, _form: FormDep
) -> Response:
    """End the session here and in its row: a copy of the cookie no longer signs anyone in."""
    await WebSessionRepository(db).end(viewer.session.hash, runtime.clock())
    response = redirect(request, runtime, "/login", ok="Signed out.")
    cookies.clear(response, request, runtime)
    return response
