"""Configuration: one pydantic-settings class, read from the environment (prefix ``PELOSYNC_``).

Every setting is documented in ``.env.example`` and the README.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import InvalidInput, validation_problems


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TESTING = "testing"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """All of pelosync's settings. Field ``x`` is read from ``PELOSYNC_X``."""

    model_config = SettingsConfigDict(
        env_prefix="PELOSYNC_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default: a SQLite file in data_dir.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Fernet key(s) encrypting secrets at rest; comma-separated, newest first, for "
            "rotation. Development generates one into data_dir; production requires it."
        ),
    )
    log_level: str = "INFO"
    log_format: str = Field(default="console", pattern="^(console|json)$")

    # Peloton (defaults are Peloton's own; see docs in the README)
    peloton_api_url: str = "https://api.onepeloton.com"
    peloton_auth_url: str = "https://auth.onepeloton.com"
    peloton_web_client_id: str = "WVoJxVDdPoFx4RNewvvg6ch2mZ7bwnsM"
    peloton_password_client_id: str = "mgsmWCD0A8Qn6uz6mmqI6qeBNHH9IPwS"
    peloton_audience: str = "https://api.onepeloton.com/"
    peloton_scope: str = "offline_access openid peloton-api.members:default"
    peloton_redirect_uri: str = "https://members.onepeloton.com/callback"
    peloton_user_agent: str = "pelosync/0.1 (+https://github.com/pelosync/pelosync)"
    peloton_timeout_s: float = Field(default=30.0, gt=0)
    peloton_concurrency: int = Field(default=4, ge=1, le=32)
    peloton_every_n: int = Field(default=1, ge=1, le=60)
    # The request budget of one egress address, shared by every replica leaving by it.
    peloton_max_rps: float = Field(
        default=2.0, gt=0, le=1000, description="Peloton API requests per second, in all."
    )
    peloton_egress: str = Field(
        default="default",
        min_length=1,
        max_length=100,
        description="Name of the address replicas reach Peloton from; one budget per name.",
    )

    # Sync engine
    poll_interval: int = Field(
        default=3600,
        ge=300,
        description=(
            "Seconds between polls of a rider with no usual hours; riders with habits are "
            "polled more often in their hours and less outside them."
        ),
    )
    poll_min_interval: int = Field(default=300, ge=60, description="No account polled sooner.")
    poll_max_interval: int = Field(
        default=14400, ge=300, description="Every account polled at least this often."
    )
    backfill_days: int = Field(default=30, ge=0, le=3650)
    tick_seconds: float = Field(default=5.0, gt=0, le=300)
    lease_seconds: int = Field(default=300, ge=5)
    sync_concurrency: int = Field(default=8, ge=1, le=256)
    max_new_per_poll: int = Field(default=25, ge=1, le=1000)
    convert_workers: int = Field(
        default=1, ge=0, le=32, description="Conversion processes; 0 converts in a thread."
    )
    strength_exercises_file: Path | None = Field(
        default=None,
        description=(
            "Extra Peloton movement -> Garmin exercise table (JSON, the shape of "
            "service/convert/data/strength_exercises.json), merged over the built-in one."
        ),
    )
    worker_name: str | None = Field(default=None, description="Default: host:pid:random.")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # Processes ``serve`` runs on one port: each a whole replica (API and scheduler).
    workers: int = Field(default=1, ge=1, le=64)

    # Admin API
    public_url: str | None = Field(
        default=None,
        description="Where receivers reach this API (https://sync.example.com): download links.",
    )
    download_url_ttl_s: int = Field(default=86400, ge=60, le=7 * 86400)  # signed links' life
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)  # bigger request bodies: 413
    # Failed sign-ins / wrong API keys a client address may have per minute, then 429.
    auth_failures_per_minute: int = Field(default=10, ge=1, le=100_000)
    # Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed (uvicorn's
    # forwarded_allow_ips): comma-separated IPs or CIDRs, or "*". The client address found
    # there is the one failures are counted by.
    forwarded_allow_ips: str = "127.0.0.1"

    # Webhook and folder destinations
    webhook_timeout_s: float = Field(default=15.0, gt=0, le=300)  # one attempt, in all
    webhook_allow_private: bool = False  # allow private/loopback/LAN webhook targets
    webhook_allowlist: str = ""  # comma-separated hosts and CIDRs allowed despite the guard
    # Files up to this size travel inside the webhook body (base64); bigger ones as a link.
    # 16 MiB holds every format of a 5-hour 1 Hz GPS workout (its TCX: 6.4 MiB) with room.
    webhook_inline_max_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    # Folders that folder destinations may write under (comma-separated absolute paths);
    # default: <data_dir>/exports. A destination's root elsewhere is refused.
    export_roots: str = ""

    # Fitness services: Strava, intervals.icu, Runalyze, Garmin Connect
    strava_client_id: str | None = None  # the Strava API app (strava.com/settings/api)
    strava_client_secret: SecretStr | None = None  # that app's client secret
    strava_api_url: str = "https://www.strava.com/api/v3"
    strava_oauth_url: str = "https://www.strava.com/oauth"
    intervals_api_url: str = "https://intervals.icu"
    runalyze_api_url: str = "https://runalyze.com/api/v1"  # the Personal API's base URL
    garmin_enabled: bool = False  # experimental: uses Garmin Connect's unofficial upload API
    garmin_upload_url: str = "https://connectapi.garmin.com/upload-service/upload"
    garmin_token_url: str = "https://diauth.garmin.com/di-oauth2-service/oauth/token"
    garmin_profile_url: str = "https://connectapi.garmin.com/userprofile-service/socialProfile"

    @field_validator("export_roots")
    @classmethod
    def _absolute_roots(cls, value: str) -> str:
        for entry in (e.strip() for e in value.split(",")):
            if entry and not Path(entry).is_absolute():
                raise ValueError(f"{entry!r} is not an absolute path")
        return value

    def resolved_export_roots(self) -> tuple[Path, ...]:
        """Where folder destinations may write: PELOSYNC_EXPORT_ROOTS, else
        ``<data_dir>/exports`` (absolute)."""
        listed = [Path(e.strip()) for e in self.export_roots.split(",") if e.strip()]
        return tuple(listed) or ((self.data_dir / "exports").resolve(),)

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``sqlite+aiosqlite:///<data_dir>/pelosync.db``.

        Plain ``postgresql://`` and ``postgres://`` URLs are given the asyncpg driver.
        """
        if not self.database_url:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'pelosync.db').resolve()}"
        url = self.database_url
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
        return url


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once; a bad value is an :class:`InvalidInput` naming
    its variable (``PELOSYNC_WORKERS: Input should be greater than or equal to 1``)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"PELOSYNC_{where.replace('.', '_').upper()}: {message}"
            for where, message in validation_problems(exc)
        )
        raise InvalidInput(f"configuration: {problems}") from None
