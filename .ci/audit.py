#!/usr/bin/env python3
"""CI: audit requirements.lock for known vulnerabilities (pip-audit, PyPI's advisory data).

A vulnerability found fails CI (exit 1). When the vulnerability database cannot be reached
(an offline machine, a registry mirror without PyPI's JSON API), nothing can be audited: that
is said in one plain line and CI goes on (exit 0), so "no known vulnerabilities" is never
printed for dependencies that were not looked at.

    .venv/bin/python .ci/audit.py [requirements.lock]
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

# Signs in pip-audit's error output that the database was not reachable (not a real failure).
UNREACHABLE = (
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "Max retries exceeded",
    "NameResolutionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Connection refused",
    "timed out",
)


def judge(returncode: int, stdout: str, stderr: str) -> tuple[int, str]:
    """(exit code, what to print) from a ``pip-audit -f json`` run."""
    try:
        report: dict[str, Any] = json.loads(stdout)
    except ValueError:
        last = (stderr.strip().splitlines() or ["no output"])[-1][:200]
        if any(sign in stderr for sign in UNREACHABLE):
            return 0, f"pip-audit: vulnerability database not reachable; NOT audited ({last})"
        return 1, f"pip-audit failed (exit {returncode}): {last}"
    dependencies = report.get("dependencies") or []
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if "skip_reason" in d]
    audited = len(dependencies) - len(skipped)
    if vulnerable:
        lines = [
            f"  {d['name']} {d.get('version', '?')}: {v.get('id')}"
            + (f" (fixed in {', '.join(v['fix_versions'])})" if v.get("fix_versions") else "")
            for d in vulnerable
            for v in d["vulns"]
        ]
        return 1, "pip-audit: known vulnerabilities in requirements.lock:\n" + "\n".join(lines)
    if audited == 0:
        reason = skipped[0]["skip_reason"] if skipped else "no dependencies listed"
        return 0, (
            f"pip-audit: vulnerability database not reachable; {len(skipped)} dependencies "
            f"NOT audited (e.g. {reason})"
        )
    note = f"; {len(skipped)} could not be audited" if skipped else ""
    return 0, f"pip-audit: {audited} dependencies audited, no known vulnerabilities{note}"


def main(argv: list[str]) -> int:
    lock = argv[1] if len(argv) > 1 else "requirements.lock"
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        lock,
        "--require-hashes",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--format",
        "json",
        "--timeout",
        "20",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        sys.stdout.write("pip-audit: vulnerability database not reachable (no answer in 900 s); ")
        sys.stdout.write("NOT audited\n")
        return 0
    code, message = judge(done.returncode, done.stdout, done.stderr)
    sys.stdout.write(message + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
