"""Workouts fetched from Peloton: one row per Peloton workout per account."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.convert.formats import file_name
from service.db import Base, UTCDateTime, utcnow
from service.dialect import JSONDocument


class WorkoutStatus(StrEnum):
    """Where a workout's deliveries stand, worst first: the API's workout ``status`` (computed
    from its deliveries, never stored)."""

    UNCONVERTIBLE = "unconvertible"  # the bundle cannot be converted (kept for a later fix)
    FAILED = "failed"  # at least one delivery failed
    PENDING = "pending"  # deliveries still waiting or retrying
    DELIVERED = "delivered"  # every delivery succeeded
    NO_DELIVERIES = "no_deliveries"  # no destination wanted it


class Workout(Base):
    __tablename__ = "workouts"
    __table_args__ = (
        UniqueConstraint("account_id", "peloton_workout_id"),
        Index("ix_workouts_account_started", "account_id", "started_at", "id"),
        Index("ix_workouts_started", "started_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    peloton_workout_id: Mapped[str] = mapped_column(String(64))
    peloton_ride_id: Mapped[str | None] = mapped_column(String(64))
    discipline: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    instructor: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    peloton_status: Mapped[str] = mapped_column(String(30))
    # The service Peloton imported the workout from ("garmin"...); None: recorded with Peloton.
    # Decided once, when stored, by service.peloton.origin.workout_origin.
    origin: Mapped[str | None] = mapped_column(String(40))
    timezone: Mapped[str | None] = mapped_column(String(64))
    is_outdoor: Mapped[bool] = mapped_column(Boolean, default=False)
    has_gps: Mapped[bool] = mapped_column(Boolean, default=False)
    duration_s: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    calories_kcal: Mapped[float | None] = mapped_column(Float)
    avg_heart_rate: Mapped[int | None] = mapped_column(Integer)
    max_heart_rate: Mapped[int | None] = mapped_column(Integer)
    avg_power: Mapped[float | None] = mapped_column(Float)
    total_work_j: Mapped[float | None] = mapped_column(Float)
    # Why a stored workout cannot be converted (its bundle is kept for a later fix and replay).
    conversion_error: Mapped[str | None] = mapped_column(Text)
    raw_workout: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    raw_performance_graph: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    raw_ride_details: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def bundle(self) -> dict[str, Any]:
        """The converter's input."""
        return {
            "workout": self.raw_workout,
            "performance_graph": self.raw_performance_graph,
            "ride_details": self.raw_ride_details,
        }

    def file_name(self, fmt: str) -> str:
        """The name this workout's ``fmt`` file goes out under, in deliveries and downloads."""
        return file_name(self.started_at, self.discipline, self.title, self.peloton_workout_id, fmt)
