"""The budget's table: one row per egress address."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime


class PelotonBudget(Base):
    """The Peloton request budget of one egress address, shared by every replica leaving by it.

    The decisions are :mod:`service.peloton.budget`'s; ``version`` makes each change a
    compare-and-set, so replicas granting slots at the same moment never hand out one twice.
    """

    __tablename__ = "peloton_budgets"

    egress: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    throttle_streak: Mapped[int] = mapped_column(Integer, default=0)
    last_throttled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_throttle: Mapped[str | None] = mapped_column(Text)  # what the throttled request was
    throttles: Mapped[int] = mapped_column(Integer, default=0)
    requests_interactive: Mapped[int] = mapped_column(Integer, default=0)
    requests_background: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)
