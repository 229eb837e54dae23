"""Deliveries (one per workout × destination × format) and every attempt at one."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow


class DeliveryState(StrEnum):
    """``Delivery.state``, the API's delivery ``state`` and the ``state`` label of
    ``pelosync_deliveries``."""

    PENDING = "pending"  # waiting for next_attempt_at
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retries exhausted or a permanent error; can be retried by hand


class AttemptResult(StrEnum):
    """What became of one delivery attempt: ``DeliveryAttempt.outcome``, the API's attempt
    ``outcome`` and the ``outcome`` label of ``pelosync_delivery_attempts_total``."""

    SUCCEEDED = "succeeded"
    RETRY = "retry"  # failed; another attempt is scheduled
    FAILED = "failed"  # failed for good: not retryable, or out of retries
    POSTPONED = "postponed"  # rate limited: tried again later, not counted as a failure
    # The destination is gone or needs re-authorization: it is disabled, the delivery waits.
    PARKED = "parked"
    # Never stored: another worker had taken the delivery over, nothing was written.
    LEASE_LOST = "lease_lost"


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("workout_id", "destination_id", "format"),
        Index("ix_deliveries_due", "state", "next_attempt_at"),
        Index("ix_deliveries_destination_state", "destination_id", "state", "id"),
        Index("ix_deliveries_state_id", "state", "id"),  # the API's list by state
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workout_id: Mapped[int] = mapped_column(ForeignKey("workouts.id", ondelete="CASCADE"))
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id", ondelete="CASCADE"))
    format: Mapped[str] = mapped_column(String(10))
    # The message id receivers dedupe on: fixed at creation, the same on every retry.
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(20), default=DeliveryState.PENDING)  # DeliveryState
    # Every attempt ever made, manual retries included (the attempt log numbers them 1...n).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # ``attempts`` when the current retry budget began (a manual retry or replay gives a new
    # one): the retry schedule counts the attempts after it.
    budget_start: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_delivery", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))  # AttemptResult, never LEASE_LOST
    status_code: Mapped[int | None] = mapped_column(Integer)
    error_class: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)  # at most 4 KB


class SentWorkout(Base):
    """A Peloton workout once delivered to a destination in a format, kept when its account is
    deleted (which deletes its workouts and deliveries): linking the account again fetches the
    workout again, and it must not be sent again on its own (only a replay or send by hand)."""

    __tablename__ = "sent_workouts"

    peloton_workout_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    destination_id: Mapped[int] = mapped_column(
        ForeignKey("destinations.id", ondelete="CASCADE"), primary_key=True
    )
    format: Mapped[str] = mapped_column(String(10), primary_key=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    external_id: Mapped[str | None] = mapped_column(String(200))
