"""ASGI middleware: per-request latency, error injection and the request log.

It wraps the whole app (Auth0 and API routes alike); ``/_sandbox/...`` admin calls pass through
untouched so tests can always steer the sandbox, whatever faults are armed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.peloton.sandbox.faults import Fault
from service.peloton.sandbox.state import SandboxState
from service.peloton.sandbox.web import forbidden

ADMIN_PREFIX = "/_sandbox"

_GATEWAY_PAGE = (
    "<html><head><title>{code} {reason}</title></head><body>"
    "<center><h1>{code} {reason}</h1></center><hr><center>nginx</center></body></html>"
)
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
}


_CLOUDFLARE = {"Server": "cloudflare", "CF-RAY": "8f0000000000sbx-EWR"}
_CHALLENGE_PAGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    "<noscript>Enable JavaScript and cookies to continue</noscript></body></html>"
)
#: What Peloton's API answers when it refuses a resource (another user's data, a private
#: profile): the shape of every error of its own.
FORBIDDEN_BODY = forbidden().body()


def _cloudflare_problem(retry_after: int) -> dict[str, Any]:
    """Cloudflare's RFC 9457 problem for error 1015, as sent to clients that accept JSON."""
    return {
        "type": "https://developers.cloudflare.com/support/troubleshooting/http-status-codes/"
        "cloudflare-1xxx-errors/error-1015/",
        "status": 403,
        "title": "Error 1015: You are being rate limited",
        "detail": "The site owner has set a rate limit that this client exceeded.",
        "instance": "8f0000000000sbx",
        "error_code": 1015,
        "error_name": "rate_limited",
        "error_category": "rate_limit",
        "retryable": True,
        "retry_after": retry_after,
        "owner_action_required": False,
        "ray_id": "8f0000000000sbx",
    }


def _fault_response(fault: Fault) -> Response | None:
    """The canned answer of a fault that replaces the real one (None: the app still answers)."""
    if fault.kind == "rate_limit":
        body = {"status": 429, "error_code": 0, "message": "Too Many Requests"}
        return JSONResponse(body, 429, headers={"Retry-After": str(fault.retry_after)})
    if fault.kind == "cloudflare":
        return PlainTextResponse("error code: 1015", 403, headers=_CLOUDFLARE)
    if fault.kind == "cloudflare_json":
        headers = {**_CLOUDFLARE, "Retry-After": str(fault.retry_after)}
        return JSONResponse(_cloudflare_problem(fault.retry_after), 403, headers=headers)
    if fault.kind == "cloudflare_challenge":
        return Response(_CHALLENGE_PAGE, 403, headers=_CLOUDFLARE, media_type="text/html")
    if fault.kind == "forbidden":
        return JSONResponse(FORBIDDEN_BODY, 403, headers=_CLOUDFLARE)
    if fault.kind == "forbidden_garbled":
        whole = json.dumps(FORBIDDEN_BODY).encode()
        return Response(whole[: len(whole) // 2], 403, media_type="application/json")
    if fault.kind == "forbidden_empty":
        return Response(b"", 403)
    if fault.kind == "server_error":
        status = fault.status if fault.status in _REASONS else 503
        if status == 500:
            body = {"status": 500, "error_code": 0, "message": "Internal server error"}
            return JSONResponse(body, 500)
        page = _GATEWAY_PAGE.format(code=status, reason=_REASONS[status])
        return Response(page, status, media_type="text/html")
    return None


class SandboxMiddleware:
    """Applies the state's latency and fault rules, and logs every non-admin request."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        state = self.state
        started = time.perf_counter()
        status = 500
        fault = state.faults.pick(scope["path"])

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await state.sleep(state.latency_ms / 1000)
            await self._answer(fault, scope, receive, observe)
        finally:
            route = scope.get("route")
            state.log.record(
                scope["method"],
                scope["path"],
                scope.get("query_string", b"").decode("latin-1"),
                status,
                (time.perf_counter() - started) * 1000,
                getattr(route, "path", None),
                fault.kind if fault else None,
            )

    async def _answer(
        self, fault: Fault | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if fault is None:
            await self.app(scope, receive, send)
            return
        canned = _fault_response(fault)
        if canned is not None:
            await canned(scope, receive, send)
        elif fault.kind == "timeout":
            await self.state.sleep(fault.delay_s)
            await self.app(scope, receive, send)
        elif fault.kind == "expire_tokens":
            self.state.tokens.expire_all()
            await self.app(scope, receive, send)
        else:
            await self._mangled(scope, receive, send, empty=fault.kind == "empty_body")

    async def _mangled(self, scope: Scope, receive: Receive, send: Send, *, empty: bool) -> None:
        """Run the app, then send its body cut in half (or nothing, with a 200)."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        body = b"" if empty else body[: max(1, len(body) // 2)]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        status = 200 if empty else start.get("status", 200)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
