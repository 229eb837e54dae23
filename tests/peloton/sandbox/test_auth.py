"""Auth0 look-alike: token grants, rotation, errors, and the scripted PKCE web login."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from lxml import html as lxml_html

from service.peloton.sandbox import SandboxState
from tests.peloton.sandbox.helpers import first_refresh_token, user_id

REDIRECT_URI = "https://members.onepeloton.com/callback"
SCOPE = "offline_access openid peloton-api.members:default"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


async def _refresh(http: httpx.AsyncClient, state: SandboxState, token: str) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": state.config.web_client_id,
            "refresh_token": token,
        },
    )


async def test_refresh_rotates_and_invalidates_the_old_token(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    users = (await http.get("/_sandbox/users")).json()
    old = first_refresh_token(users)

    first = await _refresh(http, sandbox_state, old)  # form body, as P2G sends it
    assert first.status_code == 200
    body = first.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 172_800
    assert body["scope"] == SCOPE
    assert body["refresh_token"] != old
    assert body["id_token"].count(".") == 2
    claims = _claims(body["access_token"])
    assert claims["exp"] - claims["iat"] == 172_800
    assert claims["http://onepeloton.com/user_id"] == user_id(sandbox_state)

    again = await _refresh(http, sandbox_state, old)
    assert again.status_code == 403
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "Unknown or invalid refresh token.",
    }
    second = await _refresh(http, sandbox_state, body["refresh_token"])
    assert second.status_code == 200
    listed = (await http.get("/_sandbox/users")).json()[0]["refresh_tokens"]
    assert [t["token"] for t in listed] == [second.json()["refresh_token"]]


async def test_refresh_with_another_client_is_refused(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    token = first_refresh_token((await http.get("/_sandbox/users")).json())
    answer = await http.post(
        "/oauth/token",
        json={
            "grant_type": "refresh_token",
            "client_id": sandbox_state.config.password_client_id,
            "refresh_token": token,
        },
    )
    assert answer.status_code == 403
    assert answer.json()["error"] == "invalid_grant"


async def test_password_grant_with_the_mobile_client(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    account = next(iter(sandbox_state.accounts.values()))
    answer = await http.post(
        "/oauth/token",
        json={
            "grant_type": "password",
            "client_id": sandbox_state.config.password_client_id,
            "scope": "offline_access openid",
            "username": account.user.email.upper(),
            "password": account.password,
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["scope"] == "offline_access openid"
    me = await http.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["id"] == account.user.user_id
    # Without offline_access there is no refresh token, as with Auth0.
    no_offline = await http.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "client_id": sandbox_state.config.password_client_id,
            "scope": "openid",
            "username": account.user.username,
            "password": account.password,
        },
    )
    assert no_offline.status_code == 200
    assert "refresh_token" not in no_offline.json()


@pytest.mark.parametrize(
    ("grant", "client", "expected_status", "expected_error"),
    [
        ("password", "web", 403, "unauthorized_client"),
        ("password", "unknown", 401, "access_denied"),
        ("client_credentials_x", "web", 400, "unsupported_grant_type"),
        ("authorization_code", "password", 403, "unauthorized_client"),
    ],
)
async def test_token_endpoint_refusals(
    http: httpx.AsyncClient,
    sandbox_state: SandboxState,
    grant: str,
    client: str,
    expected_status: int,
    expected_error: str,
) -> None:
    client_id = {
        "web": sandbox_state.config.web_client_id,
        "password": sandbox_state.config.password_client_id,
        "unknown": "nope",
    }[client]
    account = next(iter(sandbox_state.accounts.values()))
    answer = await http.post(
        "/oauth/token",
        json={
            "grant_type": grant,
            "client_id": client_id,
            "username": account.user.username,
            "password": account.password,
        },
    )
    assert answer.status_code == expected_status
    assert answer.json()["error"] == expected_error
    if expected_error == "unauthorized_client" and grant == "password":
        assert answer.json()["error_description"] == (
            "Grant type 'password' not allowed for the client."
        )


async def test_wrong_password_and_missing_parameters(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    account = next(iter(sandbox_state.accounts.values()))
    wrong = await http.post(
        "/oauth/token",
        json={
            "grant_type": "password",
            "client_id": sandbox_state.config.password_client_id,
            "username": account.user.username,
            "password": account.password + "x",
        },
    )
    assert wrong.status_code == 403
    assert wrong.json() == {
        "error": "invalid_grant",
        "error_description": "Wrong email or password.",
    }
    missing = await http.post("/oauth/token", json={"client_id": "x"})
    assert missing.status_code == 400
    assert missing.json()["error_description"] == "Missing required parameter: grant_type"
    not_json = await http.post(
        "/oauth/token", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["error"] == "invalid_request"


async def _pkce_code(
    http: httpx.AsyncClient,
    state: SandboxState,
    verifier: str,
    *,
    password: str | None = None,
    send_csrf: bool = True,
) -> httpx.Response:
    """Walk the web login like a script does; returns the redirect that carries the code
    (or the first answer that is not a success)."""
    account = next(iter(state.accounts.values()))
    common = {
        "client_id": state.config.web_client_id,
        "audience": "https://api.onepeloton.com/",
        "scope": SCOPE,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "nonce": "nonce-1",
        "code_challenge": _challenge(verifier),
        "code_challenge_method": "S256",
    }
    page = await http.get(
        "/authorize",
        params={**common, "response_mode": "query", "state": "client-state-42"},
        follow_redirects=True,
    )
    assert page.status_code == 200
    assert page.url.path == "/login"
    login_state = parse_qs(page.url.query.decode())["state"][0]
    csrf = http.cookies.get("_csrf", path="/usernamepassword/login")
    assert csrf
    if not send_csrf:
        http.cookies.clear()
    form_page = await http.post(
        "/usernamepassword/login",
        json={
            **common,
            "tenant": "peloton-prod",
            "_csrf": csrf,
            "state": login_state,
            "_intstate": "deprecated",
            "username": account.user.username,
            "password": password or account.password,
            "connection": "pelo-user-password",
        },
        headers={"Origin": str(http.base_url), "Referer": str(page.url)},
    )
    if form_page.status_code != 200:
        return form_page
    form = lxml_html.fromstring(form_page.text).forms[0]
    assert form.action.endswith("/login/callback")
    fields = dict(form.fields)
    assert set(fields) == {"wa", "wresult", "wctx"}
    answer = await http.post(form.action, data=fields)
    while answer.status_code in (301, 302, 303) and "code=" not in answer.headers["location"]:
        answer = await http.get(answer.headers["location"])
    return answer


async def test_pkce_login_end_to_end(http: httpx.AsyncClient, sandbox_state: SandboxState) -> None:
    verifier = secrets.token_urlsafe(64)
    redirect = await _pkce_code(http, sandbox_state, verifier)
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"] == ["client-state-42"]
    exchange = {
        "grant_type": "authorization_code",
        "client_id": sandbox_state.config.web_client_id,
        "code_verifier": verifier,
        "code": query["code"][0],
        "redirect_uri": REDIRECT_URI,
    }
    tokens = await http.post("/oauth/token", json=exchange)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["refresh_token"]
    assert _claims(body["id_token"])["nonce"] == "nonce-1"
    me = await http.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["id"] == user_id(sandbox_state)
    reused = await http.post("/oauth/token", json=exchange)
    assert reused.status_code == 403
    assert reused.json()["error"] == "invalid_grant"


async def test_pkce_rejects_a_wrong_verifier(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    redirect = await _pkce_code(http, sandbox_state, secrets.token_urlsafe(64))
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    answer = await http.post(
        "/oauth/token",
        json={
            "grant_type": "authorization_code",
            "client_id": sandbox_state.config.web_client_id,
            "code_verifier": secrets.token_urlsafe(64),
            "code": code,
            "redirect_uri": REDIRECT_URI,
        },
    )
    assert answer.status_code == 403
    assert answer.json() == {
        "error": "invalid_grant",
        "error_description": "Failed to verify code verifier",
    }


async def test_web_login_wrong_password_and_missing_csrf(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    wrong = await _pkce_code(http, sandbox_state, "v" * 64, password="not-it")
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_user_password"
    no_cookie = await _pkce_code(http, sandbox_state, "v" * 64, send_csrf=False)
    assert no_cookie.status_code == 403
    assert no_cookie.json()["code"] == "invalid_csrf"


async def test_authorize_refuses_unknown_redirects_and_plain_pkce(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    base = {
        "client_id": sandbox_state.config.web_client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "code_challenge": "abc",
        "code_challenge_method": "S256",
    }
    assert (await http.get("/authorize", params=base)).status_code == 302
    evil = await http.get("/authorize", params={**base, "redirect_uri": "https://evil.invalid/cb"})
    assert evil.status_code == 400
    plain = await http.get("/authorize", params={**base, "code_challenge_method": "plain"})
    assert plain.status_code == 400


async def test_expired_access_token_is_refused(
    http: httpx.AsyncClient, sandbox_state: SandboxState
) -> None:
    token = first_refresh_token((await http.get("/_sandbox/users")).json())
    access = (await _refresh(http, sandbox_state, token)).json()["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    assert (await http.get("/api/me", headers=headers)).status_code == 200
    await http.post("/_sandbox/clock", json={"advance_s": 172_801})
    expired = await http.get("/api/me", headers=headers)
    assert expired.status_code == 401
    assert expired.json()["status"] == 401
    assert "expired" in expired.json()["message"]
