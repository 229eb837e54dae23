"""Delivery schemas: one delivery (workout × destination × format) and its attempts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    workout_id: int
    destination_id: int
    format: str
    message_id: str = Field(description="What receivers dedupe on; the same on every retry.")
    state: str = Field(description="pending, succeeded or failed.")  # DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    external_id: str | None = Field(description="The destination's id for it (Strava...).")
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: int
    worker: str
    started_at: datetime
    duration_ms: int
    outcome: str = Field(
        description="succeeded, retry, failed, postponed or parked."
    )  # AttemptResult
    status_code: int | None
    error_class: str | None
    error: str | None
    response_excerpt: str | None


class DeliveryDetail(DeliveryOut):
    attempts_log: list[AttemptOut] = Field(description="Every attempt, oldest first.")
