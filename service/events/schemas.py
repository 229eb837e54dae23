"""Event schemas: events and their deliveries in the admin API, and the body every event
type's webhook request carries (documented as the OpenAPI document's ``webhooks``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model


class EventDeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    destination_id: int = Field(description="The webhook it goes to.")
    state: str = Field(description="pending, succeeded or failed.")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str = Field(description="account.needs_reauth, destination.disabled, ...")
    message_id: str = Field(description="The `webhook-id` receivers dedupe on.")
    account_id: int | None
    destination_id: int | None
    delivery_id: int | None
    workout_id: int | None
    payload: dict[str, Any] = Field(description="The event's `data`, as sent to webhooks.")
    created_at: datetime
    resolved_at: datetime | None = Field(
        description="When its condition cleared (null: still a problem)."
    )
    deliveries: list[EventDeliveryOut] = Field(description="To each subscribed webhook.")


# --- the webhook requests ---------------------------------------------------------------------


class AccountRef(BaseModel):
    id: int
    label: str
    peloton_user_id: str
    peloton_username: str | None


class DestinationRef(BaseModel):
    id: int
    name: str
    kind: str = Field(description="webhook, directory, strava, intervals or garmin.")


class WorkoutRef(BaseModel):
    id: int
    peloton_workout_id: str
    title: str | None
    discipline: str
    start: str | None = Field(description="ISO 8601, UTC.")


class FailedDelivery(BaseModel):
    id: int
    format: str
    message_id: str = Field(description="The workout.synced message that was not delivered.")
    attempts: int
    last_error: str | None


class AccountNeedsReauthData(BaseModel):
    occurred_at: str
    account: AccountRef
    reason: str | None = Field(description="What Peloton answered.")


class DestinationDisabledData(BaseModel):
    occurred_at: str
    destination: DestinationRef
    reason: str | None = Field(description="Why it was disabled, as the dashboard shows it.")


class CredentialsExpiringData(BaseModel):
    occurred_at: str
    destination: DestinationRef
    credential: Literal["garmin_refresh_token", "strava_authorization"]
    revoked: bool = Field(description="True: already refused (Strava revoked the authorization).")
    expires_at: str | None = Field(description="When the credential expires (ISO 8601, UTC).")
    reason: str | None


class DeliveryFailedData(BaseModel):
    occurred_at: str
    delivery: FailedDelivery
    workout: WorkoutRef
    account: AccountRef
    destination: DestinationRef


class WorkoutFile(BaseModel):
    format: str
    filename: str
    content_type: str
    size: int
    sha256: str
    content_base64: str | None = Field(default=None, description="The file, when inline.")
    url: str | None = Field(default=None, description="A signed download link, otherwise.")


class WorkoutSyncedData(BaseModel):
    account: AccountRef
    workout: dict[str, Any] = Field(description="The workout's summary (see docs).")
    files: list[WorkoutFile]


def _envelope(name: str, event_type: str, data: type[BaseModel]) -> type[BaseModel]:
    """The request body: ``{type, timestamp, data}``, signed as Standard Webhooks say."""
    fields: dict[str, Any] = {
        "type": (Literal[event_type], ...),
        "timestamp": (str, Field(description="When this attempt was signed (ISO 8601, UTC).")),
        "data": (data, ...),
    }
    return create_model(name, **fields)


WorkoutSyncedEvent = _envelope("WorkoutSyncedEvent", "workout.synced", WorkoutSyncedData)
AccountNeedsReauthEvent = _envelope(
    "AccountNeedsReauthEvent", "account.needs_reauth", AccountNeedsReauthData
)
DestinationDisabledEvent = _envelope(
    "DestinationDisabledEvent", "destination.disabled", DestinationDisabledData
)
CredentialsExpiringEvent = _envelope(
    "CredentialsExpiringEvent", "destination.credentials_expiring", CredentialsExpiringData
)
DeliveryFailedEvent = _envelope("DeliveryFailedEvent", "delivery.failed", DeliveryFailedData)

#: Each event type's request body, for the OpenAPI document.
BODIES: dict[str, tuple[type[BaseModel], str]] = {
    "workout.synced": (WorkoutSyncedEvent, "A workout's file (the default subscription)."),
    "account.needs_reauth": (
        AccountNeedsReauthEvent,
        "Peloton refused an account's credentials: it is parked until linked again.",
    ),
    "destination.disabled": (
        DestinationDisabledEvent,
        "A destination was disabled (gone, refused its credentials, or failing for 5 days).",
    ),
    "destination.credentials_expiring": (
        CredentialsExpiringEvent,
        "A Garmin refresh token expires within 7 days, or Strava's authorization was revoked.",
    ),
    "delivery.failed": (
        DeliveryFailedEvent,
        "A delivery gave up: out of retries, or refused for good.",
    ),
}
