"""``/metrics`` for Prometheus.

Two sources:

* this process, as it happens: delivery attempts and their latency by destination kind, HTTP
  requests and their latency by route, account lease reclaims;
* the database, read at each scrape, so every replica reports the same cluster-wide figures:
  polls by outcome, workouts synced, deliveries by state and kind, Peloton errors by class,
  queue depth (deliveries and accounts due now).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

DELIVERY_ATTEMPTS = Counter(
    "pelosync_delivery_attempts",
    "Delivery attempts made by this process, by destination kind and outcome.",
    ["kind", "outcome"],
    registry=None,
)
ATTEMPT_SECONDS = Histogram(
    "pelosync_delivery_attempt_duration_seconds",
    "How long delivery attempts took (conversion included), by destination kind.",
    ["kind"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
HTTP_REQUESTS = Counter(
    "pelosync_http_requests",
    "API requests served by this process, by route and status.",
    ["method", "route", "status"],
    registry=None,
)
HTTP_SECONDS = Histogram(
    "pelosync_http_request_duration_seconds",
    "API request latency, by route.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
PROCESS_METRICS = (DELIVERY_ATTEMPTS, ATTEMPT_SECONDS, HTTP_REQUESTS, HTTP_SECONDS)


def observe_attempt(kind: str, outcome: str, seconds: float) -> None:
    """Count one delivery attempt (called by the delivery runner)."""
    DELIVERY_ATTEMPTS.labels(kind=kind, outcome=outcome).inc()
    ATTEMPT_SECONDS.labels(kind=kind).observe(seconds)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_SECONDS.labels(method=method, route=route).observe(seconds)


@dataclass(eq=False)  # registries keep collectors in sets
class _Snapshot(Collector):
    """Metric families computed before the scrape (collectors must not do I/O)."""

    families: list[Metric] = field(default_factory=list)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def exposition(families: list[Metric]) -> bytes:
    """This process's metrics and ``families`` in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    for metric in PROCESS_METRICS:
        registry.register(metric)
    registry.register(_Snapshot(families))
    return generate_latest(registry)
