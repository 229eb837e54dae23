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
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.responses import Response

from service.auth.models import Role
from service.auth.repository import ApiKeyRepository
from service.auth.service import TOUCH_EVERY, Forbidden
from service.deps import RuntimeDep, SessionDep
from service.errors import Conflict, InvalidInput, PelosyncError
from service.runtime import Runtime
from service.web import session as cookies
from service.web.repository import WebSessionRepository
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


class FormAlreadySent(Conflict):
    """A form token submitted a second time (a reload of a form's answer, a replay)."""

    title = "Form already sent"


@dataclass(frozen=True)
class Viewer:
    """The signed-in API key, and the form token of the page being answered."""

    key_id: int
    name: str
    role: str
    session: cookies.SessionData
    csrf: str

    @property
    def can_write(self) -> bool:
        return self.role == Role.ADMIN


async def current_viewer(request: Request, runtime: RuntimeDep, db: SessionDep) -> Viewer:
    """The signed-in key, re-checked on every request: a session ended by signing out, or of
    a revoked key, is signed out."""
    found = cookies.read(request, runtime)
    if found is None:
        raise SignInRequired(clear=cookies.COOKIE in request.cookies)
    if found.key_id is None:
        raise SignInRequired(clear=False)
    now = runtime.clock()
    key = await WebSessionRepository(db).active(found.hash, now)
    if key is None or key.id != found.key_id:
        raise SignInRequired(clear=True)
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
        await ApiKeyRepository(db).touch(key.id, now)
    return Viewer(key.id, key.name, key.role, found, cookies.form_token(runtime, found))


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


async def use_form_token(
    runtime: Runtime, db: AsyncSession, session: cookies.SessionData | None, form: Form
) -> None:
    """The one check of every form post: its token is of this session, unexpired and not used
    before. It is used up here, committed at once (before the action runs, so the action's
    own work, a background sync say, never waits on this transaction): a form is handled
    once, whatever its outcome; a page answering a refused form carries a new token."""
    now = runtime.clock()
    token = cookies.read_form_token(runtime, session, form.get("csrf"), now)
    if token is None:
        raise Forbidden("this form has expired or did not come from this page; reload and retry")
    fresh = await WebSessionRepository(db).use_form_token(token.nonce, token.expires, now)
    await db.commit()
    if not fresh:
        raise FormAlreadySent(
            "this form was already sent once (a reload or a second click), and a form is "
            "handled only once: nothing more was done; go back and reload the page to see "
            "where things stand"
        )


async def form_post(
    request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep
) -> Form:
    """A posted form carrying a form token of this session, used once (any role)."""
    form = await read_form(request)
    await use_form_token(runtime, db, viewer.session, form)
    return form


async def _admin(viewer: ViewerDep) -> Viewer:
    # Checked before the form: a read-only key's refused post does not use up its token.
    if not viewer.can_write:
        raise Forbidden("this API key is read-only; sign in with an admin key to change anything")
    return viewer


async def admin_action(
    viewer: Annotated[Viewer, Depends(_admin)], form: Annotated[Form, Depends(form_post)]
) -> Action:
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


# Where an error page sends people (besides back): the main pages, then the API's docs, which
# need no database. The page that failed is never offered.
WAYS_ON = (
    ("/", "The overview"),
    ("/workouts", "Workouts"),
    ("/deliveries", "Deliveries"),
    ("/docs", "The API documentation"),
)


async def _viewer_if_any(request: Request, runtime: Runtime) -> Viewer | None:
    """Who is signed in, for an error page's navigation; None when that cannot be told."""
    found = cookies.read(request, runtime)
    if found is None or found.key_id is None:
        return None
    try:
        async with runtime.sessions() as db:
            key = await WebSessionRepository(db).active(found.hash, runtime.clock())
    except Exception as exc:  # the error being shown may be the database's own
        log.warning("web.error_page_without_session", error=type(exc).__name__)
        return None
    if key is None or key.id != found.key_id:
        return None
    return Viewer(key.id, key.name, key.role, found, cookies.form_token(runtime, found))


def _ways_on(request: Request, viewer: Viewer | None) -> list[tuple[str, str]]:
    # Only a GET failed as a page: a refused POST's path may well be a page that works.
    here = request.url.path if request.method == "GET" else None
    ways: list[tuple[str, str]] = []
    referer = urllib.parse.urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path != here:
        back = safe_next(urllib.parse.urlunsplit(("", "", referer.path, referer.query, "")), "")
        if back:
            ways.append((back, "Back to the previous page"))
    if viewer is None and here != "/login":
        ways.append(("/login", "Sign in"))
    elif viewer is not None:
        ways += [(href, text) for href, text in WAYS_ON if href != here]
    return ways


async def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    """The error's reason, the site's navigation when signed in, and ways on that work."""
    runtime: Runtime = request.app.state.runtime
    viewer = await _viewer_if_any(request, runtime)
    message = message[:1].upper() + message[1:]
    return render(
        request,
        runtime,
        "error.html",
        viewer,
        status=status,
        title=title,
        message=message,
        status_code=status,
        ways=_ways_on(request, viewer),
        reference=structlog.contextvars.get_contextvars().get("request_id"),
    )


def _invalid(request: Request, exc: RequestValidationError) -> tuple[int, str, str]:
    """(status, title, reason) of a request FastAPI refused: a bad path is a page not found."""
    first = exc.errors()[0] if exc.errors() else {"loc": ("query",), "msg": "invalid"}
    if first["loc"] and first["loc"][0] == "path":
        return 404, "Not found", f"there is no page at {request.url.path}"
    field = ".".join(str(p) for p in first["loc"][1:]) or "request"
    return 422, "Invalid request", f"{field}: {first['msg']}"


async def page_for_http_error(request: Request, status: int, title: str, detail: str) -> Response:
    """The dashboard's error page for a path no route has (a mistyped address in a browser)."""
    if status == 404:
        detail = f"there is no page at {request.url.path}"
    response = await _error_page(request, status, title, detail)
    response.headers.update(SECURITY_HEADERS)
    return response


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
                response = await _error_page(request, exc.status_code, exc.title, exc.message)
                response.headers.update(getattr(exc, "headers", None) or {})  # Retry-After
            except HTTPException as exc:  # e.g. a body over the size limit (413)
                response = await _error_page(request, exc.status_code, "Refused", str(exc.detail))
            except RequestValidationError as exc:
                response = await _error_page(request, *_invalid(request, exc))
            except Exception as exc:
                log.exception("web.unhandled_error", error=type(exc).__name__)
                response = await _error_page(
                    request,
                    500,
                    "Internal error",
                    "this page failed on the server: the error is in the server log, under the "
                    "reference below; other pages may still work",
                )
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return handle
