"""Secrets at rest: Fernet encryption with MultiFernet key rotation.

``PELOSYNC_SECRET_KEY`` holds one or more Fernet keys separated by commas, newest first. The
newest encrypts; all of them decrypt, so a new key can be put in front, ``pelosync
rotate-secrets`` re-encrypts every stored secret with it, and the old key can then be dropped.

Without a key in development a key is generated once into ``<data_dir>/secret.key`` (mode
0600) with a warning; with ``PELOSYNC_ENV=production`` a missing key is a startup error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.config import Environment, Settings
from service.errors import PelosyncError

log = structlog.get_logger()

KEY_FILE_NAME = "secret.key"


class SecretKeyError(PelosyncError):
    """The secret key is missing, malformed, or cannot decrypt stored secrets."""

    title = "Secret key problem"


class SecretBox:
    """Encrypts and decrypts small secrets (JSON objects or strings) for storage."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretKeyError("no secret key given")
        try:
            self._fernets = [Fernet(k.strip().encode()) for k in keys]
        except (ValueError, TypeError):
            raise SecretKeyError(
                "PELOSYNC_SECRET_KEY is not a valid Fernet key (32 url-safe base64 bytes; "
                "make one with `pelosync secrets generate-key`)"
            ) from None
        self._multi = MultiFernet(self._fernets)
        self._keys = [k.strip().encode() for k in keys]

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._multi.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a stored secret cannot be decrypted with PELOSYNC_SECRET_KEY (wrong or "
                "rotated-out key?)"
            ) from None

    def encrypt_json(self, value: dict[str, Any]) -> str:
        return self.encrypt(json.dumps(value, sort_keys=True, separators=(",", ":")))

    def decrypt_json(self, token: str | None) -> dict[str, Any]:
        if not token:
            return {}
        value = json.loads(self.decrypt(token))
        if not isinstance(value, dict):
            raise SecretKeyError("a stored secret is not a JSON object")
        return value

    def derive_keys(self, purpose: str) -> list[bytes]:
        """32-byte keys for ``purpose`` (HMAC signing...), one per secret key, newest first.

        Derived (HKDF) so a signature key is never the encryption key itself; sign with the
        first, accept any, so links signed before a key rotation keep working until they expire.
        """
        return [
            HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(k)
            for k in self._keys
        ]

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` with the newest key."""
        try:
            return self._multi.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError("a stored secret cannot be decrypted for rotation") from None


def generate_key() -> str:
    return Fernet.generate_key().decode()


def load_secret_box(settings: Settings) -> SecretBox:
    """The box for this process, from the settings (see the module docstring)."""
    if settings.secret_key is not None:
        keys = [k for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
        return SecretBox(keys)
    if settings.env is Environment.PRODUCTION:
        raise SecretKeyError(
            "PELOSYNC_SECRET_KEY is required when PELOSYNC_ENV=production "
            "(make one with `pelosync secrets generate-key`)"
        )
    path = Path(settings.data_dir) / KEY_FILE_NAME
    if not path.exists():
        _create_key_file(path)
    return SecretBox([path.read_text().strip()])


def _create_key_file(path: Path) -> None:
    # Written aside then hard-linked into place: atomic, and a second process starting at the
    # same moment keeps the first one's key instead of overwriting it.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(generate_key() + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        return
    finally:
        tmp.unlink(missing_ok=True)
    log.warning(
        "secrets.key_generated",
        path=str(path),
        hint="set PELOSYNC_SECRET_KEY in production; back this file up with the database",
    )
