"""Where the first admin API key of a new installation is handed over.

The key is shown nowhere else and only its hash is stored, so it must reach the operator
without landing in container logs: it is written to :func:`first_key_path` (mode 0600, in the
data directory), and printed only when standard error is a terminal. The log says where the
file is. Delete the file once the key is stored somewhere safer (or revoke the key after
creating your own: ``pelosync apikey create``).
"""

from __future__ import annotations

import os
from pathlib import Path

FIRST_KEY_FILE = "first-admin-key.txt"


def first_key_path(data_dir: Path) -> Path:
    """The file the first admin key is written to: ``<PELOSYNC_DATA_DIR>/first-admin-key.txt``.

    ``serve`` (and the demo) can say where the key is on every start by checking that this
    file exists.
    """
    return data_dir / FIRST_KEY_FILE


def write_first_key(data_dir: Path, key: str) -> Path:
    """Write ``key`` to :func:`first_key_path`, readable by this user only; the path.

    The file is created 0600 (and made so if it existed), never through a symbolic link.
    """
    path = first_key_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, f"{key}\n".encode())
    finally:
        os.close(fd)
    return path
