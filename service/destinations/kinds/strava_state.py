"""The signed ``state`` of a Strava authorization: it binds the callback to the destination
that started it, and expires after :data:`STATE_MAX_AGE_S` (see :mod:`.strava_oauth`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from service.destinations.kinds.http_common import Clock, utcnow
from service.errors import InvalidInput

STATE_MAX_AGE_S = 600


class InvalidOAuthState(InvalidInput):
    """The ``state`` of an OAuth callback is forged, corrupted or too old."""

    title = "Invalid OAuth state"


class OAuthStateSigner:
    """Signs and checks the OAuth ``state``: authenticated, encrypted, timestamped (Fernet).

    The key is derived (HKDF) from the service's secret so a state token can never be used
    where a stored secret is expected, or the other way round.
    """

    def __init__(self, secret: str | bytes | SecretStr, *, clock: Clock = utcnow) -> None:
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        material = raw.encode() if isinstance(raw, str) else raw
        if len(material) < 16:
            raise InvalidInput("the OAuth state secret must be at least 16 bytes")
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"pelosync strava oauth state"
        ).derive(material)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._clock = clock

    def sign(self, data: Mapping[str, str | int]) -> str:
        """A state value carrying ``data`` (e.g. the destination id and a nonce)."""
        payload = json.dumps(dict(data), sort_keys=True, separators=(",", ":")).encode()
        now = int(self._clock().timestamp())
        return self._fernet.encrypt_at_time(payload, now).decode()

    def verify(self, state: str, *, max_age_s: int = STATE_MAX_AGE_S) -> dict[str, Any]:
        """The data signed into ``state``; :class:`InvalidOAuthState` if forged or expired."""
        now = int(self._clock().timestamp())
        try:
            payload = self._fernet.decrypt_at_time(state.encode(), max_age_s, now)
        except (InvalidToken, ValueError):
            raise InvalidOAuthState(
                "the Strava authorization callback has an invalid or expired state; "
                "start the authorization again"
            ) from None
        value = json.loads(payload)
        if not isinstance(value, dict):
            raise InvalidOAuthState("the Strava authorization state is not an object")
        return value
