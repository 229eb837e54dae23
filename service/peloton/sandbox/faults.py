"""Error injection rules, and the request log with its counters.

A rule fires for the next ``count`` matching requests, or for a ``fraction`` of them (drawn
from a seeded generator, so runs repeat), optionally only under a ``path_prefix``. Admin
requests (``/_sandbox/...``) are never faulted nor logged.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

FaultKind = Literal[
    "rate_limit",  # 429 with Retry-After
    "server_error",  # 500/502/503
    "timeout",  # sleep delay_s before answering (longer than the client's timeout)
    "expire_tokens",  # expire every access token, then answer (so /api gives 401)
    "malformed_json",  # the real answer cut in half
    "empty_body",  # 200 with an empty body
    "cloudflare",  # Cloudflare's 403 "error code: 1015" page
    "cloudflare_json",  # the same as Cloudflare's JSON problem (to JSON clients), Retry-After
    "cloudflare_challenge",  # a 403 page from Cloudflare's edge with no error code
    "forbidden",  # Peloton's own JSON 403 (through Cloudflare: its headers too)
    "forbidden_garbled",  # a 403 whose body is that JSON cut in half; no Cloudflare marks
    "forbidden_empty",  # a 403 with an empty body; no Cloudflare marks
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclass(slots=True)
class Fault:
    """One injection rule."""

    id: int
    kind: FaultKind
    count: int | None = None
    fraction: float | None = None
    path_prefix: str | None = None
    status: int = 503
    retry_after: int = 60
    delay_s: float = 35.0
    hits: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultBook:
    """The active rules; the first matching rule wins."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._next_id = 1
        self.rules: list[Fault] = []

    def add(
        self,
        kind: FaultKind,
        *,
        count: int | None = None,
        fraction: float | None = None,
        path_prefix: str | None = None,
        status: int = 503,
        retry_after: int = 60,
        delay_s: float = 35.0,
    ) -> Fault:
        """A new rule; with neither ``count`` nor ``fraction`` it fires once."""
        if count is None and fraction is None:
            count = 1
        fault = Fault(
            self._next_id, kind, count, fraction, path_prefix, status, retry_after, delay_s
        )
        self._next_id += 1
        self.rules.append(fault)
        return fault

    def pick(self, path: str) -> Fault | None:
        """The rule that fires for a request to ``path`` now, if any (counts it)."""
        for fault in self.rules:
            if fault.path_prefix and not path.startswith(fault.path_prefix):
                continue
            if fault.fraction is not None and self._rng.random() >= fault.fraction:
                continue
            fault.hits += 1
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.rules.remove(fault)
            return fault
        return None

    def remove(self, fault_id: int) -> bool:
        kept = [f for f in self.rules if f.id != fault_id]
        found = len(kept) != len(self.rules)
        self.rules = kept
        return found

    def clear(self) -> None:
        self.rules.clear()


@dataclass(slots=True)
class RequestLog:
    """The last ``size`` requests and running counters."""

    size: int = 5000
    entries: deque[dict[str, Any]] = field(default_factory=deque)
    by_status: Counter[str] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)
    by_fault: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def record(
        self,
        method: str,
        path: str,
        query: str,
        status: int,
        duration_ms: float,
        route: str | None,
        fault: str | None,
    ) -> None:
        self.total += 1
        self.by_status[str(status)] += 1
        self.by_route[f"{method} {route or path}"] += 1
        if fault:
            self.by_fault[fault] += 1
        self.entries.append(
            {
                "time": round(time.time(), 3),
                "method": method,
                "path": path,
                "query": query,
                "status": status,
                "duration_ms": round(duration_ms, 2),
                "route": route,
                "fault": fault,
            }
        )
        while len(self.entries) > self.size:
            self.entries.popleft()

    def counters(self) -> dict[str, Any]:
        return {
            "requests": self.total,
            "by_status": dict(self.by_status),
            "by_route": dict(self.by_route),
            "by_fault": dict(self.by_fault),
        }

    def clear(self) -> None:
        self.entries.clear()
        self.by_status.clear()
        self.by_route.clear()
        self.by_fault.clear()
        self.total = 0
