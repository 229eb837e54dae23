"""The SSRF guard: address classification, allowlists, URL validation and pinned targets."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence

import pytest

from service.destinations.ssrf import (
    AddressPolicy,
    InvalidDestinationUrl,
    ResolutionFailed,
    UnsafeDestination,
    check_destination,
    embedded_ipv4,
    normalise_address,
    unsafe_reason,
    validate_url,
)
from service.errors import InvalidInput
from tests.destinations.conftest import make_settings


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("::1", "a loopback address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.20", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("fec0::1", "a private (site-local) address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("100.64.0.1", "a shared (CGNAT) address"),
        ("100.127.255.254", "a shared (CGNAT) address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("240.0.0.1", "a private address"),
        ("255.255.255.255", "a private address"),
        ("192.0.2.10", "a private address"),  # documentation
        ("198.18.0.1", "a private address"),  # benchmarking
        ("2001:db8::1", "a private address"),  # documentation
        ("::ffff:127.0.0.1", "a loopback address inside an IPv6 address"),
        ("::ffff:10.1.1.1", "a private address inside an IPv6 address"),
        ("::ffff:169.254.169.254", "a cloud metadata address inside an IPv6 address"),
        ("2002:7f00:1::1", "a loopback address inside an IPv6 address"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", "a private address inside an IPv6 address"),  # NAT64 of 10.0.0.1
        ("::127.0.0.1", "a loopback address inside an IPv6 address"),  # IPv4-compatible
        ("64:ff9b:1::a00:1", "a private address inside an IPv6 address"),  # local-use NAT64
        # Teredo whose (obfuscated) client is 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "a loopback address inside an IPv6 address"),
    ],
)
def test_non_public_addresses_are_named(address: str, reason: str) -> None:
    assert unsafe_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert unsafe_reason(ipaddress.ip_address(address)) is None


def test_policy_allow_private_still_refuses_metadata_unless_listed() -> None:
    policy = AddressPolicy(allow_private=True)
    assert policy.refusal(ipaddress.ip_address("192.168.1.2")) is None
    assert policy.refusal(ipaddress.ip_address("::1")) is None
    assert policy.refusal(ipaddress.ip_address("169.254.169.254")) == "a cloud metadata address"
    listed = AddressPolicy.parse("169.254.169.254/32", allow_private=True)
    assert listed.refusal(ipaddress.ip_address("169.254.169.254")) is None


# Every spelling of a metadata address found by the audit, and their relatives: with private
# delivery allowed they must still be refused, as literals and as DNS answers.
METADATA_SPELLINGS = [
    "169.254.169.254",
    "::ffff:169.254.169.254",
    "::ffff:a9fe:a9fe",
    "::ffff:169.254.170.2",
    "::ffff:0:a9fe:a9fe",  # IPv4-translated (SIIT) is not mapped: must stay refused too
    "::169.254.169.254",  # IPv4-compatible
    "64:ff9b::a9fe:a9fe",  # NAT64, well-known prefix
    "64:ff9b::169.254.170.2",
    "64:ff9b:1::a9fe:a9fe",  # NAT64, local-use prefix, /96 layout
    "64:ff9b:1:a9fe:a9:fe00::",  # NAT64, local-use prefix, /48 layout
    "2002:a9fe:a9fe::",  # 6to4
    "2002:a9fe:a9fe:1234::1",
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo client 169.254.169.254 (obfuscated)
    "[::ffff:169.254.169.254%eth0]",
]


@pytest.mark.parametrize("spelling", METADATA_SPELLINGS)
def test_metadata_is_refused_in_every_spelling_even_with_private_allowed(spelling: str) -> None:
    policy = AddressPolicy(allow_private=True)
    ip = ipaddress.ip_address(spelling.strip("[]"))
    reason = policy.refusal(ip)
    assert reason is not None and reason.startswith("a cloud metadata address")


@pytest.mark.parametrize("spelling", [s for s in METADATA_SPELLINGS if "%" not in s])
async def test_metadata_spellings_are_refused_as_literals_and_dns_answers(spelling: str) -> None:
    policy = AddressPolicy(allow_private=True)
    with pytest.raises(UnsafeDestination):
        await check_destination(
            f"http://[{spelling}]/hook" if ":" in spelling else f"http://{spelling}/hook", policy
        )

    async def resolver(host: str, port: int) -> Sequence[str]:
        return [spelling]

    with pytest.raises(UnsafeDestination, match="resolves to"):
        await check_destination("https://hooks.example.com/", policy, resolver=resolver)


def test_normalise_address_gives_the_ipv4_packets_reach() -> None:
    ip = ipaddress.ip_address
    assert normalise_address(ip("::ffff:a9fe:a9fe")) == ip("169.254.169.254")
    assert normalise_address(ip("64:ff9b::808:808")) == ip("8.8.8.8")
    assert normalise_address(ip("2002:808:808::1")) == ip("8.8.8.8")
    assert normalise_address(ip("2606:4700::1111")) == ip("2606:4700::1111")
    assert normalise_address(ip("fe80::1%eth0")) == ip("fe80::1")
    assert normalise_address(ip("10.0.0.1")) == ip("10.0.0.1")
    assert normalise_address(ip("::1")) == ip("::1")
    assert embedded_ipv4(ip("::")) == ()


def test_allowlist_parsing_and_matching() -> None:
    policy = AddressPolicy.parse(
        " 192.168.1.0/24, homeassistant.LOCAL., *.lan, fd00::/8, 10.0.0.9 "
    )
    ip = ipaddress.ip_address
    assert policy.refusal(ip("192.168.1.77")) is None
    assert policy.refusal(ip("::ffff:192.168.1.77")) is None  # mapped form of a listed address
    assert policy.refusal(ip("192.168.2.1")) == "a private address"
    assert policy.refusal(ip("fd00::5")) is None
    assert policy.refusal(ip("10.0.0.9")) is None
    assert policy.refusal(ip("10.0.0.10")) == "a private address"
    assert policy.allows_host("homeassistant.local")
    assert policy.allows_host("nas.lan") and policy.allows_host("a.b.LAN")
    assert not policy.allows_host("lan") and not policy.allows_host("evil-lan.com")
    assert AddressPolicy.from_settings(make_settings(webhook_allowlist="nas.lan")).hosts == {
        "nas.lan"
    }


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "host name", "http://x/"])
def test_bad_allowlist_entries_are_refused(entry: str) -> None:
    with pytest.raises(InvalidInput, match="PELOSYNC_WEBHOOK_ALLOWLIST"):
        AddressPolicy.parse(f"10.0.0.0/8,{entry}")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty"),
        ("ftp://example.com/", "scheme must be http or https, not ftp"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("example.com/hook", "scheme must be http or https"),
        ("https://", "no host"),
        ("https://exa mple.com/", "spaces"),
        (" https://example.com/", "spaces"),
        ("https://example.com/\nx", "control characters"),
        ("https://example.com:99999/", "port must be 1 to 65535, not 99999"),
        ("https://example.com:0/", "port must be"),
        ("https://[::1/", "cannot be parsed"),
        ("https://example.com/#frag", "fragment"),
        ("https://user:pw@example.com/", "user name or password"),
    ],
)
def test_validate_url_rejects(url: str, problem: str) -> None:
    with pytest.raises(InvalidDestinationUrl, match=problem) as refused:
        validate_url(url)
    assert refused.value.status_code == 422


def test_validate_url_accepts_and_normalises() -> None:
    assert validate_url("HTTPS://Hooks.Example.com/a?b=1") == "https://hooks.example.com/a?b=1"
    assert validate_url("http://[::1]:8080/x") == "http://[::1]:8080/x"
    assert validate_url("https://bücher.example/h") == "https://xn--bcher-kva.example/h"


async def test_check_destination_pins_and_keeps_the_host_name() -> None:
    async def resolver(host: str, port: int) -> Sequence[str]:
        assert (host, port) == ("xn--bcher-kva.example", 8443)
        return ["93.184.216.34", "2606:2800:220:1::1", "93.184.216.34"]

    target = await check_destination(
        "https://bücher.example:8443/h?x=1", AddressPolicy(), resolver=resolver
    )
    assert [str(a) for a in target.addresses] == ["93.184.216.34", "2606:2800:220:1::1"]
    assert str(target.pinned_url(target.addresses[0])) == "https://93.184.216.34:8443/h?x=1"
    assert str(target.pinned_url(target.addresses[1])) == "https://[2606:2800:220:1::1]:8443/h?x=1"
    assert target.host_header() == "xn--bcher-kva.example:8443"
    assert target.extensions() == {"sni_hostname": "xn--bcher-kva.example"}


async def test_plain_http_needs_no_sni_and_ip_literals_need_no_dns() -> None:
    async def resolver(host: str, port: int) -> Sequence[str]:
        raise AssertionError("an IP literal is not resolved")

    target = await check_destination("http://8.8.8.8/h", AddressPolicy(), resolver=resolver)
    assert target.extensions() == {}
    assert target.host_header() == "8.8.8.8"


async def test_any_refused_answer_refuses_the_host() -> None:
    async def resolver(host: str, port: int) -> Sequence[str]:
        return ["8.8.8.8", "fd00:ec2::254"]

    with pytest.raises(UnsafeDestination) as refused:
        await check_destination("https://x.example/", AddressPolicy(), resolver=resolver)
    message = refused.value.message
    assert "x.example resolves to fd00:ec2::254, a cloud metadata address" in message
    assert "only an explicit PELOSYNC_WEBHOOK_ALLOWLIST entry" in message


async def test_allowlisted_host_skips_the_address_check() -> None:
    async def resolver(host: str, port: int) -> Sequence[str]:
        return ["192.168.1.10"]

    target = await check_destination(
        "http://nas.lan:8123/api/webhook/x", AddressPolicy.parse("*.lan"), resolver=resolver
    )
    assert [str(a) for a in target.addresses] == ["192.168.1.10"]


async def test_resolution_failures_are_retryable() -> None:
    async def unknown(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def silent(host: str, port: int) -> Sequence[str]:
        await asyncio.sleep(30)
        return []

    async def empty(host: str, port: int) -> Sequence[str]:
        return []

    cases = ((unknown, "Name or service not known"), (silent, "no answer"), (empty, "no addr"))
    for resolver, text in cases:
        with pytest.raises(ResolutionFailed, match=text) as failed:
            await check_destination(
                "https://x.example/", AddressPolicy(), resolver=resolver, dns_timeout_s=0.05
            )
        assert failed.value.retryable
        assert "could not resolve x.example" in failed.value.message


async def test_the_system_resolver_is_used_by_default() -> None:
    with pytest.raises(UnsafeDestination, match="localhost resolves to .*loopback"):
        await check_destination("http://localhost:9/", AddressPolicy())
