"""Strava's application-wide request budget, shared by every Strava destination in the process.

Strava limits requests per *application*, not per athlete: every account connected through one
Strava app draws from the same budget (developers.strava.com/docs/rate-limits):

* overall: 200 requests per 15 minutes and 2,000 per day by default;
* "non-upload" (read): 100 per 15 minutes and 1,000 per day; ``POST /uploads`` counts only
  against the overall limit, everything else (polling an upload, ``GET /athlete``) against both.

The 15-minute windows reset at :00, :15, :30 and :45, the daily ones at midnight UTC. Every
response reports the limits and the usage as ``X-RateLimit-Limit: 200,2000`` and
``X-RateLimit-Usage: n15,nday`` (and ``X-ReadRateLimit-*`` for the read bucket).

:class:`StravaRateLimiter` keeps the latest figures, counts requests as they are sent (so
concurrent deliveries do not all pass at 199/200) and refuses to send once a window is used up,
saying how long until it resets. One instance per process, injected into every Strava
destination; it is not shared across processes (each one learns the real usage from the
headers of its next response, and Strava's 429 covers the rest).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

SHORT_WINDOW_S = 15 * 60
DEFAULT_OVERALL = (200, 2000)
DEFAULT_READ = (100, 1000)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _period(now: datetime, short: bool) -> int:
    """The window ``now`` falls in: the 15-minute slot since the epoch, or the UTC day."""
    if short:
        return int(now.timestamp()) // SHORT_WINDOW_S
    return now.astimezone(UTC).date().toordinal()


def _seconds_to_reset(now: datetime, short: bool) -> float:
    if short:
        return float(SHORT_WINDOW_S - int(now.timestamp()) % SHORT_WINDOW_S)
    midnight = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time())
    return (midnight.replace(tzinfo=UTC) - now).total_seconds()


@dataclass
class _Window:
    short: bool
    limit: int
    usage: int = 0
    period: int = -1

    def roll(self, now: datetime) -> None:
        period = _period(now, self.short)
        if period != self.period:  # a new window: the old usage no longer counts
            self.period, self.usage = period, 0

    @property
    def exhausted(self) -> bool:
        return self.usage >= self.limit


@dataclass
class _Bucket:
    name: str
    short: _Window
    daily: _Window

    @classmethod
    def of(cls, name: str, limits: tuple[int, int]) -> _Bucket:
        return cls(name, _Window(True, limits[0]), _Window(False, limits[1]))

    @property
    def windows(self) -> tuple[_Window, _Window]:
        return self.short, self.daily


def _pair(value: str | None) -> tuple[int, int] | None:
    """``"200,2000"`` -> (200, 2000); None for a missing or malformed header."""
    if not value:
        return None
    parts = value.split(",")
    if len(parts) != 2:
        return None
    try:
        first, second = (int(part.strip()) for part in parts)
    except ValueError:
        return None
    return (first, second) if first >= 0 and second >= 0 else None


@dataclass(frozen=True)
class RateLimitSnapshot:
    """The tracker's current view, for status pages and tests."""

    overall_limit: tuple[int, int]
    overall_usage: tuple[int, int]
    read_limit: tuple[int, int]
    read_usage: tuple[int, int]


@dataclass
class StravaRateLimiter:
    """Tracks one Strava application's request budget (see the module docstring)."""

    clock: Clock = _utcnow
    overall_limits: tuple[int, int] = DEFAULT_OVERALL
    read_limits: tuple[int, int] = DEFAULT_READ
    _overall: _Bucket = field(init=False)
    _read: _Bucket = field(init=False)

    def __post_init__(self) -> None:
        self._overall = _Bucket.of("overall", self.overall_limits)
        self._read = _Bucket.of("read", self.read_limits)

    def _buckets(self, upload: bool) -> tuple[_Bucket, ...]:
        return (self._overall,) if upload else (self._overall, self._read)

    def wait_time(self, *, upload: bool) -> float | None:
        """Seconds until a request may be sent, or None if it may be sent now."""
        now = self.clock()
        waits = []
        for bucket in self._buckets(upload):
            for window in bucket.windows:
                window.roll(now)
                if window.exhausted:
                    waits.append(_seconds_to_reset(now, window.short))
        return max(waits) if waits else None

    def try_acquire(self, *, upload: bool) -> float | None:
        """Count one request about to be sent, or return the seconds to wait instead.

        ``upload`` is True for ``POST /uploads`` (overall budget only).
        """
        wait = self.wait_time(upload=upload)
        if wait is not None:
            return wait
        for bucket in self._buckets(upload):
            for window in bucket.windows:
                window.usage += 1
        return None

    def observe(self, headers: Mapping[str, str]) -> None:
        """Update limits and usage from a Strava response's headers (any status)."""
        now = self.clock()
        for bucket, prefix in ((self._overall, "x-ratelimit"), (self._read, "x-readratelimit")):
            limits = _pair(headers.get(f"{prefix}-limit"))
            usage = _pair(headers.get(f"{prefix}-usage"))
            for index, window in enumerate(bucket.windows):
                window.roll(now)
                if limits is not None:
                    window.limit = limits[index]
                if usage is not None:
                    # Within a window usage only grows; an older response arriving late (or a
                    # count we made ourselves) must not lower it.
                    window.usage = max(window.usage, usage[index])

    def exceeded(self, headers: Mapping[str, str], *, upload: bool) -> float:
        """A 429 arrived: mark the exhausted window and return the seconds until it resets.

        The headers say which window it was; if they do not, assume the overall 15-minute one.
        """
        self.observe(headers)
        wait = self.wait_time(upload=upload)
        if wait is not None:
            return wait
        self._overall.short.usage = self._overall.short.limit
        return _seconds_to_reset(self.clock(), short=True)

    def snapshot(self) -> RateLimitSnapshot:
        now = self.clock()
        for bucket in (self._overall, self._read):
            for window in bucket.windows:
                window.roll(now)
        o, r = self._overall, self._read
        return RateLimitSnapshot(
            overall_limit=(o.short.limit, o.daily.limit),
            overall_usage=(o.short.usage, o.daily.usage),
            read_limit=(r.short.limit, r.daily.limit),
            read_usage=(r.short.usage, r.daily.usage),
        )
