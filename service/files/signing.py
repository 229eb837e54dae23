"""Signed, expiring download links for workout files (webhook payloads too big to inline).

A link is ``/v1/files/workouts/{id}/{format}?expires=<unix>&signature=<base64url>`` where the
signature is HMAC-SHA256 over ``"{id}/{format}/{expires}"`` with a key derived from the
service's secret key (:meth:`SecretBox.derive_keys`). It needs no API key, grants exactly one
file, and stops working at ``expires`` (``PELOSYNC_DOWNLOAD_URL_TTL_S``, a day by default).
Links signed before a secret-key rotation keep working until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from service.auth.service import Forbidden
from service.runtime import Runtime

PURPOSE = "pelosync download links"
PATH = "/v1/files/workouts/{workout_id}/{format}"


def _signature(key: bytes, workout_id: int, fmt: str, expires: int) -> str:
    mac = hmac.digest(key, f"{workout_id}/{fmt}/{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def signed_path(runtime: Runtime, workout_id: int, fmt: str) -> tuple[str, datetime]:
    """The path and query of a link to one file, and when it expires."""
    expires_at = runtime.clock() + timedelta(seconds=runtime.settings.download_url_ttl_s)
    expires = int(expires_at.timestamp())
    key = runtime.secrets.derive_keys(PURPOSE)[0]
    query = urlencode({"expires": expires, "signature": _signature(key, workout_id, fmt, expires)})
    path = PATH.format(workout_id=workout_id, format=fmt)
    return f"{path}?{query}", datetime.fromtimestamp(expires, UTC)


def signed_url(runtime: Runtime, base_url: str, workout_id: int, fmt: str) -> tuple[str, datetime]:
    path, expires_at = signed_path(runtime, workout_id, fmt)
    return base_url.rstrip("/") + path, expires_at


def verify(runtime: Runtime, workout_id: int, fmt: str, expires: int, signature: str) -> None:
    """Raise :class:`Forbidden` unless the link is genuine and not expired."""
    if expires < runtime.clock().timestamp():
        raise Forbidden("this download link has expired")
    for key in runtime.secrets.derive_keys(PURPOSE):
        if hmac.compare_digest(_signature(key, workout_id, fmt, expires), signature):
            return
    raise Forbidden("this download link is not valid")


def download_link(runtime: Runtime, workout_id: int, fmt: str) -> Callable[[], str] | None:
    """For :class:`DeliveryRequest.download_url`: makes a link on ``PELOSYNC_PUBLIC_URL`` when
    a destination asks for one; None when no public URL is configured."""
    base = runtime.settings.public_url
    if not base:
        return None
    return lambda: signed_url(runtime, base, workout_id, fmt)[0]
