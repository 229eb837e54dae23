"""Writing a folder destination's files: atomically, and never through a symlink.

Every folder below the trusted base (the operator's export root, see PELOSYNC_EXPORT_ROOTS) is
opened through its parent's file descriptor with ``O_NOFOLLOW``, and the file is written and
renamed within the last one, so a symlink swapped in between a check and the write is refused,
not followed. Writes are atomic (a temporary file in the target folder, fsync, ``os.replace``)
and idempotent (identical bytes already there: nothing written). OS errors become retried
:class:`~.base.DeliveryError` naming the problem (disk full, read-only...).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

from service.convert.formats import FILE_MODE
from service.destinations.kinds.base import DeliveryError, PermanentFailure

_OS_ERRORS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def _os_error(exc: OSError, action: str, path: Path) -> DeliveryError:
    what = _OS_ERRORS.get(exc.errno or 0) or exc.strerror or type(exc).__name__
    return DeliveryError(f"{what} {action} {path}")


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


def probe(root: Path, base: Path | None = None) -> None:
    """Check ``root`` (below ``base``) exists or can be created, and takes a file (removed)."""
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
