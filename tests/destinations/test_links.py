"""Where download links point without a public URL: the service's own address, for receivers
on its network only."""

from __future__ import annotations

import ipaddress

import pytest

from service.config import Settings
from service.files.signing import link_base

ip = ipaddress.ip_address


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_the_public_url_wins_for_every_receiver() -> None:
    chosen = settings(public_url="https://sync.example.com", host="0.0.0.0")
    for peer in ("127.0.0.1", "10.1.2.3", "93.184.216.34"):
        assert link_base(chosen, ip(peer)) == "https://sync.example.com"


@pytest.mark.parametrize(
    ("host", "peer", "expected"),
    [
        ("127.0.0.1", "127.0.0.1", "http://127.0.0.1:8080"),  # the default: same machine
        ("127.0.0.1", "192.168.1.20", None),  # listening on loopback: out of the LAN's reach
        ("192.168.1.5", "192.168.1.20", "http://192.168.1.5:8080"),
        ("localhost", "127.0.0.1", "http://localhost:8080"),
        ("localhost", "10.0.0.7", None),  # a name for loopback: out of the LAN's reach too
        ("pelosync.lan", "10.0.0.7", "http://pelosync.lan:8080"),
        ("::1", "::1", "http://[::1]:8080"),
        ("0.0.0.0", "127.0.0.1", "http://127.0.0.1:8080"),  # the route to it: loopback
        ("127.0.0.1", "93.184.216.34", None),  # a receiver on the internet: only a public URL
        ("0.0.0.0", "93.184.216.34", None),
    ],
)
def test_without_a_public_url_links_use_the_listening_address(
    host: str, peer: str, expected: str | None
) -> None:
    assert link_base(settings(host=host), ip(peer)) == expected


def test_listening_everywhere_links_to_the_address_facing_the_receiver() -> None:
    # A container network or LAN receiver: the service's own address on that route (the UDP
    # probe sends nothing). Loopback stands in here; a private peer needs a route to exist.
    base = link_base(settings(host="0.0.0.0", port=9000), ip("127.0.0.2"))
    assert base == "http://127.0.0.1:9000"
