"""Fixtures for destination tests: a verifying webhook receiver on loopback, settings, a client,
delivery requests, and self-signed TLS certificates."""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.config import Settings
from service.destinations.kinds.base import AccountInfo, DeliveryRequest, OutgoingFile, WorkoutInfo
from service.destinations.kinds.webhook import WebhookConfig, generate_secret
from service.webhook_http import build_client
from tests.destinations.receiver import Receiver

START = datetime(2026, 3, 1, 7, 15, 30, tzinfo=UTC)


def make_request(
    *,
    message_id: str = "msg_2Qx7deliv1",
    attempt: int = 1,
    data: bytes = b"\x0e\x10FIT-bytes\x00\xff" * 4,
    fmt: str = "fit",
    filename: str = "ride.fit",
    title: str = "30 min Pop Ride",
    label: str = "Alex",
    instructor: str | None = "Ally Love",
    discipline: str = "cycling",
    download_url: Callable[[Any], str | None] | None = None,
) -> DeliveryRequest:
    return DeliveryRequest(
        delivery_id=7,
        message_id=message_id,
        attempt=attempt,
        account=AccountInfo(
            id=3, label=label, peloton_user_id="u-123", peloton_username="alex_rides"
        ),
        workout=WorkoutInfo(
            id=11,
            peloton_workout_id="w-abc",
            discipline=discipline,
            title=title,
            instructor=instructor,
            start=START,
            end=START + timedelta(minutes=30),
            duration_s=1800.0,
            distance_m=15000.5,
            calories_kcal=400.0,
            avg_heart_rate=140,
            max_heart_rate=171,
            avg_power=180.5,
            is_outdoor=False,
            has_gps=False,
        ),
        file=OutgoingFile(
            format=fmt, filename=filename, content_type="application/vnd.ant.fit", data=data
        ),
        download_url=download_url,
    )


def make_settings(**overrides: Any) -> Settings:
    """Settings from defaults and ``overrides`` only (no .env file; the environment is cleared
    of ``PELOSYNC_*`` by an autouse fixture)."""
    return Settings(_env_file=None, **{"webhook_timeout_s": 2.0, **overrides})


def webhook_config(url: str, secret: str, **fields: Any) -> WebhookConfig:
    return WebhookConfig.model_validate({"url": url, "secret": secret, **fields})


@pytest.fixture(autouse=True)
def _no_pelosync_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PELOSYNC_"):
            monkeypatch.delenv(name)


@pytest.fixture
def secret() -> str:
    return generate_secret()


@pytest.fixture
def settings() -> Settings:
    # Loopback receivers need private delivery; each test that checks the guard says otherwise.
    return make_settings(webhook_allow_private=True)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with build_client(settings) as client:
        yield client


@pytest.fixture
async def receiver(secret: str) -> AsyncIterator[Receiver]:
    server = await Receiver([secret]).start()
    try:
        yield server
    finally:
        await server.close()
    assert not server.unverified(), "every request must verify with the receiver's secret"


def make_certificate(directory: Path, hostname: str, *also: str) -> tuple[Path, Path, bytes]:
    """A self-signed certificate for ``hostname`` (and ``also``): (cert file, key file, PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.now(UTC)
    names = x509.SubjectAlternativeName([x509.DNSName(n) for n in (hostname, *also)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(names, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file = directory / f"{hostname}.crt"
    key_file = directory / f"{hostname}.key"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, pem


def server_tls(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context
