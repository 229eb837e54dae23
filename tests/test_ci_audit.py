"""CI's dependency audit (.ci/audit.py): a vulnerability fails, an unreachable database is said
plainly and does not. (pip-audit itself is never run here: tests stay off the internet.)"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(*dependencies: dict[str, object]) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_a_vulnerability_fails_and_is_named() -> None:
    code, message = audit().judge(
        1,
        report(
            {"name": "fastapi", "version": "0.121.0", "vulns": []},
            {
                "name": "h11",
                "version": "0.14.0",
                "vulns": [{"id": "GHSA-vqfr-h8mv-ghfj", "fix_versions": ["0.16.0"]}],
            },
        ),
        "",
    )
    assert code == 1
    assert "h11 0.14.0: GHSA-vqfr-h8mv-ghfj (fixed in 0.16.0)" in message


def test_all_clean_says_how_many_were_audited() -> None:
    code, message = audit().judge(
        0,
        report(
            {"name": "fastapi", "version": "0.121.0", "vulns": []},
            {"name": "local", "skip_reason": "Dependency not found on PyPI"},
        ),
        "",
    )
    assert (code, message) == (
        0,
        "pip-audit: 1 dependencies audited, no known vulnerabilities; 1 could not be audited",
    )


def test_an_unreachable_database_is_one_plain_line_not_a_failure() -> None:
    module = audit()
    skipped = report(
        *({"name": n, "skip_reason": f"Dependency not found on PyPI: {n}"} for n in "abc")
    )
    code, message = module.judge(0, skipped, "")
    assert code == 0 and "\n" not in message
    assert "not reachable" in message and "3 dependencies NOT audited" in message
    offline = "Traceback ...\nrequests.exceptions.ConnectionError: Max retries exceeded with url"
    code, message = module.judge(1, "", offline)
    assert code == 0 and "not reachable" in message and "NOT audited" in message
    code, message = module.judge(2, "", "error: unrecognized arguments: --bogus")
    assert code == 1 and "pip-audit failed" in message
