"""The canonical activity model: the one hub every format is written from.

A Peloton workout bundle is parsed once into an :class:`Activity` (see ``convert.peloton``);
each writer (``tcx``, ``gpx``, ``fit``, ``json_format``) only reads this model. Units are fixed
here so writers never convert: times are timezone-aware UTC, distances and altitudes metres,
speeds metres per second, power watts, heart rate beats per minute, cadence revolutions (or
strokes, or steps) per minute, energy kilocalories, work joules.

A value of ``None`` means "not recorded": writers omit it, never write it as zero.

The JSON format is this model dumped as is; ``SCHEMA_VERSION`` is bumped on any change of its
JSON Schema: the minor number for additions (1.1 added strength ``sets`` and lap ``targets``),
the major number for anything a reader of the previous version would misread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.1"


class Discipline(StrEnum):
    """What kind of workout it was, normalised from Peloton's ``fitness_discipline``."""

    CYCLING = "cycling"
    RUNNING = "running"
    WALKING = "walking"
    ROWING = "rowing"
    BIKE_BOOTCAMP = "bike_bootcamp"
    TREAD_BOOTCAMP = "tread_bootcamp"
    ROW_BOOTCAMP = "row_bootcamp"
    STRENGTH = "strength"
    YOGA = "yoga"
    MEDITATION = "meditation"
    STRETCHING = "stretching"
    CARDIO = "cardio"
    OTHER = "other"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


@dataclass(slots=True)
class Sample:
    """One point in time. Every metric is optional: ``None`` means not recorded at this point.

    A plain slotted dataclass rather than a pydantic model: an hour at 1 Hz is 3,600 of them,
    and pydantic's per-instance cost would dominate conversion time. Treat it as immutable.
    """

    offset_s: Annotated[float, Field(description="Seconds since the workout's start_time.")]
    time: Annotated[AwareDatetime, Field(description="UTC time: start + offset_s.")]
    heart_rate: Annotated[int | None, Field(description="Beats per minute (never 0).")] = None
    power: Annotated[float | None, Field(description="Watts.")] = None
    cadence: Annotated[
        float | None,
        Field(description="Per minute: pedal revolutions, run steps or rowing strokes."),
    ] = None
    speed: Annotated[float | None, Field(description="Metres per second.")] = None
    distance: Annotated[float | None, Field(description="Cumulative metres from the start.")] = None
    latitude: Annotated[float | None, Field(description="WGS84 degrees.")] = None
    longitude: Annotated[float | None, Field(description="WGS84 degrees.")] = None
    altitude: Annotated[float | None, Field(description="Metres above sea level.")] = None
    resistance: Annotated[float | None, Field(description="Bike resistance, percent.")] = None
    incline: Annotated[float | None, Field(description="Treadmill incline, percent.")] = None
    track_segment: Annotated[
        int | None,
        Field(description="Index of the GPS track segment of this position (None: no position)."),
    ] = None

    @property
    def has_position(self) -> bool:
        return self.latitude is not None and self.longitude is not None


class Stats(_Frozen):
    """Totals and extremes over a span (the whole workout or one lap)."""

    duration_s: float
    distance_m: float | None = None
    calories_kcal: float | None = None
    avg_heart_rate: int | None = None
    max_heart_rate: int | None = None
    avg_power: float | None = None
    max_power: float | None = None
    avg_cadence: float | None = None
    max_cadence: float | None = None
    avg_speed: float | None = None
    max_speed: float | None = None


class Target(_Frozen):
    """What the class asked for during a lap: a range of one metric."""

    metric: Literal["cadence", "resistance", "incline", "power_zone"] = Field(
        description="cadence in rpm, resistance and incline in percent, power_zone 1-7."
    )
    lower: float | None = None
    upper: float | None = None

    def describe(self) -> str:
        """In words: ``cadence 80-90 rpm``, ``resistance 35-45%``, ``zone 3``."""
        lo, hi = self.lower, self.upper
        if lo is not None and hi is not None and lo != hi:
            span = f"{lo:g}-{hi:g}"
        else:
            span = f"{lo if lo is not None else hi or 0.0:g}"
        label, unit = _TARGET_WORDS[self.metric]
        return f"{label} {span}{unit}"


_TARGET_WORDS = {
    "cadence": ("cadence", " rpm"),
    "resistance": ("resistance", "%"),
    "incline": ("incline", "%"),
    "power_zone": ("zone", ""),
}


class Lap(_Frozen):
    """A span of the workout: a class interval (from its cues or target metrics), else a class
    segment, else the whole workout."""

    name: str | None = None
    start_offset_s: float
    start: AwareDatetime
    stats: Stats
    targets: list[Target] = Field(
        default_factory=list, description="The class's targets for this lap (cues), if any."
    )

    def label(self) -> str | None:
        """The name and targets in words, for formats that only have free text."""
        parts = ([self.name] if self.name else []) + [t.describe() for t in self.targets]
        return " · ".join(parts) or None


class StrengthSet(_Frozen):
    """One set of a strength workout: a movement done (or planned) for a span, or a rest."""

    kind: Literal["active", "rest"]
    start_offset_s: float = Field(description="Seconds from the workout's start.")
    start: AwareDatetime
    duration_s: float
    source: Literal["tracked", "class_plan"] = Field(
        description="tracked: Peloton counted it (movement tracker); class_plan: from the class."
    )
    movement_id: str | None = Field(default=None, description="Peloton's movement id.")
    movement_name: str | None = Field(default=None, description="Peloton's movement name.")
    tracking_type: str | None = Field(
        default=None, description="Peloton's tracking_type: rep_counting, time_based..."
    )
    is_hold: bool | None = None
    repetitions: int | None = None
    weight_kg: float | None = Field(default=None, description="0 means body weight.")
    exercise_category: str | None = Field(
        default=None,
        description="FIT profile exercise_category, e.g. 'squat'; 'unknown' when not mapped.",
    )
    exercise_name: str | None = Field(
        default=None, description="FIT profile name within the category, e.g. 'goblet_squat'."
    )


class Summary(Stats):
    """Whole-workout figures: Peloton's own where it reports them, else computed from samples."""

    total_work_j: float | None = None
    elevation_gain_m: float | None = None
    avg_resistance: float | None = None
    avg_incline: float | None = None


class Source(_Frozen):
    """Where the activity came from."""

    workout_id: str
    user_id: str | None = None
    ride_id: str | None = None
    every_n: float | None = Field(default=None, description="Seconds between samples.")


class Device(_Frozen):
    """The Peloton device or app that recorded the workout."""

    type: str | None = Field(default=None, description="Peloton device_type, e.g. home_bike_v1.")
    name: str = Field(description="Human-readable name, e.g. 'Peloton Bike'.")
    platform: str | None = None


class Activity(_Frozen):
    """A workout, ready to be written in any format."""

    schema_version: str = SCHEMA_VERSION
    source: Source
    discipline: Discipline
    peloton_discipline: str = Field(description="Peloton's fitness_discipline, verbatim.")
    is_outdoor: bool
    title: str
    instructor: str | None = None
    device: Device
    start: AwareDatetime
    end: AwareDatetime
    timezone: str | None = Field(
        default=None, description="IANA zone the workout was done in (metadata only)."
    )
    utc_offset_s: int | None = Field(
        default=None, description="Offset of local time from UTC at the start, in seconds."
    )
    summary: Summary
    laps: list[Lap]
    sets: list[StrengthSet] = Field(
        default_factory=list, description="Strength sets, in time order (rests between)."
    )
    samples: list[Sample]

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def has_gps(self) -> bool:
        return any(s.has_position for s in self.samples)

    def local_start(self) -> datetime:
        """The start in the workout's own local time (naive), for formats that want it."""
        offset = timedelta(seconds=self.utc_offset_s or 0)
        return (self.start + offset).replace(tzinfo=None)
