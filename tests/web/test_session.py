"""Signing in to the dashboard: the session cookie, its signature and expiry, CSRF tokens,
revoked keys, read-only keys, and the headers every page carries."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from httpx import ASGITransport
from sqlalchemy import select

from service.accounts.models import Account
from service.auth import service as keys
from service.auth.repository import ApiKeyRepository
from service.deliveries.models import Delivery
from service.destinations.models import Destination
from service.web import session as cookies
from tests.web.conftest import Site, csrf_of, fresh, page, sign_in

# Cookies, tokens and headers do not depend on the database: SQLite is enough here.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
PAGES = ("/", "/workouts", "/workouts/1", "/deliveries", "/destinations", "/accounts/1")


def cookie_header(response: httpx.Response, name: str) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    return header


@SQLITE_ONLY
async def test_every_page_needs_a_session(site: Site) -> None:
    for path in PAGES:
        response = await site.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login"), path
    response = await site.client.get("/workouts")
    assert response.headers["location"] == "/login?next=%2Fworkouts"
    response = await site.client.post("/accounts/1/pause", data={"csrf": "x"})
    assert response.status_code == 303 and response.headers["location"] == "/login"


@SQLITE_ONLY
async def test_signing_in_and_out(site: Site) -> None:
    client = site.client
    form = await client.get("/login")
    anonymous = cookie_header(form, cookies.COOKIE)
    for flag in ("HttpOnly", "Path=/", "SameSite=lax"):
        assert flag in anonymous
    assert "Secure" not in anonymous  # plain http here

    anonymous_sid = cookies.decode(
        site.runtime, client.cookies[cookies.COOKIE], site.runtime.clock()
    )
    wrong = await client.post("/login", data={"csrf": csrf_of(form), "key": "psk_" + "x" * 43})
    assert wrong.status_code == 401
    assert "not valid" in page(wrong).xpath("string(//p[@role='alert'])")
    assert (await client.get("/")).status_code == 303  # still signed out

    response = await client.post(
        "/login", data={"csrf": csrf_of(wrong), "key": site.keys.admin, "next": "/deliveries"}
    )
    assert response.status_code == 303 and response.headers["location"] == "/deliveries"
    signed = cookie_header(response, cookies.COOKIE)
    assert "HttpOnly" in signed and "SameSite=lax" in signed
    assert site.keys.admin not in signed
    session = cookies.decode(site.runtime, client.cookies[cookies.COOKIE], site.runtime.clock())
    assert session is not None and session.key_id == 1
    assert anonymous_sid is not None and session.sid != anonymous_sid.sid  # a new session id
    overview = await client.get("/")
    assert overview.status_code == 200
    assert page(overview).xpath("string(//div[@class='who']/span)") == "first admin key"
    assert (await client.get("/login")).headers["location"] == "/"  # already signed in

    out = await client.post("/logout", data={"csrf": csrf_of(overview)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert (await client.get("/")).status_code == 303


@SQLITE_ONLY
async def test_next_never_leaves_the_site(site: Site) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "evil"):
        async with _client(site) as client:
            form = await client.get("/login")
            response = await client.post(
                "/login", data={"csrf": csrf_of(form), "key": site.keys.admin, "next": target}
            )
            assert response.headers["location"] == "/", target


@SQLITE_ONLY
async def test_sign_in_needs_the_forms_own_token(site: Site) -> None:
    client = site.client
    response = await client.post("/login", data={"key": site.keys.admin})
    assert response.status_code == 403
    async with _client(site) as other:
        foreign = csrf_of(await other.get("/login"))
    await client.get("/login")
    response = await client.post("/login", data={"csrf": foreign, "key": site.keys.admin})
    assert response.status_code == 403
    assert "expired" in page(response).xpath("string(//p[@id='error-message'])")
    assert (await client.get("/")).status_code == 303


@SQLITE_ONLY
async def test_forged_expired_and_unknown_sessions_are_refused(site: Site) -> None:
    rt = site.runtime
    now = rt.clock()
    await sign_in(site.client, site.keys.admin)
    good = site.client.cookies[cookies.COOKIE]
    session = cookies.decode(rt, good, now)
    assert session is not None
    payload, mac = good.split(".")
    forged_payload = cookies.sign(rt, {"s": session.sid, "k": 2, "e": 2**40}).split(".")[0]
    other_key = SimpleNamespace(secrets=SimpleNamespace(derive_keys=lambda _p: [b"k" * 32]))
    expired = cookies.SessionData(session.sid, 1, int((now - timedelta(seconds=1)).timestamp()))
    refused = {
        "another session's signature": f"{forged_payload}.{mac}",
        "signed with another key": cookies.sign(
            other_key,  # type: ignore[arg-type]
            {"s": session.sid, "k": 1, "e": 2**40},
        ),
        "expired": cookies.encode(rt, expired),
        "another key id for the session": cookies.encode(
            rt, cookies.SessionData(session.sid, 2, session.expires)
        ),
        "a signed session never started here": cookies.encode(rt, cookies.new_session(1, now)),
        "an unknown key id": cookies.encode(rt, cookies.new_session(999, now)),
        "no key (the sign-in form's session)": cookies.encode(rt, cookies.new_session(None, now)),
        "garbage": "not-a-cookie",
        "a bad payload": cookies.sign(rt, {"s": session.sid, "k": "1", "e": 2**40}),
    }
    for why, value in refused.items():
        async with _client(site, {cookies.COOKIE: value}) as client:
            response = await client.get("/")
            assert response.status_code == 303, why
            assert response.headers["location"] == "/login", why
    async with _client(site, {cookies.COOKIE: good}) as client:
        assert (await client.get("/")).status_code == 200


@SQLITE_ONLY
async def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(site: Site) -> None:
    csrf = await sign_in(site.client, site.keys.admin)
    copied = site.client.cookies[cookies.COOKIE]
    async with _client(site, {cookies.COOKIE: copied}) as thief:
        assert (await thief.get("/workouts")).status_code == 200
        out = await site.client.post("/logout", data={"csrf": csrf})
        assert out.status_code == 303
        response = await thief.get("/workouts")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")
        # Not even to post a form whose token it had kept.
        response = await thief.post("/accounts/1/pause", data={"csrf": csrf})
        assert response.status_code == 303 and response.headers["location"] == "/login"
    # Signing in again is a new session; other sessions of the key were never touched.
    async with _client(site) as other:
        await sign_in(other, site.keys.admin)
        await sign_in(site.client, site.keys.admin)
        assert (await other.get("/")).status_code == 200


@SQLITE_ONLY
async def test_a_form_token_works_once(site: Site, seeded: dict[str, Any]) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    account = seeded["accounts"][0]
    overview = await client.get("/")
    token = csrf_of(overview)
    assert csrf_of(await client.get("/")) != token  # every page its own token
    first = await client.post(f"/accounts/{account}/pause", data={"csrf": token})
    assert first.status_code == 303
    again = await client.post(
        f"/accounts/{account}/resume",
        data={"csrf": token},
        headers={"referer": f"http://testserver/accounts/{account}"},
    )
    assert again.status_code == 409
    assert "already sent" in page(again).xpath("string(//p[@id='error-message'])")
    assert "nothing more was done" in page(again).xpath("string(//p[@id='error-message'])")
    back = page(again).xpath("//ul[@id='error-ways']//a/@href")
    assert back[0] == f"/accounts/{account}"  # back to the page the form was on
    async with site.runtime.sessions() as session:
        assert (await session.get(Account, account)).paused  # type: ignore[union-attr]
    # Reloading the answer of a form (the browser posts it again) adds nothing twice.
    export_root = site.runtime.settings.resolved_export_roots()[0] / "twice"
    form = {
        "csrf": await fresh(client),
        "kind": "directory",
        "name": "Twice",
        "root": str(export_root),
    }
    form |= {"formats": "json"}
    assert (await client.post("/destinations", data=form)).status_code == 303
    assert (await client.post("/destinations", data=form)).status_code == 409
    async with site.runtime.sessions() as session:
        names = (await session.execute(select(Destination.name))).scalars().all()
    assert names.count("Twice") == 1


@SQLITE_ONLY
async def test_a_revoked_key_is_signed_out_at_once(site: Site) -> None:
    client = site.client
    await sign_in(client, site.keys.read_only)
    assert (await client.get("/workouts")).status_code == 200
    async with site.runtime.sessions() as session, session.begin():
        row = await ApiKeyRepository(session).by_hash(keys.hash_key(site.keys.read_only))
        assert row is not None
        await keys.revoke(session, row.id, site.runtime.clock())
    response = await client.get("/workouts")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert 'pelosync_session=""' in cookie_header(response, cookies.COOKIE)  # cleared


@SQLITE_ONLY
async def test_forms_need_this_sessions_token(site: Site, seeded: dict[str, Any]) -> None:
    client = site.client
    csrf = await sign_in(client, site.keys.admin)
    now = site.runtime.clock()
    session = cookies.decode(site.runtime, client.cookies[cookies.COOKIE], now)
    assert session is not None
    expired = cookies.SessionData(session.sid, session.key_id, int(now.timestamp()) - 1)
    anonymous = cookies.new_session(None, now)
    account = seeded["accounts"][0]
    async with _client(site) as other:
        foreign = await sign_in(other, site.keys.admin)
    tokens = [
        "",
        foreign,
        csrf + "x",
        cookies.form_token(site.runtime, expired),
        cookies.form_token(site.runtime, anonymous),
        client.cookies[cookies.COOKIE],  # the cookie is no form token
    ]
    for data in [{}] + [{"csrf": token} for token in tokens]:
        response = await client.post(f"/accounts/{account}/pause", data=data)
        assert response.status_code == 403, data
    response = await client.post(f"/accounts/{account}/pause", data={"csrf": csrf})
    assert response.status_code == 303


@SQLITE_ONLY
async def test_read_only_keys_get_403_on_every_action(site: Site, seeded: dict[str, Any]) -> None:
    client = site.client
    csrf = await sign_in(client, site.keys.read_only)
    account, destination = seeded["accounts"][0], seeded["destinations"][0]
    delivery = seeded["deliveries"][2]
    posts = [
        "/accounts",
        f"/accounts/{account}/edit",
        f"/accounts/{account}/pause",
        f"/accounts/{account}/resume",
        f"/accounts/{account}/sync",
        f"/accounts/{account}/reauthenticate",
        f"/deliveries/{delivery}/retry",
        "/deliveries/replay",
        "/destinations",
        f"/destinations/{destination}/edit",
        f"/destinations/{destination}/test",
        f"/destinations/{destination}/enable",
        f"/destinations/{destination}/disable",
    ]
    for path in posts:
        response = await client.post(path, data={"csrf": csrf, "start": "2000-01-01"})
        assert response.status_code == 403, path
        assert "read-only" in page(response).xpath("string(//p[@id='error-message'])")
    for path in (f"/destinations/{destination}/strava/connect", "/destinations/new?kind=webhook"):
        assert (await client.get(path)).status_code == 403, path
    async with site.runtime.sessions() as session:
        assert (await session.get(Delivery, delivery)).state == "failed"  # type: ignore[union-attr]
        assert (await session.get(Destination, destination)).enabled  # type: ignore[union-attr]
    # Signing out is not a change: read-only keys may.
    assert (await client.post("/logout", data={"csrf": csrf})).status_code == 303


@SQLITE_ONLY
async def test_cookies_are_secure_over_https(site: Site) -> None:
    async with _client(site, base_url="https://testserver") as client:
        response = await client.get("/login")
        assert "Secure" in cookie_header(response, cookies.COOKIE)


@SQLITE_ONLY
async def test_pages_carry_security_headers(site: Site) -> None:
    await sign_in(site.client, site.keys.admin)
    for path in ("/login", "/", "/workouts/999"):
        response = await site.client.get(path)
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
    assert (await site.client.get("/static/style.css")).status_code == 200


@pytest.mark.parametrize("size", [10, 4096])
def test_cookie_values_round_trip(size: int) -> None:
    rt: Any = SimpleNamespace(
        secrets=SimpleNamespace(derive_keys=lambda _p: [b"n" * 32, b"o" * 32])
    )
    token = cookies.sign(rt, {"t": "x" * size})
    assert cookies.unsign(rt, token) == ({"t": "x" * size} if len(token) <= 1024 else None)
    # Signed with an older key (second in the list): still accepted after a rotation.
    old: Any = SimpleNamespace(secrets=SimpleNamespace(derive_keys=lambda _p: [b"o" * 32]))
    assert cookies.unsign(rt, cookies.sign(old, {"t": "y"})) == {"t": "y"}


def _client(
    site: Site, cookie_values: dict[str, str] | None = None, base_url: str = "http://testserver"
) -> httpx.AsyncClient:
    """Another browser on the same app (its own cookie jar)."""
    transport = ASGITransport(app=site.app)
    return httpx.AsyncClient(transport=transport, base_url=base_url, cookies=cookie_values)
