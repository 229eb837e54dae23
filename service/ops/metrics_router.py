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
    return [polls, synced, peloton, deliveries, accounts, queue]


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
