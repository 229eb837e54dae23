"""Webhook signing secrets and signatures, as the Standard Webhooks spec says.

``webhook-signature`` is ``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body`` per active
secret, space-separated. Signing is plain ``hmac``; the tests verify it with the reference
``standardwebhooks`` library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as random_secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"


#: Bodies from this size on are signed on a thread, beside the event loop (HMAC-SHA256 releases
#: the GIL). Below it they are signed inline: a hand-over to a thread costs the process more CPU
#: than the HMAC of a file-sized body (measured with 46 KB bodies: 0.9 ms of process CPU per
#: delivery more on a thread; the HMAC itself takes about 5 µs per KB).
OFF_LOOP_SIGNING_BYTES = 512 * 1024


def generate_secret(nbytes: int = 24) -> str:
    """A new signing secret: ``whsec_`` + base64 of ``nbytes`` (24-64) random bytes."""
    if not 24 <= nbytes <= 64:
        raise ValueError("a webhook secret has 24 to 64 bytes")
    return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(nbytes)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the base64-decoded part after the prefix)."""
    body = secret.removeprefix(SECRET_PREFIX).strip()
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"a webhook secret must hold 24 to 64 bytes, this one has {len(key)}")
    return key


def sign(message_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per secret, space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.digest(secret_bytes(s), signed, hashlib.sha256)).decode()
        for s in secrets
    )
