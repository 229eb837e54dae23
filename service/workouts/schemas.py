"""Workout schemas: summaries for lists, plus deliveries and file formats for one."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from service.deliveries.schemas import DeliveryOut
from service.workouts.models import WorkoutStatus

__all__ = ["WorkoutDetail", "WorkoutOut", "WorkoutStatus"]


class WorkoutOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    peloton_workout_id: str
    peloton_ride_id: str | None = Field(description="Peloton's id of the class taken.")
    peloton_status: str = Field(description="Peloton's own status: COMPLETE, IN_PROGRESS...")
    discipline: str
    title: str
    instructor: str | None
    started_at: datetime
    ended_at: datetime | None
    timezone: str | None
    is_outdoor: bool
    origin: str | None = Field(
        description="The service Peloton imported the workout from (garmin, strava, ...); "
        "null when it was recorded with Peloton. Imported workouts are delivered only when "
        "their account's include_external is on."
    )
    has_gps: bool
    duration_s: float | None
    distance_m: float | None
    calories_kcal: float | None
    avg_heart_rate: int | None
    max_heart_rate: int | None
    avg_power: float | None
    total_work_j: float | None
    conversion_error: str | None
    fetched_at: datetime
    created_at: datetime = Field(description="When pelosync first saw it.")
    status: WorkoutStatus


class WorkoutDetail(WorkoutOut):
    formats: list[str] = Field(description="Formats it can be downloaded in.")
    deliveries: list[DeliveryOut]


class SignedLink(BaseModel):
    url: str = Field(description="Works without an API key until `expires_at`.")
    expires_at: datetime
