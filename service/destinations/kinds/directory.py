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
root, symlinks included. Every folder below the root (below the operator's export root, see
PELOSYNC_EXPORT_ROOTS) is opened through its parent's file descriptor with ``O_NOFOLLOW``, and
the file is written and renamed within the last one, so a symlink swapped in between the check
and the write is refused, not followed. Writes are atomic (a temporary file in the target
folder, fsync, ``os.replace``) and idempotent: identical bytes already at the path are a
success without a rewrite; different bytes replace the file (the workout was converted again).
A full disk, read-only or permission error is retried, with nothing partial left behind.
"""

from __future__ import annotations

import asyncio
import os
import string
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from service.destinations.kinds.base import Delivered, DeliveryRequest, PermanentFailure
from service.destinations.kinds.directory_files import probe, write_atomically
from service.destinations.kinds.spec import ALL_FORMATS, FormField, KindSpec
from service.errors import InvalidInput, validation_problems

if TYPE_CHECKING:
    from service.config import Settings
    from service.destinations.models import Destination
    from service.runtime import Runtime

DEFAULT_TEMPLATE = "{account}/{filename}"
PLACEHOLDERS = frozenset(
    {"account", "account_id", "date", "time", "discipline", "title", "instructor"}
    | {"workout_id", "format", "ext", "filename"}
)
VALUE_MAX_CHARS = 80
NAME_MAX_BYTES = 255  # a path component on ext4, APFS, NTFS...
_FORBIDDEN = set('/\\<>:"|?*')


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
                f"{where or 'config'}: {message}" for where, message in validation_problems(exc)
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


def export_root_of(root: Path, export_roots: Sequence[Path]) -> tuple[Path, tuple[str, ...]]:
    """The operator's export root ``root`` lies in, and the folders from it down to ``root``;
    :class:`InvalidInput` if ``root`` is in none of them (PELOSYNC_EXPORT_ROOTS)."""
    wanted = Path(os.path.normpath(root))  # "/data/exports/../etc" is /data/etc
    for allowed in export_roots:
        try:
            return allowed, wanted.relative_to(os.path.normpath(allowed)).parts
        except ValueError:
            continue
    listed = ", ".join(str(r) for r in export_roots)
    raise InvalidInput(
        f"config.root: {root} is outside the folders this service may write to ({listed}); "
        "the operator lists them in PELOSYNC_EXPORT_ROOTS"
    )


class DirectoryKind:
    """Writes workouts into a folder (a mounted volume, a NAS share, a synced folder).

    With ``export_roots`` (the service passes PELOSYNC_EXPORT_ROOTS), the folder must lie in one
    of them, and every folder below that root is opened without following symlinks.
    """

    def __init__(
        self, config: DirectoryConfig, *, export_roots: Sequence[Path] | None = None
    ) -> None:
        self._config = config
        self._export_roots = export_roots

    def _base(self) -> Path:
        if self._export_roots is None:
            return self._config.root
        try:
            return export_root_of(self._config.root, self._export_roots)[0]
        except InvalidInput as exc:
            raise PermanentFailure(exc.message.removeprefix("config.root: ")) from None

    async def deliver(self, request: DeliveryRequest) -> Delivered:
        """Write the file; ``external_id`` is the path written."""
        return await asyncio.to_thread(self._deliver, request)

    def _deliver(self, request: DeliveryRequest) -> Delivered:
        base = self._base()
        path = render_path(self._config, request)  # resolves symlinks: file system calls too
        written = write_atomically(path, request.file.data, base=base)
        note = f"wrote {request.file.size} bytes" if written else "already up to date"
        return Delivered(external_id=str(path), response_excerpt=note)

    async def ping(self) -> Delivered:
        """Check the folder exists (or can be created) and accepts a file."""
        base = self._base()
        await asyncio.to_thread(probe, self._config.root, base)
        root = str(self._config.root)
        return Delivered(external_id=root, response_excerpt=f"{root} is writable")


# --- the kind's entry in the registry -----------------------------------------------------------


def _handler(runtime: Runtime, destination: Destination) -> DirectoryKind:
    return DirectoryKind(
        DirectoryConfig.parse(destination.config),
        export_roots=runtime.settings.resolved_export_roots(),
    )


async def _check_export_root(settings: Settings, config: Mapping[str, Any]) -> None:
    """The folder must lie in PELOSYNC_EXPORT_ROOTS."""
    export_root_of(Path(config["root"]), settings.resolved_export_roots())


KIND = "directory"
SPEC = KindSpec(
    kind=KIND,
    label="Folder",
    config_model=DirectoryConfig,
    factory=_handler,
    formats=ALL_FORMATS,
    check_config=_check_export_root,
    config_doc="`root` (absolute folder), `template`",
    form_fields=(
        FormField("root", "Folder (absolute path)", required=True, placeholder="/data/exports"),
        FormField("template", "File name template", placeholder="default"),
    ),
)
