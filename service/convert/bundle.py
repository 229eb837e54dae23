"""The converter's input: a Peloton "workout bundle", validated into typed models.

A bundle is ``{"workout": <GET /api/workout/{id}?joins=ride,ride.instructor>,
"performance_graph": <GET /api/workout/{id}/performance_graph?every_n=N>,
"ride_details": <GET /api/ride/{id}/details> or null}``. Unknown fields are ignored and most
fields may be missing; only what the converter cannot do without is required. A validation
failure becomes one :class:`ConversionError` naming the field.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    OnErrorOmit,
    ValidationError,
    field_validator,
)

from service.errors import ConversionError, validation_problems


class _In(BaseModel):
    # NaN and infinities are refused during validation (in pydantic-core, not a Python loop).
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


M = TypeVar("M", bound=BaseModel)
#: Optional detail (strength sets, class cues): absent or null is None, and an item that does
#: not validate is dropped, so one odd item of Peloton's costs that item, not the workout.
Items = list[OnErrorOmit[M]] | None


class InstructorIn(_In):
    name: str | None = None


class RideIn(_In):
    id: str | None = None
    title: str | None = None
    duration: float | None = None
    is_outdoor: bool | None = None
    instructor: InstructorIn | None = None
    #: Seconds of class video before the workout's start (cue offsets count from the video).
    pedaling_start_offset: float | None = None


class WeightDataIn(_In):
    weight_value: float | None = None
    weight_unit: str | None = None


class WeightIn(_In):
    weight_data: WeightDataIn | None = None


class RepetitionIn(_In):
    """One tracked movement of ``movement_tracker_data`` (a set)."""

    movement_id: str | None = None
    movement_name: str | None = None
    is_hold: bool | None = None
    tracking_type: str | None = None
    completed_reps: float | None = None
    completed_number: float | None = None  # older captures' name for completed_reps
    completed_duration: float | None = None
    offset: float | None = None
    length: float | None = None
    weight: Items[WeightIn] = None


class CompletedMovementsIn(_In):
    repetition_summary_data: Items[RepetitionIn] = None


class MovementTrackerIn(_In):
    completed_movements_summary_data: CompletedMovementsIn | None = None


class WorkoutIn(_In):
    id: str = Field(min_length=1)
    user_id: str | None = None
    start_time: float
    end_time: float | None = None
    timezone: str | None = None
    fitness_discipline: str = "other"
    status: str | None = None
    title: str | None = None
    name: str | None = None
    device_type: str | None = None
    device_type_display_name: str | None = None
    platform: str | None = None
    is_outdoor: bool | None = None
    total_work: float | None = None
    ride: RideIn | None = None
    movement_tracker_data: MovementTrackerIn | None = None

    @field_validator("start_time", "end_time")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not (math.isfinite(v) and 0 <= v < 32503680000):
            raise ValueError("must be epoch seconds")
        return v


class MetricIn(_In):
    slug: str
    display_unit: str | None = None
    values: list[float | None] = Field(default_factory=list)
    average_value: float | None = None
    max_value: float | None = None
    alternatives: list[MetricIn] = Field(default_factory=list)


class SummaryIn(_In):
    slug: str
    display_unit: str | None = None
    value: float | None = None


class MovementIn(_In):
    id: str | None = None
    name: str | None = None


class SubsegmentIn(_In):
    """A part of a class segment: its movements share its length."""

    length: float = Field(ge=0)
    movements: Items[MovementIn] = None


class SegmentIn(_In):
    name: str | None = None
    start_time_offset: float
    length: float
    subsegments_v2: Items[SubsegmentIn] = None


class RangeIn(_In):
    lower: float | None = None
    upper: float | None = None


class OffsetsIn(_In):
    start: float
    end: float


class CueIn(_In):
    """An instructor cue of the ride details: an interval with cadence/resistance ranges."""

    offsets: OffsetsIn
    cadence_range: RangeIn | None = None
    resistance_range: RangeIn | None = None


class TargetMetricIn(_In):
    name: str
    lower: float | None = None
    upper: float | None = None


class TargetIntervalIn(_In):
    """One interval of ``target_metrics_performance_data.target_metrics``."""

    offsets: OffsetsIn
    segment_type: str | None = None
    metrics: Items[TargetMetricIn] = None


class TargetMetricsIn(_In):
    target_metrics: Items[TargetIntervalIn] = None


class GraphDataIn(_In):
    """A target's range second by second (index = seconds from the workout's start)."""

    lower: list[float | None] = Field(default_factory=list)
    upper: list[float | None] = Field(default_factory=list)


class TargetGraphIn(_In):
    type: str
    graph_data: GraphDataIn


class LegacyTargetsIn(_In):
    """``target_performance_metrics``: the 2019-2021 shape of class targets."""

    target_graph_metrics: Items[TargetGraphIn] = None


class CoordinateIn(_In):
    seconds_offset_from_start: float = Field(ge=0)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    distance: float | None = None
    distance_display_unit: str | None = None


class LocationSegmentIn(_In):
    is_gap: bool = False
    coordinates: list[CoordinateIn] = Field(default_factory=list)


class GraphIn(_In):
    duration: float | None = None
    seconds_since_pedaling_start: list[Annotated[float, Field(ge=0)]] = Field(default_factory=list)
    metrics: list[MetricIn] = Field(default_factory=list)
    summaries: list[SummaryIn] = Field(default_factory=list)
    average_summaries: list[SummaryIn] = Field(default_factory=list)
    segment_list: list[SegmentIn] = Field(default_factory=list)
    location_data: list[LocationSegmentIn] | None = None
    target_metrics_performance_data: TargetMetricsIn | None = None
    target_performance_metrics: LegacyTargetsIn | None = None

    @field_validator("metrics", "summaries", "average_summaries", "segment_list", mode="before")
    @classmethod
    def _null_is_empty(cls, v: Any) -> Any:
        return [] if v is None else v


class RideSegmentsIn(_In):
    segment_list: list[SegmentIn] = Field(default_factory=list)


class DetailsRideIn(_In):
    pedaling_start_offset: float | None = None


class RideDetailsIn(_In):
    ride: DetailsRideIn | None = None
    segments: RideSegmentsIn | None = None
    instructor_cues: Items[CueIn] = None
    target_metrics_performance_data: TargetMetricsIn | None = None


#: A bundle with thousands of bad samples names the first ones rather than flood the terminal.
_MAX_PROBLEMS = 100


class BundleIn(_In):
    workout: WorkoutIn
    performance_graph: GraphIn
    ride_details: RideDetailsIn | None = None


def _describe(error: ValidationError) -> str:
    """Every problem, each with where it is (the first few hundred at most)."""
    problems = [
        f"{where or 'bundle'}: {message.lower()}"
        for where, message in validation_problems(error)[:_MAX_PROBLEMS]
    ]
    count = error.error_count()
    if count > _MAX_PROBLEMS:
        problems.append(f"{count - _MAX_PROBLEMS} more not shown")
    head = f"{count} problems: " if count > 1 else ""
    return head + "; ".join(problems)


def load_bundle(data: bytes | str | dict[str, Any]) -> BundleIn:
    """Validate a bundle given as JSON text or an already-decoded object."""
    try:
        if isinstance(data, dict):
            return BundleIn.model_validate(data)
        return BundleIn.model_validate_json(data)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            try:
                json.loads(data)  # type: ignore[arg-type]
            except (json.JSONDecodeError, UnicodeDecodeError) as jexc:
                raise ConversionError(f"not valid JSON: {jexc}") from None
        raise ConversionError(f"invalid workout bundle: {_describe(exc)}") from None
