"""A small fake of Peloton for the client tests: Auth0 (token endpoint and the classic web login
with its _csrf cookie and hidden form) plus a few /api routes, served by Starlette.

It checks what a real server would (client ids, PKCE verifier, csrf cookie against body, bearer
tokens) and counts every call, so tests can assert on what the client sent.

Why this and not the sandbox (:mod:`service.peloton.sandbox`, which the sync, engine, API and
journey tests use): the client tests need knobs a product server should not carry (holding a
refresh until racing requests got their 401s, turning token rotation off, recording what it found
wrong in each request) and a tiny, fixed world whose every call they count. The sandbox is the
realistic Peloton (generated workouts, paging, faults); ``tests/peloton/test_against_sandbox.py``
runs the client against it too. Answers no server gives on purpose are in
``test_auth_mock.py``'s :class:`MockPeloton` (httpx.MockTransport).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

WEB_CLIENT = "web-client-id"
PASSWORD_CLIENT = "password-client-id"
USER_ID = "0123456789abcdef0123456789abcdef"
USERNAME = "rider@example.com"
PASSWORD = "correct horse battery staple"
TTL_S = 172800


def workout_id(n: int) -> str:
    return f"{n:032x}"


def make_workout(n: int, created_at: int, *, status: str = "COMPLETE") -> dict[str, Any]:
    """A list item / workout as Peloton shapes it (with an unknown field to test tolerance)."""
    return {
        "id": workout_id(n),
        "user_id": USER_ID,
        "created_at": created_at,
        "start_time": created_at + 60,
        "end_time": created_at + 60 + 1200,
        "status": status,
        "fitness_discipline": "cycling",
        "timezone": "Etc/GMT+5",
        "total_work": 123456.5,
        "some_new_field": {"kept": True},
        "ride": {
            "id": f"{n + 1:031x}f",
            "title": f"20 min Ride {n}",
            "duration": 1200,
            "instructor": {"id": "1" * 32, "name": "A. Coach"},
        },
    }


@dataclass
class FakePeloton:
    """State and knobs of the fake. Tokens are plain random strings."""

    workouts: list[dict[str, Any]] = field(default_factory=list)  # newest first
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> client id
    calls: Counter[str] = field(default_factory=Counter)
    api_requests: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # what the fake found wrong in requests
    rotate_refresh_tokens: bool = True
    #: The refresh handler waits until this many API 401s were served (to line up racers).
    hold_refresh_until_401s: int = 0
    unauthorized_served: int = 0
    # web-login transactions
    transactions: dict[str, dict[str, str]] = field(default_factory=dict)  # internal state ->
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    wresults: dict[str, str] = field(default_factory=dict)
    set_csrf_cookie: bool = True
    missing_rides: set[str] = field(default_factory=set)
    #: (status, body) answers the API serves first, before checking anything.
    scripted: list[tuple[int, bytes]] = field(default_factory=list)
    #: Every token ever issued (to look for leaks).
    issued: list[str] = field(default_factory=list)

    def issue(self, client_id: str) -> dict[str, Any]:
        access = "at-" + secrets.token_hex(8)
        refresh = "rt-" + secrets.token_hex(8)
        id_token = "id-" + secrets.token_hex(8)
        self.access_tokens.add(access)
        self.refresh_tokens[refresh] = client_id
        self.issued += [access, refresh, id_token]
        return {
            "access_token": access,
            "refresh_token": refresh,
            "id_token": id_token,
            "scope": "offline_access openid",
            "token_type": "Bearer",
            "expires_in": TTL_S,
        }

    def seed_tokens(self, client_id: str = WEB_CLIENT) -> tuple[str, str]:
        issued = self.issue(client_id)
        return issued["access_token"], issued["refresh_token"]

    def check(self, condition: bool, problem: str) -> None:
        if not condition:
            self.errors.append(problem)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/oauth/token", self.token, methods=["POST"]),
                Route("/authorize", self.authorize),
                Route("/login", self.login_page),
                Route("/usernamepassword/login", self.credentials, methods=["POST"]),
                Route("/login/callback", self.login_callback, methods=["POST"]),
                Route("/authorize/resume", self.resume),
                Route("/callback", self.app_callback),
                Route("/api/me", self.me),
                Route("/api/user/{user_id}/settings", self.settings),
                Route("/api/user/{user_id}/workouts", self.list_workouts),
                Route("/api/workout/{workout_id}", self.workout),
                Route("/api/workout/{workout_id}/performance_graph", self.graph),
                Route("/api/ride/{ride_id}/details", self.ride_details),
            ]
        )

    # --- Auth0 ----------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        body = await request.json()
        grant = body.get("grant_type")
        self.calls[f"token:{grant}"] += 1
        refused = JSONResponse(
            {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."},
            status_code=403,
        )
        if grant == "password":
            self.check(body.get("client_id") == PASSWORD_CLIENT, "password grant: client id")
            self.check(body.get("scope") == "offline_access openid", "password grant: scope")
            if body.get("username") != USERNAME or body.get("password") != PASSWORD:
                return JSONResponse(
                    {"error": "invalid_grant", "error_description": "Wrong email or password."},
                    status_code=403,
                )
            return JSONResponse(self.issue(PASSWORD_CLIENT))
        if grant == "refresh_token":
            for _ in range(5000):  # bounded, so a broken client fails instead of hanging
                if self.unauthorized_served >= self.hold_refresh_until_401s:
                    break
                await asyncio.sleep(0.001)
            client = self.refresh_tokens.get(body.get("refresh_token", ""))
            if client is None or client != body.get("client_id"):
                return refused
            issued = self.issue(client)
            if self.rotate_refresh_tokens:
                del self.refresh_tokens[body["refresh_token"]]
            else:
                del self.refresh_tokens[issued.pop("refresh_token")]
            return JSONResponse(issued)
        if grant == "authorization_code":
            code = self.codes.pop(body.get("code", ""), None)
            if code is None:
                return JSONResponse({"error": "invalid_grant"}, status_code=403)
            verifier = body.get("code_verifier", "").encode()
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest())
            self.check(challenge.rstrip(b"=").decode() == code["challenge"], "PKCE verifier")
            self.check(body.get("client_id") == WEB_CLIENT, "code exchange: client id")
            self.check(body.get("redirect_uri") == code["redirect_uri"], "code: redirect_uri")
            return JSONResponse(self.issue(WEB_CLIENT))
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)

    async def authorize(self, request: Request) -> Response:
        self.calls["authorize"] += 1
        q = request.query_params
        self.check(q.get("client_id") == WEB_CLIENT, "authorize: client id")
        self.check(q.get("code_challenge_method") == "S256", "authorize: S256")
        self.check(q.get("response_type") == "code", "authorize: response_type")
        for name in ("state", "nonce", "code_challenge", "redirect_uri", "audience", "scope"):
            self.check(bool(q.get(name)), f"authorize: {name}")
        internal = secrets.token_urlsafe(8)
        self.transactions[internal] = {
            "state": q.get("state", ""),
            "challenge": q.get("code_challenge", ""),
            "redirect_uri": q.get("redirect_uri", ""),
        }
        return RedirectResponse(f"/login?{urlencode({'state': internal})}", status_code=302)

    async def login_page(self, request: Request) -> Response:
        self.calls["login_page"] += 1
        response = HTMLResponse("<html><body>Log in</body></html>")
        response.set_cookie("did", "device", path="/")
        if self.set_csrf_cookie:
            csrf = "csrf-" + request.query_params.get("state", "")
            response.set_cookie("_csrf", csrf, path="/usernamepassword/login", httponly=True)
        return response

    async def credentials(self, request: Request) -> Response:
        self.calls["usernamepassword"] += 1
        body = await request.json()
        transaction = self.transactions.get(body.get("state", ""))
        if transaction is None:
            self.errors.append("credentials: unknown state")
            return JSONResponse({"code": "invalid_state"}, status_code=400)
        self.check(request.cookies.get("_csrf") == body.get("_csrf"), "csrf cookie != body")
        self.check(body.get("_csrf") == "csrf-" + body["state"], "csrf value")
        self.check(request.headers.get("auth0-client") is not None, "Auth0-Client header")
        self.check(body.get("code_challenge") == transaction["challenge"], "credentials: PKCE")
        self.check(body.get("connection") == "pelo-user-password", "connection")
        self.check(body.get("tenant") == "peloton-prod", "tenant")
        if body.get("username") != USERNAME or body.get("password") != PASSWORD:
            return JSONResponse(
                {
                    "name": "ValidationError",
                    "code": "invalid_user_password",
                    "description": "Wrong email or password.",
                    "statusCode": 400,
                },
                status_code=401,
            )
        wresult = secrets.token_urlsafe(8)
        self.wresults[wresult] = body["state"]
        wctx = json.dumps({"strategy": "auth0", "state": body["state"]})
        return HTMLResponse(
            '<form method="post" name="hiddenform" action="/login/callback">'
            '<input type="hidden" name="wa" value="wsignin1.0">'
            f'<input type="hidden" name="wresult" value="{wresult}">'
            f'<input type="hidden" name="wctx" value=\'{wctx}\'>'
            '<noscript><input type="submit" value="Submit"></noscript></form>'
        )

    async def login_callback(self, request: Request) -> Response:
        self.calls["login_callback"] += 1
        self.check(
            request.headers.get("content-type") == "application/x-www-form-urlencoded",
            "callback: content type",
        )
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        self.check(form.get("wa") == "wsignin1.0", "callback: wa")
        self.check(json.loads(str(form.get("wctx")))["strategy"] == "auth0", "callback: wctx")
        internal = self.wresults.pop(str(form.get("wresult")), None)
        if internal is None:
            return HTMLResponse("Oops", status_code=400)
        return RedirectResponse(f"/authorize/resume?state={internal}", status_code=302)

    async def resume(self, request: Request) -> Response:
        transaction = self.transactions.pop(request.query_params.get("state", ""), None)
        if transaction is None:
            return HTMLResponse("Oops", status_code=400)
        code = secrets.token_urlsafe(8)
        self.codes[code] = transaction
        query = urlencode({"code": code, "state": transaction["state"]})
        return RedirectResponse(f"{transaction['redirect_uri']}?{query}", status_code=302)

    async def app_callback(self, request: Request) -> Response:
        self.calls["app_callback"] += 1  # the client must stop before requesting this
        return HTMLResponse("members site", status_code=500)

    # --- API ------------------------------------------------------------------------------

    def _gate(self, request: Request) -> Response | None:
        """Records the request; answers a scripted failure or a 401 if there is one to give."""
        self.api_requests.append(request)
        if self.scripted:
            status, body = self.scripted.pop(0)
            return Response(body, status_code=status)
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and header[7:] in self.access_tokens:
            return None
        self.unauthorized_served += 1
        return JSONResponse({"status": 401, "message": "Login required"}, status_code=401)

    async def me(self, request: Request) -> Response:
        if (refusal := self._gate(request)) is not None:
            return refusal
        return JSONResponse({"id": USER_ID, "username": "rider", "created_at": 1500000000})

    async def settings(self, request: Request) -> Response:
        if (refusal := self._gate(request)) is not None:
            return refusal
        return JSONResponse({"distance_unit": "metric", "weight_unit": "kg"})

    async def list_workouts(self, request: Request) -> Response:
        if (refusal := self._gate(request)) is not None:
            return refusal
        limit = int(request.query_params["limit"])
        page = int(request.query_params["page"])
        total = len(self.workouts)
        page_count = math.ceil(total / limit)
        data = self.workouts[page * limit : (page + 1) * limit]
        return JSONResponse(
            {
                "data": data,
                "limit": limit,
                "page": page,
                "total": total,
                "count": len(data),
                "page_count": page_count,
                "show_previous": page > 0,
                "show_next": page + 1 < page_count,
                "sort_by": "-created_at,-pk",
                "summary": {},
            }
        )

    def _find(self, workout_id: str) -> dict[str, Any] | None:
        return next((w for w in self.workouts if w["id"] == workout_id), None)

    async def workout(self, request: Request) -> Response:
        if (refusal := self._gate(request)) is not None:
            return refusal
        workout = self._find(request.path_params["workout_id"])
        if workout is None:
            return JSONResponse({"status": 404}, status_code=404)
        return JSONResponse(workout)

    async def graph(self, request: Request) -> Response:
        if (refusal := self._gate(request)) is not None:
            return refusal
        every_n = int(request.query_params["every_n"])
        offsets = list(range(0, 20, every_n))
        return JSONResponse(
            {
                "duration": 20,
                "seconds_since_pedaling_start": offsets,
                "metrics": [{"slug": "heart_rate", "values": [120] * len(offsets)}],
            }
        )

    async def ride_details(self, request: Request) -> Response:
        if (refusal := self._gate(request)) is not None:
            return refusal
        ride_id = request.path_params["ride_id"]
        if ride_id in self.missing_rides:
            return JSONResponse({"status": 404}, status_code=404)
        return JSONResponse({"ride": {"id": ride_id}, "segments": {"segment_list": []}})
