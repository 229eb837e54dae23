"""Dashboard sessions kept server-side, and the form tokens already used.

A session row is what signing in creates and signing out ends: the cookie carries a random
session id whose SHA-256 is stored here, so a cookie copied before sign-out stops working
with it. A used form token's nonce is kept until the token would have expired anyway, so a
form submitted twice (a reload, a replay) is refused the second time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime


class WebSession(Base):
    """One signed-in browser session of an API key."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UsedFormToken(Base):
    """A form token's nonce, once its form was submitted."""

    __tablename__ = "web_used_form_tokens"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
