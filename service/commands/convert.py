"""``pelosync convert``: a Peloton workout bundle into TCX, GPX, FIT or JSON files."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from service.convert.formats import FILE_MODE, FORMATS, Format, filename, render, render_all
from service.convert.json_format import activity_json_schema
from service.convert.peloton import parse_bundle
from service.errors import InvalidInput

EXAMPLE_BUNDLE = Path(__file__).parent.parent / "convert" / "examples" / "example_outdoor_run.json"


class FormatChoice(StrEnum):
    TCX = "tcx"
    GPX = "gpx"
    FIT = "fit"
    JSON = "json"
    ALL = "all"


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename, with
    the mode of every workout file (:data:`FILE_MODE`)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), FILE_MODE)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_input(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{source}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{source}: is a directory, not a workout bundle") from None
    except OSError as exc:
        raise InvalidInput(f"{source}: cannot read ({exc.strerror})") from None


def convert(
    bundle: Annotated[
        str | None,
        typer.Argument(
            help="Workout bundle JSON file ('-' for stdin; default: the bundled example)."
        ),
    ] = None,
    fmt: Annotated[
        FormatChoice, typer.Option("--format", "-f", help="Output format.")
    ] = FormatChoice.TCX,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output file (or folder with --format all)."),
    ] = None,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the JSON format's JSON Schema and exit.")
    ] = False,
) -> None:
    """Convert a Peloton workout bundle into TCX, GPX, FIT or JSON.

    A bundle is {"workout": ..., "performance_graph": ..., "ride_details": ...} from Peloton.

    Text formats go to stdout unless -o is given; FIT needs -o.
    """
    if schema:
        typer.echo(json.dumps(activity_json_schema(), indent=2, sort_keys=True))
        return
    source = bundle if bundle is not None else str(EXAMPLE_BUNDLE)
    activity = parse_bundle(_read_input(source))
    if fmt is FormatChoice.ALL:
        if output is None:
            raise InvalidInput("--format all writes several files: give a folder with -o DIR")
        if output.exists() and not output.is_dir():
            raise InvalidInput(f"{output}: --format all needs a folder, not a file")
        files = render_all(activity)
        for kind, data in files.items():
            target = output / filename(activity, kind)
            write_atomically(target, data)
            typer.echo(f"wrote {target} ({len(data)} bytes)")
        return
    kind = Format(fmt.value)
    data = render(activity, kind)
    if output is None:
        if FORMATS[kind].binary:
            raise InvalidInput(f"{kind.value} is a binary format: give an output file with -o")
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if output.is_dir():
        output = output / filename(activity, kind)
    write_atomically(output, data)
    typer.echo(f"wrote {output} ({len(data)} bytes)", err=True)
