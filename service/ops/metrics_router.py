"""``/metrics``: this process's metrics (:mod:`service.metrics`) and the database's."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from service.auth.deps import current_key
from service.deps import RuntimeDep, SessionDep
from service.metrics import exposition
from service.openapi import errors
from service.ops.repository import MetricsRepository


async def _database_families(runtime: RuntimeDep, session: SessionDep) -> list[Metric]:
    repo = MetricsRepository(session)
    now = runtime.clock()
    polls = CounterMetricFamily(
        "pelosync_polls",
        "Polls of Peloton accounts (all replicas), by outcome.",
        labels=["outcome"],
    )
    for outcome, count in await repo.polls_by_outcome():
        polls.add_metric([outcome], count)
    synced = CounterMetricFamily(
        "pelosync_workouts_synced",
        "Workouts stored (all replicas), by discipline.",
        labels=["discipline"],
    )
    for discipline, count in await repo.workouts_by_discipline():
        synced.add_metric([discipline], count)
    peloton = CounterMetricFamily(
        "pelosync_peloton_errors",
        "Polls ended by a Peloton error, by error class.",
        labels=["class"],
    )
    for error_class, count in sorted((await repo.peloton_errors()).items()):
        peloton.add_metric([error_class], count)
    deliveries = GaugeMetricFamily(
        "pelosync_deliveries", "Deliveries by state and destination kind.", labels=["state", "kind"]
    )
    for state, kind, count in await repo.deliveries_by_state_and_kind():
        deliveries.add_metric([state, kind], count)
    accounts = GaugeMetricFamily(
        "pelosync_accounts", "Linked accounts by status.", labels=["status", "paused"]
    )
    for status, paused, count in await repo.accounts_by_status():
        accounts.add_metric([status, str(paused).lower()], count)
    queue = GaugeMetricFamily(
        "pelosync_queue_depth", "Work due now and not yet taken, by queue.", labels=["queue"]
    )
    queue.add_metric(["deliveries"], await repo.due_deliveries(now))
    queue.add_metric(["accounts"], await repo.due_accounts(now))
    return [polls, synced, peloton, deliveries, accounts, queue, *await _budget_families(runtime)]


async def _budget_families(runtime: RuntimeDep) -> list[Metric]:
    """The Peloton request budget of this replica's egress address (all replicas' requests)."""
    budget = await runtime.budget.view()
    labels = [budget.egress]
    requests = CounterMetricFamily(
        "pelosync_peloton_requests",
        "Peloton API requests granted by the request budget, by egress and priority.",
        labels=["egress", "priority"],
    )
    for priority, count in sorted(budget.requests.items()):
        requests.add_metric([budget.egress, priority], count)
    throttles = CounterMetricFamily(
        "pelosync_peloton_throttles",
        "Times Peloton throttled the egress address (each pauses every request from it).",
        labels=["egress"],
    )
    throttles.add_metric(labels, budget.throttles)
    rate = GaugeMetricFamily(
        "pelosync_peloton_budget_rps",
        "The request budget (PELOSYNC_PELOTON_MAX_RPS).",
        labels=["egress"],
    )
    rate.add_metric(labels, budget.rate)
    paused = GaugeMetricFamily(
        "pelosync_peloton_paused",
        "1 while requests are paused after throttling.",
        labels=["egress"],
    )
    paused.add_metric(labels, 1 if budget.paused_until else 0)
    until = GaugeMetricFamily(
        "pelosync_peloton_paused_until_seconds",
        "When the current pause ends (Unix time; 0 if none).",
        labels=["egress"],
    )
    until.add_metric(labels, budget.paused_until.timestamp() if budget.paused_until else 0)
    backlog = GaugeMetricFamily(
        "pelosync_peloton_budget_backlog_seconds",
        "How far ahead request slots are already granted (a queue behind the budget).",
        labels=["egress"],
    )
    backlog.add_metric(labels, budget.backlog_s)
    return [requests, throttles, rate, paused, until, backlog]


def _process_families(request: Request, runtime: RuntimeDep) -> list[Metric]:
    reclaims = CounterMetricFamily(
        "pelosync_lease_reclaims",
        "Leases this process took over from a worker whose lease had lapsed.",
        labels=["what"],
    )
    poll_job = getattr(request.app.state, "poll_job", None)
    reclaims.add_metric(["accounts"], getattr(poll_job, "reclaims", 0))
    families: list[Metric] = [reclaims]
    if runtime.heartbeat is not None:
        age = GaugeMetricFamily(
            "pelosync_scheduler_heartbeat_age_seconds", "Seconds since the scheduler last ticked."
        )
        age.add_metric([], (runtime.clock() - runtime.heartbeat).total_seconds())
        families.append(age)
    return families


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(current_key)],
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
        **errors(401),
    },
)
async def metrics(request: Request, runtime: RuntimeDep, session: SessionDep) -> Response:
    """Prometheus metrics (text format). Needs an API key; a read-only one is enough."""
    families = await _database_families(runtime, session) + _process_families(request, runtime)
    return Response(exposition(families), media_type=CONTENT_TYPE_LATEST)
