"""The Auth0 side (``auth.onepeloton.com``): token grants and the Universal Login pages.

Supported: ``POST /oauth/token`` with ``refresh_token`` (rotating), ``password`` (only for the
password client, like the real tenant) and ``authorization_code`` with PKCE S256; and the
page flow a scripted login walks: ``GET /authorize`` → login page (``_csrf`` cookie) →
``POST /usernamepassword/login`` (hidden form) → ``POST /login/callback`` →
``GET /authorize/resume`` → redirect_uri ``?code=…&state=…``.

``PUT /_sandbox/password-grant`` makes the token endpoint refuse the password grant itself,
the two ways Auth0 answers once a client may no longer use it (``unauthorized_client``, or
``invalid_grant`` naming the grant type), whatever the credentials.
"""

from __future__ import annotations

import html
import json
import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Cookie, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from service.peloton.sandbox.state import SandboxState
from service.peloton.sandbox.tokens import CodeGrant, LoginTransaction, OAuthError, s256
from service.peloton.sandbox.web import NO_STORE, StateDep, read_params

router = APIRouter(tags=["auth0"])

CODE_TTL_S = 600
_GRANTS = ("authorization_code", "refresh_token", "password")


def _issuer(request: Request) -> str:
    return str(request.base_url)


def _require(params: dict[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise OAuthError(400, "invalid_request", f"Missing required parameter: {name}")
    return value


def _check_client(state: SandboxState, client_id: str, grant: str) -> None:
    cfg = state.config
    allowed = {
        cfg.web_client_id: ("authorization_code", "refresh_token"),
        cfg.password_client_id: ("password", "refresh_token"),
    }
    if client_id not in allowed:
        raise OAuthError(401, "access_denied", "Unauthorized")
    if grant not in _GRANTS:
        raise OAuthError(400, "unsupported_grant_type", f"Unsupported grant type: {grant}")
    if grant not in allowed[client_id]:
        raise OAuthError(
            403, "unauthorized_client", f"Grant type '{grant}' not allowed for the client."
        )


def _check_password_grant(state: SandboxState) -> None:
    """Refuse the grant itself when the switch says so, before any credential is read: Auth0
    refuses a grant the client may not use whatever the password."""
    mode = state.runtime.password_grant
    if mode == "unauthorized_client":
        raise OAuthError(
            403, "unauthorized_client", "Grant type 'password' not allowed for the client."
        )
    if mode == "invalid_grant":
        raise OAuthError(403, "invalid_grant", "Grant type 'password' is disabled for this client.")


@router.post("/oauth/token")
async def token(request: Request, state: StateDep) -> Response:
    """Auth0's token endpoint (JSON or form body)."""
    params = await read_params(request)
    grant = _require(params, "grant_type")
    client_id = _require(params, "client_id")
    _check_client(state, client_id, grant)
    issuer = _issuer(request)
    if grant == "refresh_token":
        answer = state.tokens.use_refresh_token(
            _require(params, "refresh_token"), client_id, issuer=issuer
        )
    elif grant == "password":
        _check_password_grant(state)
        login, password = _require(params, "username"), _require(params, "password")
        account = state.find_login(login)
        if account is None or not secrets.compare_digest(account.password, password):
            raise OAuthError(403, "invalid_grant", "Wrong email or password.")
        scope = params.get("scope", "").strip() or "openid"
        answer = state.tokens.issue(account.user.user_id, client_id, scope, issuer=issuer)
    else:
        answer = _code_exchange(state, params, client_id, issuer)
    return JSONResponse(answer, headers=NO_STORE)


def _code_exchange(
    state: SandboxState, params: dict[str, str], client_id: str, issuer: str
) -> dict[str, object]:
    code = _require(params, "code")
    verifier = _require(params, "code_verifier")
    grant = state.tokens.codes.pop(code, None)
    if grant is None or grant.expires_at < state.now():
        raise OAuthError(403, "invalid_grant", "Invalid authorization code")
    txn = grant.transaction
    if txn.client_id != client_id:
        raise OAuthError(403, "invalid_grant", "Invalid authorization code")
    if params.get("redirect_uri", txn.redirect_uri) != txn.redirect_uri:
        raise OAuthError(403, "invalid_grant", "Unable to verify the redirect_uri.")
    if not secrets.compare_digest(s256(verifier), txn.code_challenge):
        raise OAuthError(403, "invalid_grant", "Failed to verify code verifier")
    return state.tokens.issue(grant.user_id, client_id, txn.scope, issuer=issuer, nonce=txn.nonce)


def _error_page(status: int, message: str) -> HTMLResponse:
    body = f"<!DOCTYPE html><html><body><h1>Error</h1><p>{html.escape(message)}</p></body></html>"
    return HTMLResponse(body, status_code=status)


@router.get("/authorize")
async def authorize(request: Request, state: StateDep) -> Response:
    """Start a login: remember the request, set ``_csrf``, redirect to the login page."""
    q = request.query_params
    cfg = state.config
    if q.get("client_id") != cfg.web_client_id:
        return _error_page(400, "invalid_request: Unknown client.")
    redirect_uri = q.get("redirect_uri", "")
    if redirect_uri not in (*cfg.redirect_uris, f"{request.base_url}callback"):
        return _error_page(400, "Callback URL mismatch. The redirect_uri is not allowed.")
    if q.get("response_type") != "code":
        return _error_page(400, "unsupported_response_type: only 'code' is supported.")
    if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
        return _error_page(400, "invalid_request: PKCE with code_challenge_method=S256 required.")
    txn = LoginTransaction(
        client_id=cfg.web_client_id,
        redirect_uri=redirect_uri,
        scope=q.get("scope", "openid"),
        audience=q.get("audience", cfg.audience),
        client_state=q.get("state", ""),
        nonce=q.get("nonce"),
        code_challenge=q.get("code_challenge", ""),
    )
    state.tokens.transactions[txn.state] = txn
    query = urlencode({"state": txn.state, "client": txn.client_id, "protocol": "oauth2"})
    response = RedirectResponse(f"{request.base_url}login?{query}", status_code=302)
    response.set_cookie("_csrf", txn.csrf, path="/usernamepassword/login", httponly=True)
    return response


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    """A stand-in for the Universal Login page (scripts post to /usernamepassword/login)."""
    login_state = html.escape(request.query_params.get("state", ""))
    return HTMLResponse(
        "<!DOCTYPE html><html><head><title>Log in | Peloton sandbox</title></head><body>"
        f'<div id="login" data-state="{login_state}">Sign in to the Peloton sandbox</div>'
        "</body></html>"
    )


@router.post("/usernamepassword/login")
async def usernamepassword_login(
    request: Request,
    state: StateDep,
    csrf_cookie: Annotated[str | None, Cookie(alias="_csrf")] = None,
) -> Response:
    """Check the credentials; answer the hidden form that posts to ``/login/callback``."""
    try:
        params = await read_params(request)
    except OAuthError as exc:
        return _auth0_json(400, "BadRequestError", "invalid_request", exc.description)
    txn = state.tokens.transactions.get(params.get("state", ""))
    if txn is None:
        return _auth0_json(400, "BadRequestError", "invalid_state", "Invalid state")
    csrf = params.get("_csrf", "")
    if not csrf_cookie or not secrets.compare_digest(csrf, txn.csrf) or csrf_cookie != txn.csrf:
        return _auth0_json(403, "ForbiddenError", "invalid_csrf", "Invalid CSRF token")
    if params.get("client_id") != txn.client_id:
        return _auth0_json(400, "BadRequestError", "invalid_client", "Invalid client_id")
    account = state.find_login(params.get("username", ""))
    password = params.get("password", "")
    if account is None or not secrets.compare_digest(account.password, password):
        return _auth0_json(
            401, "ValidationError", "invalid_user_password", "Wrong email or password."
        )
    txn.user_id = account.user.user_id
    txn.wresult = secrets.token_urlsafe(32)
    wctx = json.dumps(
        {
            "strategy": "auth0",
            "tenant": "peloton-prod",
            "connection": params.get("connection", "pelo-user-password"),
            "client_id": txn.client_id,
            "response_type": "code",
            "scope": txn.scope,
            "protocol": "oauth2",
            "redirect_uri": txn.redirect_uri,
            "state": txn.state,
            "nonce": txn.nonce,
            "audience": txn.audience,
        }
    )
    action = f"{request.base_url}login/callback"
    return HTMLResponse(
        "<!DOCTYPE html><html><head><title>Submit This Form</title></head>"
        '<body onload="javascript:document.forms[0].submit()">'
        f'<form method="post" name="hiddenform" action="{html.escape(action)}">'
        '<input type="hidden" name="wa" value="wsignin1.0">'
        f'<input type="hidden" name="wresult" value="{html.escape(txn.wresult)}">'
        f'<input type="hidden" name="wctx" value="{html.escape(wctx)}">'
        "<noscript><p>Script is disabled. Click Submit to continue.</p>"
        '<input type="submit" value="Submit"></noscript></form></body></html>'
    )


def _auth0_json(status: int, name: str, code: str, description: str) -> JSONResponse:
    body = {"name": name, "code": code, "description": description, "statusCode": status}
    return JSONResponse(body, status_code=status)


@router.post("/login/callback")
async def login_callback(request: Request, state: StateDep) -> Response:
    """The hidden form lands here; continue to ``/authorize/resume``."""
    form = await read_params(request)
    wresult = form.get("wresult", "")
    txn = next(
        (t for t in state.tokens.transactions.values() if t.wresult and t.wresult == wresult),
        None,
    )
    if txn is None or form.get("wa") != "wsignin1.0":
        return _error_page(400, "Invalid or expired login result (wresult).")
    query = urlencode({"state": txn.state})
    return RedirectResponse(f"{request.base_url}authorize/resume?{query}", status_code=302)


@router.get("/authorize/resume")
async def authorize_resume(request: Request, state: StateDep) -> Response:
    """Issue the authorization code and send the browser back to the client."""
    txn = state.tokens.transactions.pop(request.query_params.get("state", ""), None)
    if txn is None or txn.user_id is None:
        return _error_page(400, "Invalid state: the login transaction is unknown or unfinished.")
    code = secrets.token_urlsafe(24)
    state.tokens.codes[code] = CodeGrant(txn, txn.user_id, state.now() + CODE_TTL_S)
    query = urlencode({"code": code, "state": txn.client_state})
    return RedirectResponse(f"{txn.redirect_uri}?{query}", status_code=302)


@router.get("/callback")
async def callback() -> HTMLResponse:
    """A local redirect target, so a client that follows every redirect stays offline."""
    return HTMLResponse(
        "<!DOCTYPE html><html><body>Logged in to the Peloton sandbox.</body></html>"
    )
