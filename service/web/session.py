"""The dashboard's session cookie, its form tokens, and one-shot messages ("flash").

A session is ``{"s": random session id, "k": API key id or null, "e": expiry (unix time)}`` in
a cookie signed with HMAC-SHA256 under a key derived from the service's secret key (sign with
the newest, accept any: a secret-key rotation does not sign everyone out). A signed-in session
also has a row (``service.web.models.WebSession``, holding the id's SHA-256): signing out ends
the row, so a copy of the cookie stops working too, and every request re-checks the row and
its API key, so revoking a key ends its sessions at once. The API key itself is never stored.
A session without a key (``k`` null, no row) only carries the sign-in form.

Every POST form carries a form token (:func:`form_token`): signed, bound to the session and
single-use (its nonce is recorded when the form is handled), so a replayed or reloaded form
is refused (see ``service.web.deps``).

The cookie is HttpOnly, SameSite=Lax and, when the dashboard is served over https, Secure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.crypto import SecretKeyError
from service.runtime import Runtime

COOKIE = "pelosync_session"
FLASH_COOKIE = "pelosync_flash"
REVEAL_COOKIE = "pelosync_reveal"
PURPOSE = "pelosync dashboard sessions"
FORM_PURPOSE = "pelosync dashboard forms"
SESSION_TTL = timedelta(hours=12)
SIGN_IN_TTL = timedelta(hours=1)  # an anonymous session: the sign-in form's CSRF token
FLASH_TTL_S = 120
MAX_COOKIE = 1024  # ours are ~150 characters; anything much longer is not ours


@dataclass(frozen=True)
class SessionData:
    sid: str
    key_id: int | None
    expires: int

    @property
    def hash(self) -> str:
        """What the session's row stores (never the id itself)."""
        return hashlib.sha256(self.sid.encode()).hexdigest()

    @property
    def signed_in(self) -> bool:
        return self.key_id is not None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.digest(key, payload.encode(), hashlib.sha256))


def sign(runtime: Runtime, value: dict[str, Any], purpose: str = PURPOSE) -> str:
    """``base64url(json).base64url(hmac)`` with the newest derived key."""
    payload = _b64(json.dumps(value, separators=(",", ":")).encode())
    return f"{payload}.{_mac(runtime.secrets.derive_keys(purpose)[0], payload)}"


def unsign(runtime: Runtime, token: str | None, purpose: str = PURPOSE) -> dict[str, Any] | None:
    """The signed value, or None if missing, malformed or not signed by us."""
    if not token or len(token) > MAX_COOKIE or token.count(".") != 1:
        return None
    payload, mac = token.split(".")
    if not any(
        hmac.compare_digest(_mac(key, payload), mac) for key in runtime.secrets.derive_keys(purpose)
    ):
        return None
    try:
        value = json.loads(_unb64(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def new_session(key_id: int | None, now: datetime) -> SessionData:
    """A fresh session with a new id (signing in never keeps the anonymous one's)."""
    ttl = SESSION_TTL if key_id is not None else SIGN_IN_TTL
    return SessionData(secrets.token_urlsafe(32), key_id, int((now + ttl).timestamp()))


def expiry(session: SessionData) -> datetime:
    return datetime.fromtimestamp(session.expires, UTC)


def encode(runtime: Runtime, session: SessionData) -> str:
    return sign(runtime, {"s": session.sid, "k": session.key_id, "e": session.expires})


def decode(runtime: Runtime, token: str | None, now: datetime) -> SessionData | None:
    """The session in the cookie, or None if missing, forged, malformed or expired."""
    value = unsign(runtime, token)
    if value is None:
        return None
    sid, key_id, expires = value.get("s"), value.get("k"), value.get("e")
    if key_id is not None and (not isinstance(key_id, int) or isinstance(key_id, bool)):
        return None
    if not isinstance(sid, str) or len(sid) < 32 or not isinstance(expires, int):
        return None
    if expires <= now.timestamp():
        return None
    return SessionData(sid, key_id, expires)


def read(request: Request, runtime: Runtime) -> SessionData | None:
    return decode(runtime, request.cookies.get(COOKIE), runtime.clock())


def is_https(request: Request, runtime: Runtime) -> bool:
    """Served over https: directly, or (behind a proxy) as PELOSYNC_PUBLIC_URL says."""
    public = runtime.settings.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def store(response: Response, request: Request, runtime: Runtime, session: SessionData) -> None:
    """Set the session cookie on ``response``."""
    max_age = max(0, session.expires - int(runtime.clock().timestamp()))
    response.set_cookie(
        COOKIE,
        encode(runtime, session),
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request, runtime),
    )


def clear(response: Response, request: Request, runtime: Runtime) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request, runtime)
    )


# --- form tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormToken:
    nonce: str
    expires: datetime


def _binding(session: SessionData) -> str:
    # Tokens appear in pages: they carry a digest of the session id, never the id.
    return hashlib.sha256(b"form:" + session.sid.encode()).hexdigest()[:32]


def form_token(runtime: Runtime, session: SessionData) -> str:
    """A new token for the forms of one page: valid for this session, once, until it ends."""
    value = {"b": _binding(session), "n": secrets.token_urlsafe(18), "e": session.expires}
    return sign(runtime, value, FORM_PURPOSE)


def read_form_token(
    runtime: Runtime, session: SessionData | None, submitted: str | None, now: datetime
) -> FormToken | None:
    """The submitted token's nonce if it is ours, of this session and unexpired (whether it
    was used already is for the caller to check)."""
    if session is None:
        return None
    value = unsign(runtime, submitted, FORM_PURPOSE)
    if value is None:
        return None
    binding, nonce, expires = value.get("b"), value.get("n"), value.get("e")
    if not isinstance(binding, str) or not hmac.compare_digest(binding, _binding(session)):
        return None
    if not isinstance(nonce, str) or not nonce or not isinstance(expires, int):
        return None
    if isinstance(expires, bool) or expires <= now.timestamp():
        return None
    return FormToken(nonce, datetime.fromtimestamp(expires, UTC))


# --- flash: a one-shot message shown on the next page ----------------------------------------


@dataclass(frozen=True)
class Flash:
    level: str  # ok | error
    text: str


def set_flash(response: Response, request: Request, runtime: Runtime, flash: Flash) -> None:
    value = sign(runtime, {"l": flash.level, "t": flash.text[:300]})
    response.set_cookie(
        FLASH_COOKIE,
        value,
        max_age=FLASH_TTL_S,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request, runtime),
    )


def take_flash(request: Request, runtime: Runtime) -> Flash | None:
    """The pending message, if any (the caller clears the cookie with :func:`drop_flash`)."""
    value = unsign(runtime, request.cookies.get(FLASH_COOKIE))
    if value is None:
        return None
    level, text = value.get("l"), value.get("t")
    if level not in ("ok", "error") or not isinstance(text, str):
        return None
    return Flash(level, text)


def drop_flash(response: Response) -> None:
    response.delete_cookie(FLASH_COOKIE, path="/")


# --- reveal: a secret shown once on the page a form redirects to ------------------------------


def set_reveal(
    response: Response,
    request: Request,
    runtime: Runtime,
    session: SessionData,
    path: str,
    secret: str,
) -> None:
    """Carry ``secret`` to the next GET of ``path`` by this session, once: encrypted with the
    service's key (never readable in the cookie), bound to the session, gone after 2 minutes."""
    expires = int(runtime.clock().timestamp()) + FLASH_TTL_S
    value = {"b": _binding(session), "p": path, "s": secret, "e": expires}
    response.set_cookie(
        REVEAL_COOKIE,
        runtime.secrets.encrypt(json.dumps(value, separators=(",", ":"))),
        max_age=FLASH_TTL_S,
        path=path,
        httponly=True,
        samesite="strict",
        secure=is_https(request, runtime),
    )


def take_reveal(request: Request, runtime: Runtime, session: SessionData) -> str | None:
    """The secret carried to this page for this session, if any (drop it with
    :func:`drop_reveal`)."""
    token = request.cookies.get(REVEAL_COOKIE)
    if not token or len(token) > MAX_COOKIE:
        return None
    try:
        value = json.loads(runtime.secrets.decrypt(token))
    except (SecretKeyError, ValueError):
        return None
    if not isinstance(value, dict) or value.get("p") != request.url.path:
        return None
    expires, secret = value.get("e"), value.get("s")
    if value.get("b") != _binding(session) or not isinstance(secret, str):
        return None
    if not isinstance(expires, int) or expires <= runtime.clock().timestamp():
        return None
    return secret


def drop_reveal(response: Response, request: Request) -> None:
    response.delete_cookie(REVEAL_COOKIE, path=request.url.path)
