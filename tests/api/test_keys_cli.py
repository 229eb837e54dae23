"""``pelosync apikey`` as a real process, and the first key ``serve`` prints."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from service.app import create_app
from service.auth.first_key import first_key_path, write_first_key
from service.auth.repository import ApiKeyRepository
from service.auth.service import KEY_CACHE_FOR, hash_key
from service.commands.apikeys import first_key_setup
from service.db import create_engine
from service.migrate import upgrade
from service.runtime import open_runtime
from tests.api.conftest import bearer, running
from tests.conftest import TEST_SECRET_KEY, make_settings
from tests.test_cli_ops import pelosync


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PELOSYNC_")}
    env.update(
        PELOSYNC_DATA_DIR=str(tmp_path / "data"),
        PELOSYNC_SECRET_KEY=TEST_SECRET_KEY,
        PELOSYNC_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}",
    )
    return env


async def test_create_list_revoke_and_the_key_works(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = cli_env
    settings = make_settings(tmp_path, env["PELOSYNC_DATABASE_URL"])
    engine = create_engine(settings.resolved_database_url())
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    code, out, err = await pelosync(env, "apikey", "create", "--name", "grafana", "--read-only")
    assert code == 0, err
    key = out.strip()
    assert key.startswith("psk_") and "shown only once" in err

    async with open_runtime(settings) as rt:
        app = create_app(settings, scheduler=False, runtime=rt)
        async with running(app) as client:
            assert (await client.get("/v1/accounts", headers=bearer(key))).status_code == 200
            refused = await client.post("/v1/api-keys", json={"name": "x"}, headers=bearer(key))
            assert refused.status_code == 403
            code, out, err = await pelosync(env, "apikey", "revoke", "1")
            assert code == 0, err
            # Revoked by another process: refused here once this process's last check of the
            # key is KEY_CACHE_FOR old (the documented bound), without anything else happening.
            later = rt.clock() + KEY_CACHE_FOR
            rt.clock = lambda: later
            assert (await client.get("/v1/accounts", headers=bearer(key))).status_code == 401
    code, out, err = await pelosync(env, "apikey", "list", "--all")
    assert code == 0, err
    assert "read_only" in out and "grafana" in out and "REVOKED" in out
    assert key[:12] in out and key not in out


async def test_serve_hands_the_first_key_over_in_a_private_file_not_the_log(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, database_url)
    async with open_runtime(settings) as rt:
        announce = first_key_setup("http://127.0.0.1:8080", demo=True)
        await announce(rt)
        first = capsys.readouterr().err
        path = first_key_path(settings.data_dir)
        key = path.read_text().strip()
        assert key.startswith("psk_") and "psk_" not in first  # not a terminal: not printed
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert str(path) in first and "http://127.0.0.1:8080/docs" in first
        await announce(rt)
        second = capsys.readouterr().err
        assert "psk_" not in second and "/docs" in second and str(path) in second
        async with rt.sessions() as session:
            row = await ApiKeyRepository(session).by_hash(hash_key(key))
        assert row is not None and row.role == "admin"
        app = create_app(settings, scheduler=False, runtime=rt)
        async with running(app) as client:
            assert (await client.get("/v1/api-keys", headers=bearer(key))).status_code == 200


async def test_on_a_terminal_the_first_key_is_printed_too(
    tmp_path: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(tmp_path, database_url)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    async with open_runtime(settings) as rt:
        await first_key_setup("http://127.0.0.1:8080", demo=False)(rt)
    printed = capsys.readouterr().err
    assert first_key_path(settings.data_dir).read_text().strip() in printed


def test_the_key_file_is_private_even_if_it_existed(tmp_path: Path) -> None:
    path = first_key_path(tmp_path / "data")
    path.parent.mkdir()
    path.write_text("old")
    path.chmod(0o644)
    assert write_first_key(tmp_path / "data", "psk_new") == path
    assert path.read_text() == "psk_new\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError, match="symbolic link"):
        write_first_key(tmp_path / "data", "psk_new")  # never through a link
    assert not (tmp_path / "elsewhere").exists()
