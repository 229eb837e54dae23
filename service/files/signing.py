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
import ipaddress
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from service.auth.service import Forbidden
from service.config import Settings
from service.runtime import Runtime

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

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


def download_link(runtime: Runtime, workout_id: int, fmt: str) -> Callable[[IPAddress], str | None]:
    """For :class:`DeliveryRequest.download_url`: a link to the file for a receiver at a given
    address (see :func:`link_base`), or None when no address of the service is known to be
    reachable from there."""

    def link(peer: IPAddress) -> str | None:
        base = link_base(runtime.settings, peer)
        return None if base is None else signed_url(runtime, base, workout_id, fmt)[0]

    return link


def link_base(settings: Settings, peer: IPAddress) -> str | None:
    """Where a receiver at ``peer`` reaches this service, for download links.

    ``PELOSYNC_PUBLIC_URL`` when it is set. Otherwise, only for a receiver on the service's own
    network (a loopback, private or link-local address: the same machine, a LAN, a container
    network): the address the service listens on (``PELOSYNC_HOST``/``PELOSYNC_PORT``), and
    when it listens on every interface (``0.0.0.0``, ``::``), its own address on the route to
    that receiver. A receiver on the internet gets None: an address seen from inside is no use
    to it.
    """
    if settings.public_url:
        return settings.public_url
    if peer.is_global:
        return None
    host = settings.host.strip("[]")
    name = host.lower().rstrip(".")
    try:
        bound: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:  # a name: as given (localhost and its subdomains are loopback)
        loopback = name == "localhost" or name.endswith(".localhost")
        bound = ipaddress.ip_address("127.0.0.1") if loopback else None
    if bound is not None and bound.is_unspecified:
        host = _local_address(peer) or ""
    elif bound is not None and bound.is_loopback and not peer.is_loopback:
        return None  # listening on loopback only: out of the receiver's reach
    if not host:
        return None
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def _local_address(peer: IPAddress) -> str | None:
    """This machine's address on the route to ``peer``: connecting a UDP socket picks the
    route and the source address without sending anything."""
    family = socket.AF_INET6 if peer.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((str(peer), 9))
            return str(probe.getsockname()[0]).split("%", 1)[0]
    except OSError:
        return None
