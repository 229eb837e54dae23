"""Static tables the generator draws from: workout kinds, devices, instructors, class titles.

Everything here is invented for the sandbox (names, places, titles); only the *shapes* and the
enumerated values (disciplines, device types, units) follow Peloton's real API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from service.errors import InvalidInput

Units = Literal["imperial", "metric"]
#: What produces the per-second series: see ``series.py``.
SeriesModel = Literal["bike", "tread", "outdoor", "row", "floor"]

JUST_RIDE_ID = "0" * 32
IMAGE_BASE = "https://sandbox-images.invalid/peloton"

#: IANA zones users live in. ``Etc/GMT+5`` is UTC-5 (the sign is inverted), as Peloton sends it.
TIMEZONES: tuple[tuple[str, Units], ...] = (
    ("America/New_York", "imperial"),
    ("America/Chicago", "imperial"),
    ("America/Los_Angeles", "imperial"),
    ("Etc/GMT+5", "imperial"),
    ("Etc/GMT+4", "imperial"),
    ("Europe/London", "metric"),
    ("Europe/Berlin", "metric"),
    ("Australia/Sydney", "metric"),
    ("Etc/GMT-1", "metric"),
)

#: Where outdoor tracks start, per timezone: (latitude, longitude, altitude in metres).
TRACK_ORIGINS: dict[str, tuple[float, float, float]] = {
    "America/New_York": (40.7812, -73.9665, 40.0),
    "America/Chicago": (41.8827, -87.6233, 180.0),
    "America/Los_Angeles": (34.0736, -118.4004, 95.0),
    "Etc/GMT+5": (39.9526, -75.1652, 12.0),
    "Etc/GMT+4": (42.3601, -71.0589, 8.0),
    "Europe/London": (51.5073, -0.1657, 30.0),
    "Europe/Berlin": (52.5145, 13.3501, 35.0),
    "Australia/Sydney": (-33.8688, 151.2093, 20.0),
    "Etc/GMT-1": (48.1351, 11.5820, 519.0),
}

#: device_type → (device_type_display_name, platform)
DEVICES: dict[str, tuple[str, str]] = {
    "home_bike_v1": ("Bike", "home_bike"),
    "home_bike_v2": ("Bike+", "home_bike"),
    "home_tread": ("Tread", "home_tread"),
    "caesar": ("Row", "caesar"),
    "iPhone": ("App", "iOS_app"),
    "android": ("App", "android"),
    # Not Peloton's: an activity Peloton imported from Garmin Connect (service/peloton/origin.py)
    "garmin": ("Garmin", "garmin"),
}

FIRST_NAMES = ("Avery", "Jordan", "Riley", "Casey", "Morgan", "Quinn", "Harper", "Rowan", "Sage")
LAST_NAMES = ("Lindqvist", "Okafor", "Marchetti", "Nakamura", "Delgado", "Fairweather", "Brandt")

#: Invented instructors: (first name, last name, disciplines they teach).
INSTRUCTORS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Alex", "Rivera", ("cycling", "strength")),
    ("Sam", "Okonjo", ("cycling", "running", "walking")),
    ("Mira", "Holloway", ("running", "walking", "strength")),
    ("Theo", "Vasquez", ("cycling", "caesar")),
    ("Priya", "Lindgren", ("yoga", "meditation", "strength")),
    ("Jonah", "Adeyemi", ("running", "walking", "caesar")),
    ("Lena", "Moreau", ("cycling", "yoga", "meditation")),
)

SCENIC_PLACES = (
    "Alpine Lakes",
    "Coastal Highway",
    "Desert Canyon",
    "Forest Trail",
    "Harbour Loop",
    "Vineyard Hills",
)


@dataclass(frozen=True, slots=True)
class KindSpec:
    """Everything that differs between kinds of workout."""

    name: str
    fitness_discipline: str
    discipline_display: str
    metrics_type: str | None
    workout_type: Literal["class", "freestyle", "scenic"]
    workout_name: str
    series: SeriesModel
    devices: tuple[str, ...]
    #: Class lengths to pick from, minutes (freestyle: range bounds).
    minutes: tuple[int, ...]
    themes: tuple[str, ...]
    #: The main class segment: (name, icon slug, METs).
    main_segment: tuple[str, str, float]
    segment_metrics_type: str
    ride_metrics: tuple[str, ...]
    #: Seconds from workout creation to the start of pedaling/moving.
    pedaling_start_offset: int
    #: Target mean output, watts (0: no output metric).
    output_w: tuple[float, float] = (0.0, 0.0)
    #: Mean moving speed, mph (converted for metric users).
    speed_mph: tuple[float, float] = (0.0, 0.0)
    is_outdoor: bool = False
    walk_run: bool = False
    #: MET value for calorie estimates of floor workouts.
    mets: float = 0.0
    content_format: str = "video"

    @property
    def is_class(self) -> bool:
        return self.workout_type == "class"


_BIKE_METRICS = ("heart_rate", "cadence", "calories")
_TREAD_METRICS = ("heart_rate", "calories", "speed", "distance", "elevation")
_OUTDOOR_METRICS = (*_TREAD_METRICS, "gps", "gps_accuracy", "altitude")

_KINDS: tuple[KindSpec, ...] = (
    KindSpec(
        "cycling_class", "cycling", "Cycling", "cycling", "class", "Cycling Workout", "bike",
        ("home_bike_v1", "home_bike_v2"), (10, 15, 20, 20, 30, 30, 45, 60),
        ("Pop Ride", "Climb Ride", "HIIT Ride", "Endurance Ride", "Tabata Ride", "90s Ride"),
        ("Cycling", "cycling", 6.0), "cycling", _BIKE_METRICS, 60, output_w=(85.0, 230.0),
    ),
    KindSpec(
        "cycling_just_ride", "cycling", "Cycling", "cycling", "freestyle", "Cycling Workout",
        "bike", ("home_bike_v1", "home_bike_v2"), (1, 60), (), ("Cycling", "cycling", 6.0),
        "cycling", (), 2, output_w=(60.0, 200.0),
    ),
    KindSpec(
        "cycling_scenic", "cycling", "Cycling", "cycling", "scenic", "Scenic Ride", "bike",
        ("home_bike_v1", "home_bike_v2"), (20, 30, 45), SCENIC_PLACES,
        ("Cycling", "cycling", 6.0), "cycling", _BIKE_METRICS, 5, output_w=(80.0, 200.0),
    ),
    KindSpec(
        "tread_run", "running", "Running", "running", "class", "Running Workout", "tread",
        ("home_tread",), (10, 20, 20, 30, 45), ("Fun Run", "Tempo Run", "Interval Run"),
        ("Running", "running", 10.0), "running", _TREAD_METRICS, 60,
        output_w=(150.0, 280.0), speed_mph=(5.2, 7.5),
    ),
    KindSpec(
        "tread_walk", "walking", "Walking", "running", "class", "Walking Workout", "tread",
        ("home_tread",), (10, 20, 30, 45), ("Power Walk", "Hiking Walk", "Incline Walk"),
        ("Walking", "walking", 5.0), "running", _TREAD_METRICS, 60,
        output_w=(70.0, 150.0), speed_mph=(2.8, 4.0),
    ),
    KindSpec(
        "outdoor_run", "running", "Running", None, "class", "Running Workout", "outdoor",
        ("iPhone", "android"), (20, 30, 45), ("Outdoor Run", "Endurance Run", "Tempo Run"),
        ("Running", "running", 10.0), "running", _OUTDOOR_METRICS, 1,
        speed_mph=(5.0, 7.2), is_outdoor=True, content_format="audio",
    ),
    KindSpec(
        "outdoor_walk", "walking", "Walking", None, "class", "Walking Workout", "outdoor",
        ("iPhone", "android"), (20, 30, 45), ("Walk + Run", "Power Walk", "Outdoor Walk"),
        ("Walk & Run Intervals", "intervals", 6.0), "running", _OUTDOOR_METRICS, 1,
        speed_mph=(3.0, 4.2), is_outdoor=True, walk_run=True, content_format="audio",
    ),
    KindSpec(
        "outdoor_just_run", "running", "Running", None, "freestyle", "Running Workout",
        "outdoor", ("iPhone", "android"), (10, 50), (), ("Running", "running", 10.0),
        "running", (), 1, speed_mph=(5.0, 7.0), is_outdoor=True,
    ),
    KindSpec(
        "outdoor_just_ride", "cycling", "Cycling", None, "freestyle", "Cycling Workout", "outdoor",
        ("iPhone", "android"), (20, 180), (), ("Cycling", "cycling", 8.0), "cycling", (), 1,
        speed_mph=(12.0, 18.5), is_outdoor=True,
    ),
    KindSpec(  # recorded on a Garmin watch and imported by Peloton: never in a random history
        "outdoor_just_run_garmin", "running", "Running", None, "freestyle", "Running Workout",
        "outdoor", ("garmin",), (20, 70), (), ("Running", "running", 10.0), "running", (), 1,
        speed_mph=(5.0, 7.2), is_outdoor=True,
    ),
    KindSpec(
        "rowing", "caesar", "Rowing", "caesar", "class", "Rowing Workout", "row", ("caesar",),
        (10, 15, 20, 30), ("Pace Target Row", "Endurance Row", "Sprint Row"),
        ("Rowing", "rowing", 7.0), "caesar", ("heart_rate", "calories"), 60,
        output_w=(80.0, 210.0),
    ),
    KindSpec(
        "strength", "strength", "Strength", None, "class", "Strength Workout", "floor",
        ("iPhone", "android", "home_bike_v2", "home_tread"), (5, 10, 20, 30),
        ("Full Body Strength", "Upper Body Strength", "Core Strength", "Glutes & Legs"),
        ("Full Body", "full_body", 5.0), "floor", ("heart_rate", "calories"), 60, mets=5.0,
    ),
    KindSpec(
        "yoga", "yoga", "Yoga", None, "class", "Yoga Workout", "floor",
        ("iPhone", "android", "home_bike_v2"), (10, 15, 20, 30),
        ("Yoga Flow", "Restorative Yoga", "Power Yoga", "Yoga Basics"),
        ("Flow", "yoga", 2.5), "floor", ("heart_rate", "calories"), 60, mets=2.8,
    ),
    KindSpec(
        "meditation", "meditation", "Meditation", None, "class", "Meditation Workout", "floor",
        ("iPhone", "android"), (5, 10, 15), ("Sleep Meditation", "Breath Meditation", "Calm"),
        ("Meditation", "meditation", 1.0), "floor", ("calories",), 60, mets=1.1,
        content_format="audio",
    ),
)  # fmt: skip

#: Every kind, by name.
KIND_SPECS: dict[str, KindSpec] = {k.name: k for k in _KINDS}
#: The kinds the generator knows, in a stable order.
KINDS: tuple[str, ...] = tuple(KIND_SPECS)

#: Display names and units of each metric slug: (display_name, imperial unit, metric unit).
METRIC_LABELS: dict[str, tuple[str, str, str]] = {
    "output": ("Output", "watts", "watts"),
    "cadence": ("Cadence", "rpm", "rpm"),
    "resistance": ("Resistance", "%", "%"),
    "speed": ("Speed", "mph", "kph"),
    "heart_rate": ("Heart Rate", "bpm", "bpm"),
    "pace": ("Pace", "min/mi", "min/km"),
    "incline": ("Incline", "%", "%"),
    "altitude": ("Elevation", "ft", "m"),
    "stroke_rate": ("Stroke Rate", "spm", "spm"),
    "split_pace": ("Split Pace", "min/500m", "min/500m"),
}

#: Metrics shown per series model, in Peloton's order.
METRICS_BY_MODEL: dict[SeriesModel, tuple[str, ...]] = {
    "bike": ("output", "cadence", "resistance", "speed", "heart_rate"),
    "tread": ("output", "pace", "incline", "heart_rate"),
    "outdoor": ("pace", "altitude", "heart_rate"),
    "row": ("output", "stroke_rate", "split_pace", "heart_rate"),
    "floor": ("heart_rate",),
}


def kind_spec(kind: str) -> KindSpec:
    """The spec of ``kind``; raises :class:`InvalidInput` naming the known kinds."""
    validate_options(kind=kind)
    return KIND_SPECS[kind]


#: Longest workout the generator makes, seconds (a long outdoor ride).
MAX_DURATION_S = 6 * 3600


def validate_options(
    *,
    kind: str | None = None,
    units: str | None = None,
    timezone: str | None = None,
    duration: int | None = None,
) -> None:
    """Raise :class:`InvalidInput` naming the first option (if given) that is not supported."""
    if kind is not None and kind not in KIND_SPECS:
        raise InvalidInput(f"unknown workout kind {kind!r} (known: {', '.join(KINDS)})")
    if units not in (None, "imperial", "metric"):
        raise InvalidInput(f"units must be 'imperial' or 'metric', got {units!r}")
    if timezone is not None and timezone not in {tz for tz, _ in TIMEZONES}:
        known = ", ".join(tz for tz, _ in TIMEZONES)
        raise InvalidInput(f"unsupported timezone {timezone!r} (known: {known})")
    if duration is not None and not 1 <= duration <= MAX_DURATION_S:
        raise InvalidInput(f"duration must be 1..{MAX_DURATION_S} seconds, got {duration!r}")


def unit_label(slug: str, units: Units) -> str:
    labels = METRIC_LABELS[slug]
    return labels[1] if units == "imperial" else labels[2]


#: Metres per second in one display unit of speed, and metres in one unit of distance.
MPS_PER_SPEED_UNIT = {"mph": 1609.344 / 3600.0, "kph": 1000.0 / 3600.0}
METRES_PER_UNIT = {"mi": 1609.344, "km": 1000.0, "m": 1.0, "ft": 0.3048}
