"""Running the real ``pelosync`` command as a process, for the CLI tests and the journey suite."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

from tests.conftest import TEST_SECRET_KEY

#: ``python -c`` rather than the ``pelosync`` script: the same interpreter as the tests, even
#: when the venv's bin folder is not on PATH.
PELOSYNC = (sys.executable, "-c", "from service.cli import main; main()")


def clean_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a fresh install: no PELOSYNC_ variable from the caller, a data dir,
    a secret key (so no key file is generated), then ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PELOSYNC_")}
    env.update(PELOSYNC_DATA_DIR=str(data_dir), PELOSYNC_SECRET_KEY=TEST_SECRET_KEY)
    env.update(settings)
    return env


async def start(env: dict[str, str], *args: str, **pipes: Any) -> asyncio.subprocess.Process:
    """``pelosync ARGS`` as a process of its own."""
    return await asyncio.create_subprocess_exec(*PELOSYNC, *args, env=env, **pipes)


async def pelosync(
    env: dict[str, str], *args: str, stdin: bytes | None = None
) -> tuple[int, str, str]:
    """Run ``pelosync ARGS`` to the end: (exit code, stdout, stderr)."""
    pipe = asyncio.subprocess.PIPE
    proc = await start(env, *args, stdin=pipe, stdout=pipe, stderr=pipe)
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def free_port() -> int:
    """A port nothing listens on right now (on 127.0.0.1)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
