"""`pelosync convert` as a user runs it: real process, exit codes, stderr, files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.commands.convert import EXAMPLE_BUNDLE
from service.convert.model import Activity
from tests.convert.bundles import make_bundle, metric
from tests.convert.fitcheck import decode
from tests.convert.xsd import validate_gpx, validate_tcx


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", "from service.cli import main; main()", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_example_converts_to_every_format(tmp_path: Path) -> None:
    result = run("convert", str(EXAMPLE_BUNDLE), "--format", "all", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    files = {p.suffix: p for p in tmp_path.iterdir()}
    assert set(files) == {".tcx", ".gpx", ".fit", ".json"}
    validate_tcx(files[".tcx"].read_bytes())
    validate_gpx(files[".gpx"].read_bytes())
    decode(files[".fit"].read_bytes())
    Activity.model_validate_json(files[".json"].read_bytes())
    assert not list(tmp_path.glob(".*.tmp"))


def test_text_format_goes_to_stdout_and_reads_stdin() -> None:
    bundle = make_bundle(offsets=[1, 2], metrics=[metric("heart_rate", "bpm", [90, 91])])
    result = run("convert", "-", "--format", "json", stdin=json.dumps(bundle).encode())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["samples"][1]["heart_rate"] == 91


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("convert", "/nonexistent/x.json"), None, "/nonexistent/x.json: no such file"),
        (("convert", "-"), b"{not json", "not valid JSON"),
        (
            ("convert", "-"),
            b'{"workout": {}}',
            "invalid workout bundle: 3 problems: workout.id: field required; "
            "workout.start_time: field required; performance_graph: field required",
        ),
        (("convert", "-f", "fit"), None, "binary format"),
        (("convert", "-f", "all"), None, "give a folder with -o DIR"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(
    args: tuple[str, ...], stdin: bytes | None, message: str
) -> None:
    result = run(*args, stdin=stdin)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_bundle_with_two_problems_names_both() -> None:
    bundle = make_bundle(offsets=[1, 2])
    bundle["workout"]["start_time"] = "yesterday"
    bundle["performance_graph"]["seconds_since_pedaling_start"] = [1, -2]
    result = run("convert", "-", "--format", "json", stdin=json.dumps(bundle).encode())
    assert result.returncode == 2
    err = result.stderr.decode().strip()
    assert err.startswith("pelosync: error: invalid workout bundle: 2 problems: workout.start_time")
    assert "performance_graph.seconds_since_pedaling_start.1: input should be greater" in err
    assert "more problem" not in err and len(err.splitlines()) == 1


def test_gpx_of_indoor_workout_is_refused_without_partial_file(tmp_path: Path) -> None:
    source = tmp_path / "ride.json"
    source.write_text(json.dumps(make_bundle(offsets=[1, 2])))
    target = tmp_path / "out.gpx"
    result = run("convert", str(source), "-f", "gpx", "-o", str(target))
    assert result.returncode == 2
    assert "workout has no GPS track; use tcx or fit" in result.stderr.decode()
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ride.json"]


def test_unknown_unit_fails_without_touching_the_output(tmp_path: Path) -> None:
    bundle = make_bundle(offsets=[1, 2], metrics=[metric("speed", "furlongs", [1.0, 2.0])])
    source = tmp_path / "b.json"
    source.write_text(json.dumps(bundle))
    target = tmp_path / "out.tcx"
    target.write_text("previous content")
    result = run("convert", str(source), "-o", str(target))
    assert result.returncode == 2
    assert "unknown speed or pace unit 'furlongs'" in result.stderr.decode()
    assert target.read_text() == "previous content"


def test_unknown_format_is_a_usage_error() -> None:
    result = run("convert", "-f", "pdf")
    assert result.returncode == 2
    assert b"Traceback" not in result.stderr
