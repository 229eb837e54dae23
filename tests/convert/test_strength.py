"""Strength workouts carry their sets: parsed once, written as FIT sets, JSON, never guessed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from garmin_fit_sdk import Profile

from service.convert.exercises import (
    BUILTIN_FILE,
    CATEGORY_NUMBERS,
    default_exercise_map,
    exercise_number,
    load_exercise_map,
)
from service.convert.fit import dump_fit
from service.convert.json_format import activity_json_schema, dump_json
from service.convert.model import Activity
from service.convert.peloton import parse_bundle
from service.errors import InvalidInput
from tests.convert.bundles import START, make_bundle, segment
from tests.convert.fitcheck import decode

LB = 0.45359237


def rep(
    name: str | None,
    offset: float | None,
    length: float | None,
    *,
    reps: int | None = None,
    weight: tuple[float, str] | None = None,
    tracking: str = "rep_counting",
    old: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """One repetition_summary_data item; ``old`` spells reps the 2023 way."""
    item: dict[str, Any] = {
        "movement_id": None if name is None else f"id-{name.lower().replace(' ', '-')}",
        "movement_name": name,
        "is_hold": tracking == "time_based",
        "tracking_type": tracking,
        "offset": offset,
        "length": length,
        "weight": [{"weight_category": "medium", "weight_data": {"weight_value": weight[0],
                    "weight_unit": weight[1]}}] if weight else [],
    }  # fmt: skip
    item["completed_number" if old else "completed_reps"] = reps
    return item | extra


def strength_bundle(items: list[dict[str, Any]] | None, duration: int = 600, **kw: Any) -> Any:
    bundle = make_bundle(
        offsets=list(range(0, duration + 1, 5)),
        discipline="strength",
        device_type="iPhone",
        segments=[segment("Warmup", 0, 120), segment("Full Body", 120, duration - 120)],
        duration=duration,
        **kw,
    )
    if items is not None:
        bundle["workout"]["movement_tracker_data"] = {
            "completed_movements_summary_data": {"repetition_summary_data": items}
        }
    return bundle


TRACKED = [
    rep("Goblet Squat", 130, 45, reps=12, weight=(25, "lb")),
    rep("Bent Over Row", 190, 40, reps=10, weight=(10, "kg"), old=True),
    rep("Forearm Plank", 250, 30, tracking="time_based", completed_duration=28),
    rep("Rest", 280, 20),
    rep("Push Up", 300, 35, reps=15, weight=(0, "lb")),
    rep("Sandbox Shuffle", 340, 30, reps=8),  # no Garmin exercise: unknown, never guessed
]


def test_tracked_sets_are_parsed_with_rests_between() -> None:
    act = parse_bundle(strength_bundle(TRACKED))
    got = [(s.kind, s.start_offset_s, s.duration_s, s.movement_name) for s in act.sets]
    assert got == [
        ("active", 130, 45, "Goblet Squat"),
        ("rest", 175, 15, None),
        ("active", 190, 40, "Bent Over Row"),
        ("rest", 230, 20, None),
        ("active", 250, 28, "Forearm Plank"),  # time-based: its completed duration
        ("rest", 278, 22, None),  # the gap and the "Rest" movement make one rest
        ("active", 300, 35, "Push Up"),
        ("rest", 335, 5, None),
        ("active", 340, 30, "Sandbox Shuffle"),
    ]
    squat, row, plank, push_up, shuffle = (s for s in act.sets if s.kind == "active")
    assert (squat.repetitions, squat.weight_kg) == (12, round(25 * LB, 3))
    assert (row.repetitions, row.weight_kg) == (10, 10.0)  # completed_number (older captures)
    assert (plank.repetitions, plank.is_hold, plank.tracking_type) == (None, True, "time_based")
    assert push_up.weight_kg == 0.0  # body weight
    assert (squat.exercise_category, squat.exercise_name) == ("squat", "goblet_squat")
    assert (row.exercise_category, row.exercise_name) == ("row", "bent_over_row_with_dumbell")
    assert (shuffle.exercise_category, shuffle.exercise_name) == ("unknown", None)
    assert shuffle.movement_name == "Sandbox Shuffle"
    assert all(s.source == "tracked" for s in act.sets)
    assert squat.start == act.start + timedelta(seconds=130)


def test_optional_fields_absent_or_null_and_bad_items_cost_only_themselves() -> None:
    items: list[Any] = [
        {"movement_name": "Squat", "offset": 10, "length": 20},  # nothing else
        {"movement_name": None, "offset": None, "length": None, "weight": None},  # no time
        {"movement_name": "Lunge", "offset": "soon", "length": 20},  # not a number: dropped
        "garbage",
        rep("Lunge", 40, 20, reps=None, weight=(12, "stone")),  # unknown unit: not guessed
    ]
    act = parse_bundle(strength_bundle(items))
    assert [(s.kind, s.movement_name, s.repetitions, s.weight_kg) for s in act.sets] == [
        ("active", "Squat", None, None),
        ("rest", None, None, None),
        ("active", "Lunge", None, None),
    ]
    bundle = strength_bundle(None)
    bundle["workout"]["movement_tracker_data"] = None
    assert parse_bundle(bundle).sets == []


def test_sets_are_clipped_to_a_workout_stopped_early() -> None:
    items = [rep("Squat", 500, 90, reps=20), rep("Lunge", 620, 30, reps=10)]
    act = parse_bundle(strength_bundle(items, duration=560))
    assert [(s.movement_name, s.start_offset_s, s.duration_s) for s in act.sets] == [
        ("Squat", 500, 60)
    ]


def plan_details(duration: int = 600) -> dict[str, Any]:
    main = segment("Full Body", 120, duration - 120)
    main["subsegments_v2"] = [
        {"length": 60, "type": "exercise", "movements": [{"id": "m1", "name": "Air Squat"}]},
        {"length": 30, "movements": []},  # a break in the plan: rest
        {"length": 80, "movements": [{"id": "m2", "name": "Bicep Curl"},
                                     {"id": "m3", "name": "Hammer Curl"}]},
        {"length": 40, "movements": [{"id": "m4", "name": "Rest"}]},
        {"length": 60, "movements": None},
        {"length": 50, "movements": [{"id": "m5", "name": "Mystery Move"}]},
    ]  # fmt: skip
    warm = segment("Warmup", 0, 120)
    warm["subsegments_v2"] = None
    return {"segments": {"segment_list": [warm, main]}}


def test_class_plan_sets_when_nothing_was_tracked() -> None:
    act = parse_bundle(strength_bundle(None, ride_details=plan_details()))
    got = [(s.kind, s.start_offset_s, s.duration_s, s.movement_name) for s in act.sets]
    assert got == [
        ("active", 120, 60, "Air Squat"),
        ("rest", 180, 30, None),
        ("active", 210, 40, "Bicep Curl"),  # two movements share their subsegment
        ("active", 250, 40, "Hammer Curl"),
        ("rest", 290, 100, None),  # the "Rest" movement and the empty subsegment after it
        ("active", 390, 50, "Mystery Move"),
    ]
    assert {s.source for s in act.sets} == {"class_plan"}
    assert all(s.repetitions is None and s.weight_kg is None for s in act.sets)
    assert act.sets[-1].exercise_category == "unknown"


def test_tracked_sets_win_over_the_class_plan_and_cycling_plans_make_no_sets() -> None:
    act = parse_bundle(strength_bundle(TRACKED[:1], ride_details=plan_details()))
    assert [s.movement_name for s in act.sets] == ["Goblet Squat"]
    ride = strength_bundle(None, ride_details=plan_details())
    ride["workout"]["fitness_discipline"] = "cycling"
    assert parse_bundle(ride).sets == []


def test_fit_has_one_set_message_per_set_decoded_by_both_libraries() -> None:
    act = parse_bundle(strength_bundle(TRACKED))
    fit = decode(dump_fit(act))
    sets = fit.all("set")
    assert len(sets) == len(act.sets) == len(fit.fd["set"])
    for i, (ours, theirs, model) in enumerate(zip(sets, fit.fd["set"], act.sets, strict=True)):
        for decoded in (ours, theirs):
            assert decoded["set_type"] == model.kind
            assert decoded["start_time"] == act.start + timedelta(seconds=model.start_offset_s)
            assert decoded["duration"] == pytest.approx(model.duration_s)
            assert decoded["message_index"] == i
        if model.kind == "rest":
            assert "repetitions" not in ours and "category" not in ours
            continue
        assert ours.get("repetitions") == model.repetitions
        if model.weight_kg:
            assert ours["weight"] == pytest.approx(model.weight_kg, abs=1 / 16)
            assert ours["weight_display_unit"] == "kilogram"
        else:
            assert "weight" not in ours  # body weight (0) or unknown: no weight
        assert ours["category"] == model.exercise_category == theirs["category"]
        if model.exercise_name:
            number = exercise_number(model.exercise_category or "", model.exercise_name)
            assert ours["category_subtype"] == number == theirs["category_subtype"]
        else:
            assert "category_subtype" not in ours
    titles = {t["message_index"]: t for t in fit.all("exercise_title")}
    by_step = {s["wkt_step_index"]: s for s in sets if s["set_type"] == "active"}
    assert titles.keys() == by_step.keys()
    names = {titles[i]["wkt_step_name"] for i in titles}
    assert names == {"Goblet Squat", "Bent Over Row", "Forearm Plank", "Push Up", "Sandbox Shuffle"}
    shuffle = next(t for t in titles.values() if t["wkt_step_name"] == "Sandbox Shuffle")
    assert shuffle["exercise_category"] == "unknown" and "exercise_name" not in shuffle
    # The laps and the session still add up to the workout.
    assert fit.one("session")["total_elapsed_time"] == act.summary.duration_s
    assert sum(lap["total_elapsed_time"] for lap in fit.all("lap")) == act.summary.duration_s


def test_fit_with_sets_is_deterministic_and_without_sets_unchanged() -> None:
    bundle = strength_bundle(TRACKED)
    assert dump_fit(parse_bundle(bundle)) == dump_fit(parse_bundle(json.dumps(bundle)))
    plain = decode(dump_fit(parse_bundle(strength_bundle(None))))
    assert "set" not in plain.sdk and "exercise_title" not in plain.sdk


def test_json_round_trip_carries_the_sets() -> None:
    act = parse_bundle(strength_bundle(TRACKED))
    again = Activity.model_validate_json(dump_json(act))
    assert again.sets == act.sets
    assert dump_json(again) == dump_json(act)
    schema = activity_json_schema()
    assert "sets" in schema["properties"]  # type: ignore[operator]
    assert "StrengthSet" in schema["$defs"]  # type: ignore[operator]


def test_every_mapping_entry_exists_in_the_fit_profile() -> None:
    table = json.loads(BUILTIN_FILE.read_text())
    assert len(table["movements"]) >= 80
    for movement, entry in table["movements"].items():
        assert entry["category"] in CATEGORY_NUMBERS, movement
        names = Profile["types"][f"{entry['category']}_exercise_name"]
        assert entry["name"] in names.values(), movement
    families = {e["category"] for e in table["movements"].values()}
    common = {"bench_press", "shoulder_press", "row", "curl", "squat", "lunge", "deadlift",
              "push_up", "plank", "crunch", "triceps_extension", "hip_raise"}  # fmt: skip
    assert common <= families
    built_in = load_exercise_map()
    assert built_in.lookup(None, "PUSH-UP").name == "push_up"  # case and punctuation ignored
    assert built_in.lookup(None, "Not A Movement").category == "unknown"


def test_operator_file_extends_and_overrides(tmp_path: Path) -> None:
    extra = tmp_path / "mine.json"
    extra.write_text(
        json.dumps(
            {
                "rest": ["Shake It Out"],
                "movements": {
                    "Sandbox Shuffle": {"category": "cardio", "name": "jumping_jacks"},
                    "Goblet Squat": {"category": "squat", "name": "dumbbell_squat", "ids": ["g1"]},
                },
            }
        )
    )
    table = load_exercise_map(extra)
    assert table.lookup(None, "sandbox shuffle").name == "jumping_jacks"
    assert table.lookup(None, "Goblet Squat").name == "dumbbell_squat"
    assert table.lookup("g1", "renamed by Peloton").name == "dumbbell_squat"
    assert table.lookup(None, "Bicep Curl").category == "curl"  # built-in kept
    assert table.is_rest("shake it out")
    act = parse_bundle(strength_bundle(TRACKED), exercises=table)
    shuffle = next(s for s in act.sets if s.movement_name == "Sandbox Shuffle")
    assert (shuffle.exercise_category, shuffle.exercise_name) == ("cardio", "jumping_jacks")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"movements": {"Squat": {"category": "squats", "name": "squat"}}}', "'squats' is not"),
        ('{"movements": {"Squat": {"category": "squat", "name": "sqaut"}}}', "'sqaut' is not"),
        ('{"movements": {"Squat": {"category": "unknown", "name": "x"}}}', "'unknown' is not"),
        ('{"movements": {"Squat": "squat"}}', "expected an object"),
        ('{"movements": []}', "expected {'movements'"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_operator_file_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    extra = tmp_path / "bad.json"
    extra.write_text(content)
    with pytest.raises(InvalidInput, match=message) as info:
        load_exercise_map(extra)
    assert str(extra) in str(info.value)
    with pytest.raises(InvalidInput, match="No such file"):
        load_exercise_map(tmp_path / "missing.json")


def test_the_setting_names_the_extra_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from service.config import get_settings

    extra = tmp_path / "mine.json"
    extra.write_text('{"movements": {"Zz Move": {"category": "plank", "name": "side_plank"}}}')
    monkeypatch.setenv("PELOSYNC_STRENGTH_EXERCISES_FILE", str(extra))
    get_settings.cache_clear()
    default_exercise_map.cache_clear()
    try:
        assert default_exercise_map().lookup(None, "zz move").name == "side_plank"
    finally:
        get_settings.cache_clear()
        default_exercise_map.cache_clear()


def test_start_is_the_workout_start() -> None:
    act = parse_bundle(strength_bundle(TRACKED))
    assert act.start.timestamp() == START


async def test_the_service_refuses_to_start_with_a_bad_file(tmp_path: Path) -> None:
    from service.config import Settings
    from service.runtime import open_runtime

    bad = tmp_path / "bad.json"
    bad.write_text('{"movements": {"Squat": {"category": "squat", "name": "nope"}}}')
    settings = Settings(data_dir=tmp_path, strength_exercises_file=bad)
    with pytest.raises(InvalidInput, match="'nope' is not a FIT exercise name"):
        async with open_runtime(settings):
            pass
