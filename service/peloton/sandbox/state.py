"""Everything a running sandbox holds, in memory: configuration, users, workouts, tokens,
fault rules, latency, the request log and a clock that admin calls can move forward."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from service.config import Settings
from service.errors import Conflict, InvalidInput, NotFound
from service.peloton.sandbox.catalog import Units, validate_options
from service.peloton.sandbox.faults import FaultBook, RequestLog
from service.peloton.sandbox.generator import graph_json
from service.peloton.sandbox.specs import (
    DEFAULT_ANCHOR,
    RideSpec,
    UserProfile,
    WorkoutSpec,
    derive,
    history,
    make_ride,
    make_user,
    make_workout,
    pick_kind,
    ride_catalog,
    rng_for,
)
from service.peloton.sandbox.tokens import TokenStore

_DEFAULTS = Settings.model_construct()  # Peloton's real client ids etc., without reading env
MAX_USERS = 10_000
MAX_WORKOUTS = 10_000


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How a sandbox starts. Generated data depends only on ``seed`` (and ``anchor``)."""

    seed: int = 1
    users: int = 2
    workouts: int = 20
    latency_ms: float = 0.0
    #: Lifetime of access tokens, seconds (Peloton's is 48 h).
    expires_in: int = 172_800
    #: Epoch second the generated histories end at (fixed, so data is reproducible).
    anchor: int = DEFAULT_ANCHOR
    #: Make each generated user's newest workout an in-progress one.
    in_progress: bool = False
    #: Password of every generated user; by default each gets its own (printed by the CLI).
    password: str | None = None
    web_client_id: str = _DEFAULTS.peloton_web_client_id
    password_client_id: str = _DEFAULTS.peloton_password_client_id
    audience: str = _DEFAULTS.peloton_audience
    #: Where /authorize may send codes (the sandbox's own /callback is always allowed).
    redirect_uris: tuple[str, ...] = (_DEFAULTS.peloton_redirect_uri,)

    def __post_init__(self) -> None:
        if not 0 <= self.users <= MAX_USERS:
            raise InvalidInput(f"users must be 0..{MAX_USERS}, got {self.users}")
        if not 0 <= self.workouts <= MAX_WORKOUTS:
            raise InvalidInput(f"workouts must be 0..{MAX_WORKOUTS}, got {self.workouts}")
        if self.latency_ms < 0:
            raise InvalidInput(f"latency_ms must not be negative, got {self.latency_ms}")
        if self.expires_in < 1:
            raise InvalidInput(f"expires_in must be at least 1 second, got {self.expires_in}")


@dataclass(slots=True)
class Account:
    """A user with login details and (lazily generated) workouts, newest first."""

    index: int
    user: UserProfile
    password: str
    planned: int
    in_progress_last: bool
    workouts: list[WorkoutSpec] | None = None
    added: int = 0


#: How the token endpoint answers ``grant_type=password`` (``/_sandbox/password-grant``):
#: ``allowed`` as today's mobile client id; or refused the two ways Auth0 turns the grant off
#: for a client: ``unauthorized_client`` and ``invalid_grant`` naming the grant type.
PasswordGrant = Literal["allowed", "unauthorized_client", "invalid_grant"]


@dataclass(slots=True)
class _Runtime:
    latency_ms: float
    clock_offset: float = 0.0
    password_grant: PasswordGrant = "allowed"
    completes_at: dict[str, float] = field(default_factory=dict)


@lru_cache(maxsize=128)
def _graph_body(spec: WorkoutSpec, every_n: int) -> bytes:
    return json.dumps(graph_json(spec, every_n), separators=(",", ":")).encode()


class SandboxState:
    """The sandbox's whole in-memory world. Not thread-safe: use it from one event loop."""

    def __init__(
        self, config: SandboxConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or SandboxConfig()
        self._wall = clock
        self.closing: asyncio.Event | None = None
        self._build()

    def _build(self) -> None:
        cfg = self.config
        self.runtime = _Runtime(latency_ms=cfg.latency_ms)
        self.catalog = ride_catalog(cfg.seed)
        self.rides: dict[str, RideSpec] = {r.ride_id: r for rs in self.catalog.values() for r in rs}
        self.tokens = TokenStore(self.now, expires_in=cfg.expires_in, audience=cfg.audience)
        self.faults = FaultBook(cfg.seed)
        self.log = RequestLog()
        self.accounts: dict[str, Account] = {}
        for _ in range(cfg.users):
            self.add_user(workouts=cfg.workouts, in_progress_last=cfg.in_progress)

    # --- time ----------------------------------------------------------------------------

    def now(self) -> float:
        """Sandbox time: the wall clock plus whatever admin calls advanced it by."""
        return self._wall() + self.runtime.clock_offset

    def advance(self, seconds: float) -> float:
        self.runtime.clock_offset += seconds
        return self.now()

    @property
    def latency_ms(self) -> float:
        return self.runtime.latency_ms

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        if value < 0:
            raise InvalidInput(f"latency must not be negative, got {value}")
        self.runtime.latency_ms = value

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server is shutting down."""
        if seconds <= 0:
            return
        if self.closing is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), timeout=seconds)

    # --- users ---------------------------------------------------------------------------

    def add_user(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        units: Units | None = None,
        timezone: str | None = None,
        workouts: int | None = None,
        in_progress_last: bool = False,
    ) -> Account:
        """A new user with an initial refresh token (bound to the web client)."""
        validate_options(units=units, timezone=timezone)
        count = self.config.workouts if workouts is None else workouts
        if not 0 <= count <= MAX_WORKOUTS:
            raise InvalidInput(f"workouts must be 0..{MAX_WORKOUTS}, got {count}")
        if username and self.find_login(username):
            raise Conflict(f"username {username!r} is taken")
        index = len(self.accounts)
        seed = self.config.seed
        user = make_user(seed, index, username=username, units=units, timezone=timezone)
        secret = password or self.config.password or f"pw-{derive(seed, 'pw', index) % 10**8:08d}"
        account = Account(index, user, secret, count, in_progress_last)
        self.accounts[user.user_id] = account
        token = f"v1.M{rng_for(seed, 'refresh', index).getrandbits(256):064x}"
        self.tokens.add_refresh_token(
            token, user.user_id, self.config.web_client_id, _DEFAULTS.peloton_scope
        )
        return account

    def account(self, user_id: str) -> Account:
        try:
            return self.accounts[user_id]
        except KeyError:
            raise NotFound(f"no sandbox user {user_id!r}") from None

    def find_login(self, login: str) -> Account | None:
        """The account whose username or email is ``login`` (case-insensitive)."""
        wanted = login.strip().lower()
        for account in self.accounts.values():
            if wanted in (account.user.username.lower(), account.user.email.lower()):
                return account
        return None

    # --- workouts ------------------------------------------------------------------------

    def workouts(self, account: Account) -> list[WorkoutSpec]:
        """The account's workouts, newest first (generated on first use)."""
        if account.workouts is None:
            account.workouts = history(
                self.config.seed,
                account.user,
                account.planned,
                self.catalog,
                anchor=self.config.anchor,
                in_progress_last=account.in_progress_last,
            )
        due = [w for w, at in self.runtime.completes_at.items() if at <= self.now()]
        for workout_id in due:
            self.complete(workout_id)
        return account.workouts

    def workout(self, account: Account, workout_id: str) -> WorkoutSpec | None:
        return next((w for w in self.workouts(account) if w.workout_id == workout_id), None)

    def add_workouts(
        self,
        account: Account,
        *,
        kind: str | None = None,
        count: int = 1,
        in_progress: bool = False,
        elapsed: int | None = None,
        duration: int | None = None,
        heart_rate: bool | None = None,
        complete_after_s: float | None = None,
    ) -> list[WorkoutSpec]:
        """New workouts created now, newest last; in progress ones may complete on their own."""
        validate_options(kind=kind, duration=duration)
        if not 1 <= count <= 1000:
            raise InvalidInput(f"count must be 1..1000, got {count}")
        existing = self.workouts(account)
        added: list[WorkoutSpec] = []
        for _ in range(count):
            seed = derive(self.config.seed, "added", account.user.user_id, account.added)
            account.added += 1
            rng = rng_for(seed, "pick")
            chosen = kind or pick_kind(rng)
            ride = self._ride_for(chosen, seed, duration, rng)
            newest = existing[0].created_at if existing else 0
            created = max(int(self.now()), newest + 60)
            length = ride.duration if ride else duration
            done = None
            if in_progress:
                done = elapsed if elapsed is not None else (length or 1200) // 3
            spec = make_workout(
                seed,
                account.user,
                chosen,
                created,
                ride,
                duration=duration,
                heart_rate=heart_rate,
                elapsed=done,
            )
            existing.insert(0, spec)
            added.append(spec)
            if in_progress and complete_after_s is not None:
                self.runtime.completes_at[spec.workout_id] = self.now() + complete_after_s
        return added

    def _ride_for(
        self, kind: str, seed: int, duration: int | None, rng: random.Random
    ) -> RideSpec | None:
        if kind not in self.catalog:
            return None  # freestyle: make_workout builds the Just Ride/Run
        if duration is None:
            return rng.choice(self.catalog[kind])
        ride = make_ride(seed, kind, 0, duration=duration)
        self.rides[ride.ride_id] = ride
        return ride

    def complete(self, workout_id: str) -> WorkoutSpec:
        """Mark an in-progress workout complete (its end time becomes start + duration)."""
        self.runtime.completes_at.pop(workout_id, None)
        for account in self.accounts.values():
            workouts = account.workouts or []
            for i, spec in enumerate(workouts):
                if spec.workout_id == workout_id:
                    if spec.in_progress:
                        workouts[i] = spec.completed()
                    return workouts[i]
        raise NotFound(f"no sandbox workout {workout_id!r}")

    def graph_body(self, spec: WorkoutSpec, every_n: int) -> bytes:
        """The performance graph as JSON bytes (cached per spec and every_n)."""
        return _graph_body(spec, every_n)

    # --- admin ---------------------------------------------------------------------------

    def reset(self, *, data: bool = False) -> None:
        """Clear faults, latency, the log and the clock; with ``data`` also users and tokens."""
        if data:
            self._build()
            return
        self.faults.clear()
        self.log.clear()
        self.runtime.latency_ms = self.config.latency_ms
        self.runtime.clock_offset = 0.0
        self.runtime.password_grant = "allowed"

    def describe_user(self, account: Account) -> dict[str, Any]:
        user = account.user
        return {
            "user_id": user.user_id,
            "username": user.username,
            "email": user.email,
            "password": account.password,
            "units": user.units,
            "timezone": user.timezone,
            "workouts": len(account.workouts) if account.workouts is not None else account.planned,
            **self.tokens.tokens_of(user.user_id),
        }
