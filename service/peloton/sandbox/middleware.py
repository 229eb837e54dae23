"""ASGI middleware: per-request latency, error injection and the request log.

It wraps the whole app (Auth0 and API routes alike); ``/_sandbox/...`` admin calls pass through
untouched so tests can always steer the sandbox, whatever faults are armed.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.peloton.sandbox.faults import Fault
from service.peloton.sandbox.state import SandboxState

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


def _fault_response(fault: Fault) -> Response | None:
    """The canned answer of a fault that replaces the real one (None: the app still answers)."""
    if fault.kind == "rate_limit":
        body = {"status": 429, "error_code": 0, "message": "Too Many Requests"}
        return JSONResponse(body, 429, headers={"Retry-After": str(fault.retry_after)})
    if fault.kind == "cloudflare":
        headers = {"Server": "cloudflare", "CF-RAY": "8f0000000000sbx-EWR"}
        return PlainTextResponse("error code: 1015", 403, headers=headers)
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
