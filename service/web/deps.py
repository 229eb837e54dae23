"""What every dashboard route shares: who is signed in, form posts, rendering, errors.

Routes use :class:`WebRoute`, which turns errors into HTML pages (a missing or ended session
into a redirect to the sign-in page) and adds the security headers, so nothing here reaches
the admin API's JSON problem handlers.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import Response

from service.auth.models import Role
from service.auth.repository import ApiKeyRepository
from service.auth.service import TOUCH_EVERY, Forbidden
from service.deps import RuntimeDep, SessionDep
from service.errors import InvalidInput, PelosyncError
from service.runtime import Runtime
from service.web import session as cookies
from service.web.templates import render_page

log = structlog.get_logger(__name__)

MAX_FIELDS = 500
SECURITY_HEADERS = {
    # No inline script or style anywhere: the stylesheet and charts are same-origin or inline
    # SVG with presentation through classes.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SignInRequired(Exception):
    """No session, an expired one, or one whose API key was revoked."""

    def __init__(self, *, clear: bool) -> None:
        super().__init__("sign in required")
        self.clear = clear  # drop the cookie (not the sign-in form's own session)


@dataclass(frozen=True)
class Viewer:
    """The signed-in API key."""

    key_id: int
    name: str
    role: str
    session: cookies.SessionData

    @property
    def can_write(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def csrf(self) -> str:
        return self.session.csrf


async def current_viewer(request: Request, runtime: RuntimeDep, db: SessionDep) -> Viewer:
    """The signed-in key, re-checked on every request (a revoked key is signed out)."""
    found = cookies.read(request, runtime)
    if found is None:
        raise SignInRequired(clear=cookies.COOKIE in request.cookies)
    if found.key_id is None:
        raise SignInRequired(clear=False)
    repo = ApiKeyRepository(db)
    key = await repo.get(found.key_id)
    if key is None or key.revoked_at is not None:
        raise SignInRequired(clear=True)
    now = runtime.clock()
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
        await repo.touch(key.id, now)
    return Viewer(key.id, key.name, key.role, found)


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


class Form:
    """A posted ``application/x-www-form-urlencoded`` form."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[-1].strip() if values else default

    def optional(self, name: str) -> str | None:
        return self.get(name) or None

    def raw(self, name: str) -> str:
        """As typed, spaces included (passwords)."""
        values = self.fields.get(name)
        return values[-1] if values else ""

    def getlist(self, name: str) -> list[str]:
        return [v.strip() for v in self.fields.get(name, []) if v.strip()]


async def read_form(request: Request) -> Form:
    """The posted form (the body size is already capped by the API's middleware)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("", "application/x-www-form-urlencoded"):
        raise InvalidInput("forms are posted as application/x-www-form-urlencoded")
    try:
        text = (await request.body()).decode("utf-8")
        fields = urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the form could not be read") from None
    return Form(fields)


@dataclass(frozen=True)
class Action:
    """A POST by a signed-in admin key whose CSRF token matched."""

    viewer: Viewer
    form: Form


async def form_post(request: Request, viewer: ViewerDep) -> Form:
    """A posted form carrying this session's CSRF token (any role)."""
    form = await read_form(request)
    if not cookies.csrf_ok(viewer.session, form.get("csrf")):
        raise Forbidden("this form has expired or did not come from this page; reload and retry")
    return form


async def admin_action(viewer: ViewerDep, form: Annotated[Form, Depends(form_post)]) -> Action:
    if not viewer.can_write:
        raise Forbidden("this API key is read-only; sign in with an admin key to change anything")
    return Action(viewer, form)


FormDep = Annotated[Form, Depends(form_post)]
ActionDep = Annotated[Action, Depends(admin_action)]


def safe_next(target: str | None, default: str = "/") -> str:
    """A same-site path to go back to (never another host)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    return target


def render(
    request: Request,
    runtime: Runtime,
    template: str,
    viewer: Viewer | None,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page, with the pending flash message (consumed here)."""
    flash = cookies.take_flash(request, runtime)
    html = render_page(
        template,
        {
            "viewer": viewer,
            "csrf": viewer.csrf if viewer else "",
            "now": runtime.clock(),
            "flash": flash,
            "path": request.url.path,
            "page": context.pop("page", ""),
            **context,
        },
    )
    response = HTMLResponse(html, status_code=status)
    if flash is not None:
        cookies.drop_flash(response)
    return response


def redirect(
    request: Request, runtime: Runtime, url: str, *, ok: str | None = None, error: str | None = None
) -> RedirectResponse:
    """303 to ``url`` (post/redirect/get), with a message for the next page."""
    response = RedirectResponse(url, status_code=303)
    if ok or error:
        flash = cookies.Flash("error", error) if error else cookies.Flash("ok", ok or "")
        cookies.set_flash(response, request, runtime, flash)
    return response


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    runtime: Runtime = request.app.state.runtime
    message = message[:1].upper() + message[1:]
    return render(request, runtime, "error.html", None, status=status, title=title, message=message)


class WebRoute(APIRoute):
    """Dashboard routes: HTML errors, sign-in redirects, security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired as exc:
                target = "/login"
                if request.method == "GET" and request.url.path != "/":
                    target += "?" + urllib.parse.urlencode({"next": request.url.path})
                response = RedirectResponse(target, status_code=303)
                if exc.clear:
                    cookies.clear(response, request, request.app.state.runtime)
            except PelosyncError as exc:
                response = _error_page(request, exc.status_code, exc.title, exc.message)
                response.headers.update(getattr(exc, "headers", None) or {})  # Retry-After
            except HTTPException as exc:  # e.g. a body over the size limit (413)
                response = _error_page(request, exc.status_code, "Refused", str(exc.detail))
            except RequestValidationError as exc:
                where = exc.errors()[0]["loc"][0] if exc.errors() else ""
                status = 404 if where == "path" else 422
                response = _error_page(
                    request, status, "Not found" if status == 404 else "Invalid request", ""
                )
            except Exception as exc:
                log.exception("web.unhandled_error", error=type(exc).__name__)
                response = _error_page(
                    request, 500, "Internal error", "something went wrong; see the server log"
                )
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return handle
