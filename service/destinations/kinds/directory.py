"""Folder export: each converted file is written under a root folder by a path template.

Placeholders (values from the workout, dates and times in UTC):

* ``account`` (the account's label), ``account_id``
* ``date`` (``YYYY-MM-DD`` of the start), ``time`` (``HHMM`` of the start)
* ``discipline``, ``title``, ``instructor`` (``unknown`` when absent)
* ``workout_id`` (Peloton's workout id), ``format`` (``fit``...), ``ext`` (the file's extension)
* ``filename``: the file's name as everywhere else (``pelosync convert``, downloads, webhooks:
  :func:`~service.convert.formats.file_name`)

The default template is ``{account}/{filename}``: the same name as a download of the file, unique
per workout (it ends with the start of Peloton's workout id), so two workouts with the same title
on the same day (a repeated class, two warm-ups) never overwrite each other.

Every value is sanitised (no path separators, no ``..``, no control or Windows-reserved
characters, at most :data:`VALUE_MAX_CHARS` characters) and the final path must stay inside the
root, symlinks included. Writes are atomic (a temporary file in the target folder, fsync,
``os.replace``) and idempotent: identical bytes already at the path are a success without a
rewrite; different bytes replace the file (the workout was converted again). A full disk,
read-only or permission error is retried, with nothing partial left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import string
import tempfile
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from service.convert.formats import FILE_MODE
from service.destinations.kinds.base import (
    Delivered,
    DeliveryError,
    DeliveryRequest,
    PermanentFailure,
)
from service.errors import InvalidInput

DEFAULT_TEMPLATE = "{account}/{filename}"
PLACEHOLDERS = frozenset(
    {"account", "account_id", "date", "time", "discipline", "title", "instructor"}
    | {"workout_id", "format", "ext", "filename"}
)
VALUE_MAX_CHARS = 80
NAME_MAX_BYTES = 255  # a path component on ext4, APFS, NTFS...
_FORBIDDEN = set('/\\<>:"|?*')

_OS_ERRORS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def _parse_template(template: str) -> list[tuple[str, str | None]]:
    """``[(literal, placeholder or None), ...]``; ValueError naming what is wrong."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"the template cannot be parsed: {exc}") from None
    result: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parts:
        if name is not None:
            if name not in PLACEHOLDERS:
                known = ", ".join(sorted(PLACEHOLDERS))
                raise ValueError(f"unknown placeholder {{{name}}}; use one of {known}")
            if spec or conversion:
                raise ValueError(f"placeholder {{{name}}} takes no format or conversion")
        result.append((literal, name))
    return result


def sanitise(value: str) -> str:
    """A placeholder value made safe as (part of) one file name."""
    value = unicodedata.normalize("NFC", value)
    cleaned = "".join(
        " "
        if c.isspace()
        else "_"
        if c in _FORBIDDEN or unicodedata.category(c) in ("Cc", "Cf")
        else c
        for c in value
    )
    cleaned = " ".join(cleaned.split())[:VALUE_MAX_CHARS]
    # Leading/trailing dots and spaces: no "..", no hidden files, nothing Windows trims.
    cleaned = cleaned.strip(" .")
    return cleaned or "_"


def _fit_component(name: str) -> str:
    """Shorten a path component over :data:`NAME_MAX_BYTES`, keeping its extension."""
    if len(name.encode()) <= NAME_MAX_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, ext = name, ""
    room = NAME_MAX_BYTES - len(ext.encode()) - len(dot)
    cut = stem.encode()[:room].decode("utf-8", errors="ignore").rstrip(" .")
    return f"{cut}{dot}{ext}" if ext else cut


class DirectoryConfig(BaseModel):
    """A folder destination: an absolute root and a relative path template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path
    template: str = DEFAULT_TEMPLATE

    @field_validator("root")
    @classmethod
    def _root(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"the folder must be an absolute path, not {str(value)!r}")
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        parsed = _parse_template(value)
        literals = "".join(literal for literal, _ in parsed)
        if value.startswith("/") or "\\" in literals or "\0" in literals:
            raise ValueError("the template must be a relative path using '/' between folders")
        # Placeholders never render to "." or "..", so a sample rendering shows the folders.
        sample = "".join(literal + ("x" if name else "") for literal, name in parsed)
        if any(part in ("..", ".") for part in sample.split("/")):
            raise ValueError("the template must not contain '.' or '..' folders")
        names = {name for _, name in parsed if name}
        if not names & {"ext", "format", "filename"}:
            raise ValueError(
                "the template needs {filename}, {ext} or {format} (formats would overwrite)"
            )
        if value.endswith("/"):
            raise ValueError("the template must end with a file name")
        return value

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> DirectoryConfig:
        """From the stored config; :class:`InvalidInput` naming the problem."""
        try:
            return cls.model_validate(dict(config))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise InvalidInput(f"invalid folder settings: {problems}") from None


def render_path(config: DirectoryConfig, request: DeliveryRequest) -> Path:
    """Where ``request``'s file goes; :class:`PermanentFailure` if it would leave the root."""
    workout, file = request.workout, request.file
    start = workout.start
    ext = Path(file.filename).suffix.lstrip(".") or file.format
    values = {
        "account": request.account.label,
        "account_id": str(request.account.id),
        "date": start.strftime("%Y-%m-%d"),
        "time": start.strftime("%H%M"),
        "discipline": workout.discipline,
        "title": workout.title,
        "instructor": workout.instructor or "unknown",
        "workout_id": workout.peloton_workout_id,
        "format": file.format,
        "ext": ext,
        "filename": file.filename,
    }
    rendered = "".join(
        literal + (sanitise(values[name]) if name else "")
        for literal, name in _parse_template(config.template)
    )
    components = [_fit_component(part) for part in rendered.split("/") if part]
    path = config.root.joinpath(*components)
    root = os.path.realpath(config.root)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root or real == root:
        raise PermanentFailure(f"the path for {file.filename} leaves the folder {config.root}")
    return path


def _os_error(exc: OSError, action: str, path: Path) -> DeliveryError:
    what = _OS_ERRORS.get(exc.errno or 0) or exc.strerror or type(exc).__name__
    return DeliveryError(f"{what} {action} {path}")


def _same_content(path: Path, data: bytes) -> bool:
    try:
        if not path.is_file() or path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` all or nothing; False if identical bytes were already there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(exc, "creating", path.parent) from None
    if _same_content(path, data):
        return False
    tmp: str | None = None
    try:
        # A short hidden name: the target's own name may already be at the length limit.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".pelosync-", suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), FILE_MODE)
            os.fsync(out.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise _os_error(exc, "writing", path) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _fsync_dir(path.parent)
    return True


def _probe(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(exc, "creating", root) from None
    probe = root / f".pelosync-probe-{secrets.token_hex(8)}"
    try:
        probe.write_bytes(b"pelosync write test\n")
    except OSError as exc:
        raise _os_error(exc, "writing", probe) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


class DirectoryKind:
    """Writes workouts into a folder (a mounted volume, a NAS share, a synced folder)."""

    def __init__(self, config: DirectoryConfig) -> None:
        self._config = config

    async def deliver(self, request: DeliveryRequest) -> Delivered:
        """Write the file; ``external_id`` is the path written."""
        return await asyncio.to_thread(self._deliver, request)

    def _deliver(self, request: DeliveryRequest) -> Delivered:
        path = render_path(self._config, request)  # resolves symlinks: file system calls too
        written = write_atomically(path, request.file.data)
        note = f"wrote {request.file.size} bytes" if written else "already up to date"
        return Delivered(external_id=str(path), response_excerpt=note)

    async def ping(self) -> Delivered:
        """Check the folder exists (or can be created) and accepts a file."""
        await asyncio.to_thread(_probe, self._config.root)
        root = str(self._config.root)
        return Delivered(external_id=root, response_excerpt=f"{root} is writable")
