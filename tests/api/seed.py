"""Rows written straight into the database, for list and filter tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.models import Account
from service.deliveries.models import Delivery, DeliveryAttempt
from service.deliveries.repository import new_message_id
from service.destinations.models import Destination
from service.peloton.sandbox import generate_bundle
from service.workouts.models import Workout

START = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)


def account(user: str) -> Account:
    return Account(
        label=user,
        peloton_user_id=user,
        auth_method="token",
        sync_since=START - timedelta(days=365),
        pending_workout_ids=[],
    )


def workout(account_id: int, index: int, discipline: str, **values: Any) -> Workout:
    bundle = generate_bundle(index, "outdoor_run" if discipline == "running" else "cycling_class")
    return Workout(
        account_id=account_id,
        peloton_workout_id=f"w{account_id}-{index:04d}",
        discipline=discipline,
        title=f"Workout {index}",
        started_at=START + timedelta(hours=index),
        peloton_status="COMPLETE",
        has_gps=discipline == "running",
        raw_workout=bundle["workout"],
        raw_performance_graph=bundle["performance_graph"],
        raw_ride_details=bundle.get("ride_details"),
        **values,
    )


def delivery(workout_id: int, destination_id: int, fmt: str, state: str) -> Delivery:
    return Delivery(
        workout_id=workout_id,
        destination_id=destination_id,
        format=fmt,
        message_id=new_message_id(),
        state=state,
        attempts=1 if state != "pending" else 0,
    )


async def world(session: AsyncSession) -> dict[str, Any]:
    """Two accounts, 8 workouts (cycling and running), two destinations, deliveries in every
    state, and one attempt."""
    accounts = [account("u-a"), account("u-b")]
    session.add_all(accounts)
    destinations = [
        Destination(
            name="one", kind="webhook", config={"url": "https://a.example"}, formats=["fit"]
        ),
        Destination(name="two", kind="directory", config={"root": "/tmp"}, formats=["json"]),
    ]
    session.add_all(destinations)
    await session.flush()
    workouts = [workout(accounts[i % 2].id, i, "cycling" if i % 3 else "running") for i in range(8)]
    workouts[7].conversion_error = "broken bundle"
    session.add_all(workouts)
    await session.flush()
    states = {0: "succeeded", 1: "failed", 2: "pending", 3: "succeeded", 4: "failed"}
    deliveries = []
    for index, state in states.items():
        deliveries.append(delivery(workouts[index].id, destinations[0].id, "fit", state))
        deliveries.append(delivery(workouts[index].id, destinations[1].id, "json", "succeeded"))
    session.add_all(deliveries)
    await session.flush()
    session.add(
        DeliveryAttempt(
            delivery_id=deliveries[2].id,
            number=1,
            worker="w",
            started_at=START,
            duration_ms=12,
            outcome="failed",
            status_code=413,
            error="too large",
        )
    )
    await session.flush()
    return {
        "accounts": [a.id for a in accounts],
        "workouts": [w.id for w in workouts],
        "destinations": [d.id for d in destinations],
        "deliveries": [d.id for d in deliveries],
    }
