"""Linked Peloton accounts and the history of their polls."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow
from service.dialect import JSONDocument


class AuthMethod(StrEnum):
    """How the account was linked (and how it may log in again on its own)."""

    TOKEN = "token"  # refresh and/or access token supplied by the user; no password stored
    PASSWORD = "password"  # Auth0 password grant
    PKCE = "pkce"  # scripted Auth0 universal-login (PKCE) with username and password


class AccountStatus(StrEnum):
    """``Account.status``, the API's account ``status``."""

    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"  # parked until the user links it again
    ERROR = "error"  # failing; retried with exponential backoff


class PollOutcome(StrEnum):
    """What became of one poll: ``SyncRun.outcome``, the API's sync run ``outcome`` and the
    ``outcome`` label of ``pelosync_polls_total``."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"  # Peloton throttles the address: polled again after the pause
    NEEDS_REAUTH = "needs_reauth"  # Peloton refused the account's credentials
    ERROR = "error"  # any other failure; polled again with exponential backoff
    # Never stored: another worker had taken the account over, nothing was written.
    LEASE_LOST = "lease_lost"
    # Never stored: the account was deleted before its poll began.
    GONE = "gone"


class SyncTrigger(StrEnum):
    """Why a poll ran: ``SyncRun.trigger``, the API's sync run ``trigger``."""

    SCHEDULE = "schedule"  # the account was due
    MANUAL = "manual"  # someone asked (sync now, ``pelosync sync --once``)


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (Index("ix_accounts_due", "paused", "status", "next_poll_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    peloton_user_id: Mapped[str] = mapped_column(String(64), unique=True)
    peloton_username: Mapped[str | None] = mapped_column(String(200))
    auth_method: Mapped[str] = mapped_column(String(20))
    # Fernet tokens of JSON objects: {"username", "password"} and {"access_token", "refresh_token"}
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    tokens_encrypted: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    poll_interval_s: Mapped[int | None] = mapped_column(Integer)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # Deliver the workouts Peloton imported from other services (Garmin...) too. Off: they are
    # stored and shown, but sending them back where they came from would duplicate them.
    include_external: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(20), default=AccountStatus.ACTIVE)  # AccountStatus
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sync_since: Mapped[datetime] = mapped_column(UTCDateTime())
    backfill_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    # A backfill's progress, written as it walks back through Peloton's list: the workouts it
    # has found back to the since-date so far, and the oldest start time it has reached.
    backfill_found: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    backfill_reached: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Workouts seen IN_PROGRESS, re-checked on later polls until complete (they are not stored
    # before, so the "stop at the first known id" listing alone could step over them).
    pending_workout_ids: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class SyncRun(Base):
    """One poll of one account."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_account_started", "account_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(20))  # SyncTrigger
    worker: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # PollOutcome (never LEASE_LOST or GONE); null while the poll runs.
    outcome: Mapped[str | None] = mapped_column(String(20))
    found: Mapped[int] = mapped_column(Integer, default=0)
    new: Mapped[int] = mapped_column(Integer, default=0)
    in_progress: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
