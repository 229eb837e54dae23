"""The destination filters and the format rule, as sync, replay and sending use them."""

from __future__ import annotations

from service.convert.formats import Format, can_write
from service.destinations.matching import wants, writable_formats
from service.destinations.models import Destination


def _destination(**values: object) -> Destination:
    return Destination(name="d", kind="webhook", formats=["fit", "gpx", "tcx"], **values)


def test_gpx_needs_gps_and_nothing_else_does() -> None:
    assert [f.value for f in Format if can_write(f, has_gps=False)] == ["tcx", "fit", "json"]
    assert all(can_write(f, has_gps=True) for f in Format)
    assert not can_write("gpx", has_gps=False)


def test_writable_formats_keep_the_destinations_order() -> None:
    destination = _destination()
    assert writable_formats(destination, has_gps=True) == ["fit", "gpx", "tcx"]
    assert writable_formats(destination, has_gps=False) == ["fit", "tcx"]


def test_unset_filters_take_everything() -> None:
    assert wants(_destination(account_ids=None, disciplines=None), 7, "cycling")


def test_account_and_discipline_filters() -> None:
    destination = _destination(account_ids=[1, 2], disciplines=["running"])
    assert wants(destination, 1, "running")
    assert not wants(destination, 3, "running")
    assert not wants(destination, 1, "cycling")


def test_imported_workouts_go_nowhere_unless_the_account_includes_them() -> None:
    open_to_all = _destination(account_ids=None, disciplines=None)
    assert wants(open_to_all, 7, "running", origin=None)
    assert not wants(open_to_all, 7, "running", origin="garmin")
    assert not wants(open_to_all, 7, "running", origin="garmin", include_external=False)
    assert wants(open_to_all, 7, "running", origin="garmin", include_external=True)
    # Including them does not get round the destination's own filters.
    narrow = _destination(account_ids=[1], disciplines=["cycling"])
    assert not wants(narrow, 7, "cycling", origin="garmin", include_external=True)
    assert not wants(narrow, 1, "running", origin="garmin", include_external=True)
    assert wants(narrow, 1, "cycling", origin="garmin", include_external=True)


def test_a_webhook_takes_workouts_only_while_subscribed_to_workout_synced() -> None:
    assert wants(_destination(config={"url": "https://a.example"}), 7, "cycling")
    subscribed = _destination(config={"events": ["workout.synced", "delivery.failed"]})
    assert wants(subscribed, 7, "cycling")
    assert not wants(_destination(config={"events": ["delivery.failed"]}), 7, "cycling")
    # Other kinds have no such setting.
    folder = Destination(name="f", kind="directory", formats=["tcx"], config={"events": []})
    assert wants(folder, 7, "cycling")
