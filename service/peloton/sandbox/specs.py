"""Small, hashable descriptions of users, classes (rides) and workouts.

A :class:`WorkoutSpec` holds only what the workout JSON needs plus a seed; the per-second
series behind its performance graph is generated from that seed on demand (``series.py``), so
a sandbox with many users and workouts starts instantly. Every random choice comes from a
``random.Random`` seeded by :func:`derive`, so the same seed always gives the same data.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace

from service.errors import InvalidInput
from service.peloton.sandbox.catalog import (
    FIRST_NAMES,
    INSTRUCTORS,
    JUST_RIDE_ID,
    KINDS,
    LAST_NAMES,
    SCENIC_PLACES,
    TIMEZONES,
    KindSpec,
    Units,
    kind_spec,
)

#: Default "now" of generated histories (2026-01-01T00:00:00Z), so data is reproducible.
DEFAULT_ANCHOR = 1_767_225_600
RIDES_PER_KIND = 24


def derive(*parts: object) -> int:
    """A 64-bit seed from any parts (stable across runs and Python versions)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rng_for(*parts: object) -> random.Random:
    return random.Random(derive(*parts))


def hex_id(rng: random.Random) -> str:
    """A Peloton-style id: 32 lowercase hex digits."""
    return f"{rng.getrandbits(128):032x}"


@dataclass(frozen=True, slots=True)
class UserProfile:
    """A sandbox Peloton member."""

    user_id: str
    username: str
    email: str
    first_name: str
    last_name: str
    units: Units
    timezone: str
    created_at: int
    birth_year: int
    weight_kg: float
    max_hr: int
    resting_hr: int
    ftp: int
    #: Share of this user's workouts recorded with a heart-rate strap.
    hr_share: float

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


def make_user(
    seed: int,
    index: int,
    *,
    username: str | None = None,
    units: Units | None = None,
    timezone: str | None = None,
) -> UserProfile:
    """The ``index``-th user of a sandbox seeded with ``seed`` (overrides win over the draw)."""
    rng = rng_for(seed, "user", index)
    tz, tz_units = rng.choice(TIMEZONES)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    name = username or f"{first.lower()}{index + 1}"
    birth_year = rng.randint(1960, 2002)
    age = 2026 - birth_year
    return UserProfile(
        user_id=hex_id(rng),
        username=name,
        email=f"{name.lower()}@sandbox.invalid",
        first_name=first,
        last_name=last,
        units=units or (tz_units if rng.random() < 0.85 else _other(tz_units)),
        timezone=timezone or tz,
        created_at=DEFAULT_ANCHOR - rng.randint(400, 2000) * 86400,
        birth_year=birth_year,
        weight_kg=round(rng.uniform(52.0, 105.0), 1),
        max_hr=220 - age,
        resting_hr=rng.randint(50, 72),
        ftp=rng.randint(120, 290),
        hr_share=rng.choice((0.0, 0.6, 0.9, 1.0)),
    )


def _other(units: Units) -> Units:
    return "metric" if units == "imperial" else "imperial"


@dataclass(frozen=True, slots=True)
class Instructor:
    instructor_id: str
    first_name: str
    last_name: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


def instructors_for(discipline: str) -> tuple[Instructor, ...]:
    found = [
        Instructor(hex_id(rng_for("instructor", first, last)), first, last)
        for first, last, teaches in INSTRUCTORS
        if discipline in teaches
    ]
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Segment:
    """One part of a class plan (warmup, main parts, cool down)."""

    segment_id: str
    name: str
    icon: str
    start: int
    length: int
    mets: float


@dataclass(frozen=True, slots=True)
class RideSpec:
    """A class (or a Just Ride/Run, with the all-zero id)."""

    ride_id: str
    kind: str
    title: str
    duration: int
    instructor: Instructor | None
    segments: tuple[Segment, ...]
    original_air_time: int
    description: str
    #: (distance, "metric"|"imperial") for fixed-distance classes.
    fixed_distance: tuple[float, Units] | None = None
    location: str | None = None

    @property
    def is_just_ride(self) -> bool:
        return self.ride_id == JUST_RIDE_ID

    @property
    def spec(self) -> KindSpec:
        return kind_spec(self.kind)


def _segments(rng: random.Random, spec: KindSpec, duration: int) -> tuple[Segment, ...]:
    if spec.workout_type == "scenic":
        return (Segment(hex_id(rng), "Cycling", "cycling", 0, duration, spec.main_segment[2]),)
    main_name, main_icon, mets = spec.main_segment
    warm = max(30, round(duration * rng.uniform(0.08, 0.25)))
    cool = max(30, round(duration * rng.uniform(0.04, 0.12)))
    if warm + cool >= duration - 30:
        return (Segment(hex_id(rng), main_name, main_icon, 0, duration, mets),)
    parts = [("Warmup", "warmup", round(mets * 0.6, 1), warm)]
    main_total = duration - warm - cool
    pieces = 1 if main_total < 900 else rng.randint(1, 3)
    cut = sorted(rng.sample(range(60, main_total - 60), pieces - 1)) if pieces > 1 else []
    bounds = [0, *cut, main_total]
    parts += [(main_name, main_icon, mets, b - a) for a, b in zip(bounds, bounds[1:], strict=False)]
    parts.append(("Cool Down", "cooldown", round(mets * 0.6, 1), cool))
    segments, start = [], 0
    for name, icon, seg_mets, length in parts:
        segments.append(Segment(hex_id(rng), name, icon, start, length, seg_mets))
        start += length
    return tuple(segments)


def make_ride(seed: int, kind: str, index: int, *, duration: int | None = None) -> RideSpec:
    """The ``index``-th class of ``kind`` in the catalog seeded with ``seed``."""
    spec = kind_spec(kind)
    rng = rng_for(seed, "ride", kind, index, duration)
    if duration is None:
        duration = rng.choice(spec.minutes) * 60
    ride_id = hex_id(rng)
    theme = rng.choice(spec.themes or ("Ride",))
    title = f"{duration // 60} min {theme}"
    instructor = None
    location = None
    if spec.workout_type == "scenic":
        title = f"{duration // 60} min {theme} Ride"
        location = rng.choice(SCENIC_PLACES)
    else:
        instructor = rng.choice(instructors_for(spec.fitness_discipline))
    fixed: tuple[float, Units] | None = None
    if spec.fitness_discipline == "running" and rng.random() < 0.15:
        metric = rng.random() < 0.5
        fixed = (5.0, "metric") if metric else (3.0, "imperial")
        title = f"{duration // 60} min {'5k' if metric else '3 Mile'} {theme}"
    who = instructor.first_name if instructor else "the scenery"
    return RideSpec(
        ride_id=ride_id,
        kind=kind,
        title=title,
        duration=duration,
        instructor=instructor,
        segments=_segments(rng, spec, duration),
        original_air_time=DEFAULT_ANCHOR - rng.randint(30, 1500) * 86400,
        description=f"A sandbox {spec.discipline_display.lower()} class with {who}.",
        fixed_distance=fixed,
        location=location,
    )


def just_ride(kind: str, duration: int) -> RideSpec:
    """The ride object of a freestyle workout: all-zero id, title like "20 min Just Ride"."""
    noun = "Ride" if kind_spec(kind).fitness_discipline == "cycling" else "Run"
    length = f"{duration // 60} min" if duration >= 60 else f"{duration} sec"
    return RideSpec(JUST_RIDE_ID, kind, f"{length} Just {noun}", duration, None, (), 0, "")


def ride_catalog(seed: int) -> dict[str, tuple[RideSpec, ...]]:
    """Every class kind's catalog of rides (freestyle kinds have none)."""
    return {
        kind: tuple(make_ride(seed, kind, i) for i in range(RIDES_PER_KIND))
        for kind in KINDS
        if kind_spec(kind).workout_type != "freestyle"
    }


@dataclass(frozen=True, slots=True)
class WorkoutSpec:
    """One workout: the JSON-level facts plus the seed of its per-second series."""

    workout_id: str
    seed: int
    kind: str
    user: UserProfile
    ride: RideSpec
    created_at: int
    start_time: int
    #: Planned length in seconds (the ride's duration).
    duration: int
    #: Seconds done so far for an in-progress workout; ``None`` once complete.
    elapsed: int | None
    timezone: str
    device_type: str
    heart_rate: bool
    #: First value of seconds_since_pedaling_start (0, 1, 2 or 7).
    first_offset: int
    #: Target mean output in watts (0: the kind has no output metric).
    avg_output: float
    peloton_id: str | None

    @property
    def spec(self) -> KindSpec:
        return kind_spec(self.kind)

    @property
    def in_progress(self) -> bool:
        return self.elapsed is not None

    @property
    def recorded(self) -> int:
        """Seconds covered by the series: the whole duration, or what is done so far."""
        return self.duration if self.elapsed is None else min(self.elapsed, self.duration)

    def completed(self) -> WorkoutSpec:
        return replace(self, elapsed=None)


def make_workout(
    seed: int,
    user: UserProfile,
    kind: str,
    created_at: int,
    ride: RideSpec | None = None,
    *,
    duration: int | None = None,
    heart_rate: bool | None = None,
    elapsed: int | None = None,
) -> WorkoutSpec:
    """A workout of ``kind`` by ``user``; ``ride`` is required for class kinds."""
    spec = kind_spec(kind)
    rng = rng_for(seed, "workout")
    if ride is None:
        if spec.workout_type != "freestyle":
            raise InvalidInput(f"a {kind} workout needs a ride from the catalog")
        low, high = spec.minutes
        length = duration or (rng.randint(27, 59) if rng.random() < 0.1 else 0)
        length = length or rng.randint(low, high) * 60 + rng.randint(0, 59)
        ride = just_ride(kind, length)
    delay = spec.pedaling_start_offset + (rng.randint(0, 1) if spec.is_class else 0)
    delay = min(61, max(5, delay + (4 if spec.is_outdoor else 0)))
    low_w, high_w = spec.output_w
    return WorkoutSpec(
        workout_id=hex_id(rng),
        seed=seed,
        kind=kind,
        user=user,
        ride=ride,
        created_at=created_at,
        start_time=created_at + delay,
        duration=ride.duration,
        elapsed=None if elapsed is None else max(0, min(elapsed, ride.duration)),
        timezone=user.timezone,
        device_type=rng.choice(spec.devices),
        heart_rate=rng.random() < user.hr_share if heart_rate is None else heart_rate,
        first_offset=rng.choice((0, 1, 1, 2, 2, 7)),
        avg_output=round(rng.uniform(low_w, high_w), 1) if high_w else 0.0,
        peloton_id=None if ride.is_just_ride else hex_id(rng),
    )


def pick_kind(rng: random.Random) -> str:
    """A kind, weighted like a typical member's history (mostly rides)."""
    weights = {
        "cycling_class": 30, "cycling_just_ride": 6, "cycling_scenic": 4, "tread_run": 8,
        "tread_walk": 4, "outdoor_run": 6, "outdoor_walk": 4, "outdoor_just_run": 3,
        "rowing": 5, "strength": 14, "yoga": 8, "meditation": 5,
    }  # fmt: skip
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def history(
    seed: int,
    user: UserProfile,
    count: int,
    catalog: dict[str, tuple[RideSpec, ...]],
    *,
    anchor: int = DEFAULT_ANCHOR,
    in_progress_last: bool = False,
) -> list[WorkoutSpec]:
    """``count`` workouts of ``user``, newest first, the newest ending before ``anchor``."""
    rng = rng_for(seed, "history", user.user_id)
    workouts: list[WorkoutSpec] = []
    when = anchor - rng.randint(3600, 6 * 3600)
    for i in range(count):
        kind = pick_kind(rng)
        ride = rng.choice(catalog[kind]) if kind in catalog else None
        elapsed = None
        if in_progress_last and i == 0:
            elapsed = (ride.duration if ride else 1200) // 3
        workout = make_workout(
            derive(seed, "workout", user.user_id, i), user, kind, when, ride, elapsed=elapsed
        )
        workouts.append(workout)
        when -= workout.duration + rng.randint(4 * 3600, 3 * 86400)
    return workouts
