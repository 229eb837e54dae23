"""Configuration: every setting documented; secret-key rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import Environment, Settings, get_settings
from service.crypto import SecretKeyError, load_secret_box
from service.errors import InvalidInput

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text()
    missing = [name for name in Settings.model_fields if f"PELOSYNC_{name.upper()}=" not in text]
    assert missing == []


def test_production_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    settings = Settings(env=Environment.PRODUCTION, data_dir=tmp_path)
    with pytest.raises(SecretKeyError, match="PELOSYNC_SECRET_KEY is required"):
        load_secret_box(settings)


def test_development_generates_a_private_key_once(tmp_path: Path) -> None:
    settings = Settings(env=Environment.DEVELOPMENT, data_dir=tmp_path)
    first = load_secret_box(settings)
    key_file = tmp_path / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    token = first.encrypt("hello")
    assert load_secret_box(settings).decrypt(token) == "hello"  # same key next start


def test_rotation_old_key_still_decrypts_and_rotate_reencrypts(tmp_path: Path) -> None:
    from service.crypto import SecretBox, generate_key

    old, new = generate_key(), generate_key()
    token = SecretBox([old]).encrypt("secret")
    both = SecretBox([new, old])
    assert both.decrypt(token) == "secret"
    rotated = both.rotate(token)
    assert SecretBox([new]).decrypt(rotated) == "secret"
    with pytest.raises(SecretKeyError):
        SecretBox([new]).decrypt(token)


def test_malformed_key_is_a_clear_error() -> None:
    from service.crypto import SecretBox

    with pytest.raises(SecretKeyError, match="not a valid Fernet key"):
        SecretBox(["not-a-key"])


def test_postgres_urls_get_the_async_driver() -> None:
    s = Settings(database_url="postgresql://u:p@h/db")
    assert s.resolved_database_url() == "postgresql+asyncpg://u:p@h/db"
    assert Settings(database_url="sqlite:///x.db").resolved_database_url() == (
        "sqlite+aiosqlite:///x.db"
    )


def test_a_bad_value_in_the_environment_names_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PELOSYNC_WORKERS", "0")
    get_settings.cache_clear()
    try:
        with pytest.raises(InvalidInput, match="PELOSYNC_WORKERS: Input should be greater"):
            get_settings()
    finally:
        get_settings.cache_clear()
