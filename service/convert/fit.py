r"""Write an :class:`~service.convert.model.Activity` as a FIT activity file.

Message order: ``file_id``, ``file_creator``, ``device_info`` (creator), ``event`` timer start,
the ``record`` stream, ``event`` timer stop_all, ``workout`` and its ``workout_step``\ s when
laps carry class targets, one ``lap`` per ``activity.laps`` entry (one synthetic lap from the
summary if there are none), strength ``set``\ s and their ``exercise_title``\ s, ``session``,
``activity`` (see ``fit_steps`` for the class-driven messages).

The single messages are written by the FIT SDK's ``Encoder``; the records take a struct-based
fast path (``fit_records``) because the SDK is ten times too slow for them, and so do the runs
of laps, workout steps, sets and exercise titles (``fit_table``), which a class followed cue
by cue, or a strength class, has by the dozen.

Rules the writer keeps:

* Deterministic: the same Activity gives byte-identical output. No wall-clock time is read;
  ``time_created`` is the workout start and the default serial number is a hash of the
  workout id.
* UTC everywhere; only ``activity.local_timestamp`` is shifted, by ``activity.utc_offset_s``,
  and only when that offset is known.
* A ``None`` is never written as 0, and a value its FIT field cannot hold (HR 300, negative
  power, NaN) is left out rather than wrapped or clamped (see ``fit_profile``).
* Fractional sample offsets are rounded to whole FIT seconds (see ``fit_records``).
* A workout with no samples still gets two timestamp-only records, at start and end, so tools
  that want a time series (Strava) accept it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from garmin_fit_sdk import Encoder

from service import __version__
from service.convert.fit_profile import TYPES, clean, field_spec, fit_string, fit_time
from service.convert.fit_records import (
    CRC_SIZE,
    HEADER_SIZE,
    bare_records,
    frame,
    record_columns,
    records,
)
from service.convert.fit_steps import has_steps, set_messages, step_messages
from service.convert.fit_table import table
from service.convert.model import Activity, Discipline, Lap, Stats
from service.errors import ConversionError, InvalidInput

__all__ = ["SPORTS", "FitDevice", "FitSport", "dump_fit", "fit_sport", "pelosync_device"]


class FitSport(NamedTuple):
    """A FIT ``sport`` / ``sub_sport`` pair, by profile type name."""

    sport: str
    sub_sport: str


# Discipline -> (indoor, outdoor). Bootcamps split their time between the machine and the
# floor, so they are cardio training rather than the machine's sport (which would put floor
# minutes into cycling or running totals). Tests check every name against the FIT profile.
SPORTS: dict[Discipline, tuple[FitSport, FitSport]] = {
    Discipline.CYCLING: (FitSport("cycling", "indoor_cycling"), FitSport("cycling", "road")),
    Discipline.RUNNING: (FitSport("running", "treadmill"), FitSport("running", "generic")),
    Discipline.WALKING: (FitSport("walking", "indoor_walking"), FitSport("walking", "generic")),
    Discipline.ROWING: (FitSport("rowing", "indoor_rowing"), FitSport("rowing", "generic")),
    Discipline.BIKE_BOOTCAMP: (FitSport("training", "cardio_training"),) * 2,
    Discipline.TREAD_BOOTCAMP: (FitSport("training", "cardio_training"),) * 2,
    Discipline.ROW_BOOTCAMP: (FitSport("training", "cardio_training"),) * 2,
    Discipline.STRENGTH: (FitSport("training", "strength_training"),) * 2,
    Discipline.YOGA: (FitSport("training", "yoga"),) * 2,
    Discipline.MEDITATION: (FitSport("meditation", "generic"),) * 2,
    Discipline.STRETCHING: (FitSport("training", "flexibility_training"),) * 2,
    Discipline.CARDIO: (FitSport("training", "cardio_training"),) * 2,
    Discipline.OTHER: (FitSport("generic", "generic"),) * 2,
}


# Local message numbers of the packed runs (records use 15; the SDK's segments count from 0).
_LAP_LOCAL_NUM, _STEP_LOCAL_NUM, _SET_LOCAL_NUM, _TITLE_LOCAL_NUM = 14, 13, 12, 11


def fit_sport(discipline: Discipline, is_outdoor: bool) -> FitSport:
    """The FIT sport and sub-sport for a discipline."""
    indoor, outdoor = SPORTS[discipline]
    return outdoor if is_outdoor else indoor


_MANUFACTURERS = frozenset(TYPES["manufacturer"].values())
# Older FIT profiles have no Peloton entry; "development" is the honest fallback.
PELOTON_MANUFACTURER = "peloton" if "peloton" in _MANUFACTURERS else "development"


@dataclass(frozen=True, slots=True)
class FitDevice:
    """The device a FIT file says it was recorded on (``file_id`` and creator ``device_info``).

    ``serial_number=None`` derives one from the workout id; ``product_name=None`` omits it.
    ``software_version`` is in Garmin's X.YY form, e.g. ``19.2`` for firmware 19.20.
    """

    manufacturer: str
    product: int | None = None
    serial_number: int | None = None
    software_version: float | None = None
    product_name: str | None = None

    def __post_init__(self) -> None:
        if self.manufacturer not in _MANUFACTURERS:
            raise InvalidInput(f"unknown FIT manufacturer {self.manufacturer!r}")
        checks = (
            ("product", self.product, field_spec("file_id", "product")),
            ("serial_number", self.serial_number, field_spec("file_id", "serial_number")),
            (
                "software_version",
                self.software_version,
                field_spec("device_info", "software_version"),
            ),
        )
        for name, value, spec in checks:
            if value is not None and spec.raw(value) is None:
                raise InvalidInput(f"FIT device {name} {value!r} is out of range")


def _version_number(version: str) -> float:
    major, minor = (int(part) for part in version.split(".")[:2])
    return major + minor / 100


def pelosync_device(activity: Activity) -> FitDevice:
    """The default, honest device: pelosync's own software on the Peloton that recorded it."""
    return FitDevice(
        manufacturer=PELOTON_MANUFACTURER,
        software_version=_version_number(__version__),
        product_name=activity.device.name,
    )


def _serial(workout_id: str) -> int:
    # uint32z: 0 means "invalid", so map it to 1.
    return int.from_bytes(hashlib.sha256(workout_id.encode()).digest()[:4], "little") or 1


def _cadence_factor(sport: FitSport) -> float:
    """Model cadence -> FIT cadence: FIT counts running and walking cadence in strides (one
    foot), the model in steps; Garmin Connect and Strava double it back for display."""
    return 0.5 if sport.sport in ("running", "walking") else 1.0


def _stats_fields(stats: Stats, sport: FitSport) -> dict[str, Any]:
    factor = _cadence_factor(sport)

    def cadence(value: float | None) -> float | None:
        return None if value is None else value * factor

    return {
        "total_elapsed_time": stats.duration_s,
        "total_timer_time": stats.duration_s,  # pauses are not modelled
        "total_distance": stats.distance_m,
        "total_calories": stats.calories_kcal,
        "avg_speed": stats.avg_speed,
        "max_speed": stats.max_speed,
        "enhanced_avg_speed": stats.avg_speed,
        "enhanced_max_speed": stats.max_speed,
        "avg_heart_rate": stats.avg_heart_rate,
        "max_heart_rate": stats.max_heart_rate,
        "avg_cadence": cadence(stats.avg_cadence),
        "max_cadence": cadence(stats.max_cadence),
        "avg_power": stats.avg_power,
        "max_power": stats.max_power,
    }


def _segment(messages: Iterable[dict[str, Any]]) -> bytes:
    """The messages as the SDK encodes them, without its file header and CRC.

    Each segment defines every local message number before using it, so segments and the
    record stream can be concatenated in any order into one valid body.
    """
    encoder = Encoder()
    for message in messages:
        encoder.write_mesg(message)
    return encoder.close()[HEADER_SIZE:-CRC_SIZE]


def _head(activity: Activity, device: FitDevice, start: int, timer: int) -> list[dict[str, Any]]:
    serial = device.serial_number or _serial(activity.source.workout_id)
    name = fit_string(device.product_name) if device.product_name else None
    identity = {
        "manufacturer": device.manufacturer,
        "product": device.product,
        "serial_number": serial,
        "product_name": name,
    }
    version = device.software_version
    return [
        clean("file_id", {"type": "activity", **identity, "time_created": start}),
        clean("file_creator", {"software_version": None if version is None else version * 100}),
        clean(
            "device_info",
            {
                "timestamp": start,
                "device_index": 0,  # the creator
                **identity,
                "software_version": version,
                "source_type": "local",
            },
        ),
        clean(
            "event", {"timestamp": timer, "event": "timer", "event_type": "start", "event_group": 0}
        ),
    ]


def _lap(lap: Lap, index: int, last: bool, sport: FitSport, step: bool) -> dict[str, Any]:
    end = lap.start + timedelta(seconds=lap.stats.duration_s)
    return clean(
        "lap",
        {
            "message_index": index,
            "timestamp": fit_time(end, f"lap {index} end"),
            "event": "lap",
            "event_type": "stop",
            "start_time": fit_time(lap.start, f"lap {index} start"),
            **_stats_fields(lap.stats, sport),
            "sport": sport.sport,
            "sub_sport": sport.sub_sport,
            "lap_trigger": "session_end" if last else "fitness_equipment",
            "wkt_step_index": index if step else None,
        },
    )


def _tail(activity: Activity, sport: FitSport, start: int, end: int, stop: int) -> bytes:
    laps = activity.laps or [Lap(start_offset_s=0, start=activity.start, stats=activity.summary)]
    summary = activity.summary
    local = None if activity.utc_offset_s is None else end + activity.utc_offset_s
    steps = has_steps(activity)
    workout, step_list = (
        step_messages(activity, sport.sport, sport.sub_sport) if steps else ({}, [])
    )
    sets, titles = set_messages(activity)
    lap_list = [_lap(lap, i, i == len(laps) - 1, sport, steps) for i, lap in enumerate(laps)]
    stop_event = clean(
        "event", {"timestamp": stop, "event": "timer", "event_type": "stop_all", "event_group": 0}
    )
    session = clean(
        "session",
        {
            "message_index": 0,
            "timestamp": end,
            "event": "session",
            "event_type": "stop",
            "start_time": start,
            "sport": sport.sport,
            "sub_sport": sport.sub_sport,
            **_stats_fields(summary, sport),
            "total_work": summary.total_work_j,
            "total_ascent": summary.elevation_gain_m,
            "avg_grade": summary.avg_incline,
            "first_lap_index": 0,
            "num_laps": len(laps),
            "trigger": "activity_end",
        },
    )
    activity_message = clean(
        "activity",
        {
            "timestamp": end,
            "total_timer_time": summary.duration_s,
            "num_sessions": 1,
            "type": "manual",
            "event": "activity",
            "event_type": "stop",
            "event_group": 0,
            "local_timestamp": local,
        },
    )
    # The runs of laps, steps and sets are packed directly (fit_table); the rest by the SDK.
    return (
        _segment([stop_event, *([workout] if steps else [])])
        + table("workout_step", step_list, _STEP_LOCAL_NUM)
        + table("lap", lap_list, _LAP_LOCAL_NUM)
        + table("set", sets, _SET_LOCAL_NUM)
        + table("exercise_title", titles, _TITLE_LOCAL_NUM)
        + _segment([session, activity_message])
    )


def dump_fit(activity: Activity, *, device: FitDevice | None = None) -> bytes:
    """The activity as a FIT activity file.

    ``device`` is what the file claims to come from; the default, :func:`pelosync_device`,
    says pelosync on a Peloton. Raises :class:`ConversionError` for times FIT cannot store or
    samples that go back in time.
    """
    if activity.end < activity.start:
        raise ConversionError("workout ends before it starts")
    device = device or pelosync_device(activity)
    sport = fit_sport(activity.discipline, activity.is_outdoor)
    start = fit_time(activity.start, "workout start")
    end = fit_time(activity.end, "workout end")

    columns = record_columns(
        activity.samples, activity.start.timestamp(), cadence_factor=_cadence_factor(sport)
    ) or bare_records(start, end)  # no samples: start and end records still make a series
    stamps = columns[0][1]
    stop = max(end, stamps[-1])

    body = (
        _segment(_head(activity, device, start, min(start, stamps[0])))
        + records(columns)
        + _tail(activity, sport, start, end, stop)
    )
    return frame(body)
