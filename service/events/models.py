"""Operational events (an account needs re-linking, a destination was disabled...) and their
delivery to the webhooks subscribed to them, with every attempt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow
from service.dialect import JSONDocument


class EventType(StrEnum):
    """What a webhook can subscribe to (its ``events`` setting)."""

    WORKOUT_SYNCED = "workout.synced"  # a workout's file: the deliveries engine sends these
    ACCOUNT_NEEDS_REAUTH = "account.needs_reauth"
    DESTINATION_DISABLED = "destination.disabled"
    DESTINATION_CREDENTIALS_EXPIRING = "destination.credentials_expiring"
    DELIVERY_FAILED = "delivery.failed"


#: How the dashboard names each event type.
TITLES: dict[EventType, str] = {
    EventType.WORKOUT_SYNCED: "Workout synced (its files)",
    EventType.ACCOUNT_NEEDS_REAUTH: "Account needs re-linking",
    EventType.DESTINATION_DISABLED: "Destination disabled",
    EventType.DESTINATION_CREDENTIALS_EXPIRING: "Credentials expiring",
    EventType.DELIVERY_FAILED: "Delivery failed",
}

#: The event types stored in ``events`` and sent by the events job (not ``workout.synced``).
OPERATIONAL = (
    EventType.ACCOUNT_NEEDS_REAUTH,
    EventType.DESTINATION_DISABLED,
    EventType.DESTINATION_CREDENTIALS_EXPIRING,
    EventType.DELIVERY_FAILED,
)

#: A webhook without an ``events`` setting gets what it always got.
DEFAULT_SUBSCRIPTION = (EventType.WORKOUT_SYNCED,)


class EventDeliveryState(StrEnum):
    PENDING = "pending"  # waiting for next_attempt_at
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # out of retries, or refused for good


class EventAttemptOutcome(StrEnum):
    """What became of one attempt at an event delivery (``event_attempts.outcome``)."""

    SUCCEEDED = "succeeded"
    RETRY = "retry"  # failed; another attempt is scheduled
    FAILED = "failed"  # failed for good: out of retries, or refused


class Event(Base):
    """One thing that happened. Subject ids are plain columns, not foreign keys: the event
    outlives the account, destination or delivery it was about."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_type_id", "type", "id"),
        Index("ix_events_open", "resolved_at", "type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(50))  # EventType
    # The ``webhook-id`` receivers dedupe on, the same on every retry and every webhook.
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int | None] = mapped_column(Integer)
    destination_id: Mapped[int | None] = mapped_column(Integer)
    delivery_id: Mapped[int | None] = mapped_column(Integer)
    workout_id: Mapped[int | None] = mapped_column(Integer)
    # A condition found by a periodic check (one Garmin refresh token) is emitted once: the
    # key makes a second emit of it a no-op.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)  # the event's ``data``
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the condition cleared (the account re-linked, the destination enabled again...);
    # the dashboard shows the unresolved ones as problems.
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EventDelivery(Base):
    """One event to one subscribed webhook; leased, retried and logged like deliveries."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "destination_id"),
        Index("ix_event_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(20), default=EventDeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class EventAttempt(Base):
    """Every attempt at an event delivery (``outcome``: an :class:`EventAttemptOutcome`)."""

    __tablename__ = "event_attempts"
    __table_args__ = (Index("ix_event_attempts_delivery", "event_delivery_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_delivery_id: Mapped[int] = mapped_column(
        ForeignKey("event_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
