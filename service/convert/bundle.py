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
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service.errors import ConversionError


class _In(BaseModel):
    # NaN and infinities are refused during validation (in pydantic-core, not a Python loop).
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class InstructorIn(_In):
    name: str | None = None


class RideIn(_In):
    id: str | None = None
    title: str | None = None
    duration: float | None = None
    is_outdoor: bool | None = None
    instructor: InstructorIn | None = None


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


class SegmentIn(_In):
    name: str | None = None
    start_time_offset: float
    length: float


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

    @field_validator("metrics", "summaries", "average_summaries", "segment_list", mode="before")
    @classmethod
    def _null_is_empty(cls, v: Any) -> Any:
        return [] if v is None else v


class RideSegmentsIn(_In):
    segment_list: list[SegmentIn] = Field(default_factory=list)


class RideDetailsIn(_In):
    segments: RideSegmentsIn | None = None


#: A bundle with thousands of bad samples names the first ones rather than flood the terminal.
_MAX_PROBLEMS = 100


class BundleIn(_In):
    workout: WorkoutIn
    performance_graph: GraphIn
    ride_details: RideDetailsIn | None = None


def _describe(error: ValidationError) -> str:
    """Every problem, each with where it is (the first few hundred at most)."""
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or 'bundle'}: {e['msg'].lower()}"
        for e in error.errors()[:_MAX_PROBLEMS]
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
