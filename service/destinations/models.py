"""Where workouts go: webhooks, a folder, Strava, intervals.icu, Runalyze, Garmin Connect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow
from service.dialect import JSONDocument


class Destination(Base):
    __tablename__ = "destinations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # a key of kinds/registry.py
    config: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)  # no secrets
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)  # Fernet token of a JSON object
    # Filters: None means "all".
    formats: Mapped[list[str]] = mapped_column(JSONDocument)
    account_ids: Mapped[list[int] | None] = mapped_column(JSONDocument)
    disciplines: Mapped[list[str] | None] = mapped_column(JSONDocument)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    concurrency: Mapped[int] = mapped_column(Integer, default=4)
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    postponed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class OAuthState(Base):
    """A Strava authorization in progress: the ``state`` nonce it may be finished with once.

    The signed ``state`` sent to Strava carries the nonce; this row makes it single-use (the
    callback deletes it) and records who started it (an admin key) and until when.
    """

    __tablename__ = "oauth_states"

    nonce_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256, hex
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id", ondelete="CASCADE"))
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
