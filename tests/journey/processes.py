"""The journey's processes: ``pelosync sandbox`` and ``pelosync serve`` as a user starts them."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.cli import PELOSYNC


@dataclass
class Process:
    """A running ``pelosync`` command whose stderr is read in the background (never blocks)."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def wait_for(self, found: Callable[[str], bool], timeout: float = 120) -> str:
        """The first stderr line for which ``found`` is true (fails if the process ends)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if found(line):
                    return line
            seen = len(self.lines)
            assert self.proc.poll() is None, "".join(self.lines[-40:])
            time.sleep(0.05)
        raise AssertionError(f"timed out; last lines:\n{''.join(self.lines[-40:])}")

    def log(self) -> str:
        return "".join(self.lines)


@contextmanager
def running(
    args: list[str], env: dict[str, str], *, stdout: bool = False, exits: tuple[int, ...] = (0,)
) -> Iterator[Process]:
    """``pelosync ARGS`` until the block ends, then SIGTERM; its exit code must be in ``exits``."""
    proc = subprocess.Popen(
        [*PELOSYNC, *args],
        env=env,
        stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    process = Process(proc)
    assert proc.stderr is not None
    stderr = proc.stderr

    def drain() -> None:
        for line in stderr:
            process.lines.append(line)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield process
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode in exits, (
        f"pelosync {args[0]} exited {proc.returncode}:\n{process.log()}"
    )


def read_json(process: Process) -> Any:
    """The JSON document a process printed first on stdout (``pelosync sandbox --json``)."""
    assert process.proc.stdout is not None
    text = ""
    stdout = process.proc.stdout
    for line in stdout:
        text += line
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            continue
        # Keep reading what follows (uvicorn's access log), or a full pipe would stall it.
        threading.Thread(target=stdout.read, daemon=True).start()
        return document
    raise AssertionError(f"no JSON on stdout: {text!r}\n{process.log()}")
