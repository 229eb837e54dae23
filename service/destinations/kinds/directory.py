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
import contextlib
import errno
import os
import secrets
import stat
import string
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from service.convert.formats import FILE_MODE
from service.destinations.kinds.base import (
    Delivered,
    DeliveryError,
    DeliveryRequest,
    PermanentFailure,
)
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


def _os_error(exc: OSError, action: str, path: Path) -> DeliveryError:
    what = _OS_ERRORS.get(exc.errno or 0) or exc.strerror or type(exc).__name__
    return DeliveryError(f"{what} {action} {path}")


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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Folder:
    """An open folder (a directory file descriptor) and the path it stands for (messages)."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path = fd, path

    def close(self) -> None:
        os.close(self.fd)


def _open_base(base: Path) -> _Folder:
    """The trusted starting folder (an export root, an operator's choice: symlinks allowed),
    created if missing."""
    try:
        os.makedirs(base, exist_ok=True)
        return _Folder(os.open(base, os.O_RDONLY | os.O_DIRECTORY), base)
    except OSError as exc:
        raise _os_error(exc, "creating", base) from None


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _descend(folder: _Folder, name: str) -> _Folder:
    """``name`` inside ``folder``, created if missing, opened through the directory file
    descriptor with O_NOFOLLOW: a symlink put there (even between a check and this write) is
    refused, never followed. Closes ``folder``."""
    path = folder.path / name
    try:
        try:
            os.mkdir(name, 0o777, dir_fd=folder.fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _os_error(exc, "creating", path) from None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder.fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(folder.fd, name):
                raise PermanentFailure(
                    f"{path} is a symbolic link: folder destinations never write through one"
                ) from None
            raise _os_error(exc, "creating", path) from None
        return _Folder(fd, path)
    finally:
        folder.close()


def _open_folder(base: Path, names: Sequence[str]) -> _Folder:
    folder = _open_base(base)
    for name in names:
        folder = _descend(folder, name)
    return folder


def _same_content(folder: _Folder, name: str, data: bytes) -> bool:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder.fd)
    except OSError:
        return False  # absent, or a symlink (which the rename will replace, not follow)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != len(data):
            return False
        with os.fdopen(os.dup(fd), "rb") as existing:
            return existing.read() == data
    except OSError:
        return False
    finally:
        os.close(fd)


def _create_temporary(folder: _Folder) -> tuple[int, str]:
    """A new hidden temporary file in ``folder`` (0600 until written): (fd, name)."""
    # A short hidden name: the target's own name may already be at the length limit.
    name = f".pelosync-{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    return os.open(name, flags, 0o600, dir_fd=folder.fd), name


def write_atomically(path: Path, data: bytes, *, base: Path | None = None) -> bool:
    """Write ``data`` to ``path`` all or nothing; False if identical bytes were already there.

    Every folder below ``base`` (default: ``path``'s parent) is opened relative to the one
    above with O_NOFOLLOW, and the file is created and renamed within the last one's file
    descriptor, so no symlink is followed whenever it appears.
    """
    base = base or path.parent
    names = path.parent.relative_to(base).parts
    folder = _open_folder(base, names)
    tmp: str | None = None
    try:
        if _same_content(folder, path.name, data):
            return False
        fd, tmp = _create_temporary(folder)
        try:
            _write_all(fd, data)
            os.fchmod(fd, FILE_MODE)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path.name, src_dir_fd=folder.fd, dst_dir_fd=folder.fd)
        tmp = None
        with contextlib.suppress(OSError):  # persist the rename (not every file system can)
            os.fsync(folder.fd)
    except OSError as exc:
        raise _os_error(exc, "writing", path) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder.fd)
        folder.close()
    return True


def _probe(root: Path, base: Path | None = None) -> None:
    base = base or root
    folder = _open_folder(base, root.relative_to(base).parts)
    name = f".pelosync-probe-{secrets.token_hex(8)}"
    created = False
    try:
        fd = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder.fd
        )
        created = True
        try:
            _write_all(fd, b"pelosync write test\n")
        finally:
            os.close(fd)
    except OSError as exc:
        raise _os_error(exc, "writing", root / name) from None
    finally:
        if created:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=folder.fd)
        folder.close()


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
        await asyncio.to_thread(_probe, self._config.root, base)
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
