"""Keeping outbound requests to user-given URLs off the server's own network (SSRF guard).

A webhook URL is chosen by a user, so without a guard it can point pelosync at the loopback
interface, the LAN or a cloud metadata service. Before every attempt (not only when the URL is
saved: DNS answers change) :func:`check_destination` resolves the host once and refuses it if
*any* address is not a public unicast address, unless the operator allowed private delivery or
allowlisted the host or network. The request is then sent to the address that was checked
(:meth:`CheckedTarget.pinned_url`), keeping the original ``Host`` header and TLS server name, so a
second DNS answer (DNS rebinding) cannot redirect it. Redirects are never followed by callers
(a 3xx could point anywhere).

Cloud metadata addresses stay refused even with ``PELOSYNC_WEBHOOK_ALLOW_PRIVATE=true`` (no LAN
webhook lives there, and they hand out cloud credentials); only an explicit allowlist entry
covering them lets them through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from service.destinations.kinds.base import DeliveryError, PermanentFailure
from service.errors import InvalidInput

if TYPE_CHECKING:
    from service.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``async (host, port) -> addresses``; the default asks the system resolver.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

DNS_TIMEOUT_S = 5.0

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS VPC DNS
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::253",  # AWS VPC DNS over IPv6
    )
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: embeds an IPv4
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local-use NAT64 prefix (RFC 8215)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible IPv6
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT IPv4-translated (RFC 2765)
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, still routed privately

_PRIVATE_HINT = (
    "set PELOSYNC_WEBHOOK_ALLOW_PRIVATE=true or add it to PELOSYNC_WEBHOOK_ALLOWLIST "
    "to deliver on your own network"
)
_METADATA_HINT = "only an explicit PELOSYNC_WEBHOOK_ALLOWLIST entry allows it"


class UnsafeDestination(PermanentFailure):
    """The destination's address is refused by the SSRF guard (private, loopback, ...)."""

    status_code = 422
    title = "Destination address not allowed"


class InvalidDestinationUrl(InvalidInput):
    """A destination URL that can never be delivered to (scheme, host, syntax)."""

    title = "Invalid destination URL"


class ResolutionFailed(DeliveryError):
    """The destination's host name did not resolve (often transient: retried)."""


def validate_url(url: str) -> str:
    """Check a destination URL at creation: http(s), a host, nothing unparsable.

    Returns the normalised URL; raises :class:`InvalidDestinationUrl` naming the problem.
    No DNS is done here (addresses are checked at every delivery instead).
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidDestinationUrl("the URL is empty")
    if url != url.strip() or any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InvalidDestinationUrl("the URL must not contain spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise InvalidDestinationUrl(f"the URL cannot be parsed: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        shown = parsed.scheme or "none"
        raise InvalidDestinationUrl(f"the URL scheme must be http or https, not {shown}")
    if not parsed.host:
        raise InvalidDestinationUrl("the URL has no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise InvalidDestinationUrl(f"the URL port must be 1 to 65535, not {parsed.port}")
    if parsed.userinfo:
        raise InvalidDestinationUrl(
            "the URL must not contain a user name or password; send credentials in a header"
        )
    if parsed.fragment:
        raise InvalidDestinationUrl("the URL must not have a #fragment")
    return str(parsed)


def embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """Every IPv4 address an IPv6 transition format may carry, to check as that IPv4.

    IPv4-mapped (``::ffff:a.b.c.d``), IPv4-translated (``::ffff:0:a.b.c.d``),
    IPv4-compatible (``::a.b.c.d``, deprecated but still tunnelled by some stacks), NAT64
    with the well-known prefix (``64:ff9b::/96``) or the local-use one (``64:ff9b:1::/48``,
    read in both its /96 and /48 layouts of RFC 6052), 6to4 (``2002::/16``) and Teredo
    (the client address). An IPv4 address, or an IPv6 address of none of these forms,
    carries none: ``()``.
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return ()
    if ip.scope_id:
        ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    value = int(ip)
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    elif ip.sixtofour is not None:
        found.append(ip.sixtofour)
    elif ip.teredo is not None:
        found.append(ip.teredo[1])
    elif ip in _NAT64 or ip in _IPV4_TRANSLATED or (ip in _IPV4_COMPATIBLE and value > 1):
        # the IPv4 is the last 32 bits (:: and ::1 are not IPv4-compatible addresses)
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    elif ip in _NAT64_LOCAL:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))  # a /96 out of the /48
        high, low = (value >> 64) & 0xFFFF, (value >> 40) & 0xFFFF  # the /48 layout
        found.append(ipaddress.IPv4Address(high << 16 | low))
    return tuple(found)


def normalise_address(ip: IPAddress) -> IPAddress:
    """``ip`` as the address packets to it really reach: the (first) IPv4 an IPv6 transition
    address carries (see :func:`embedded_ipv4`), otherwise ``ip`` without its zone id."""
    inner = embedded_ipv4(ip)
    if inner:
        return inner[0]
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    return ip


def is_metadata_address(ip: IPAddress) -> bool:
    """Whether ``ip``, or an IPv4 address it carries, is a cloud metadata address."""
    return ip in METADATA_ADDRESSES or any(v4 in METADATA_ADDRESSES for v4 in embedded_ipv4(ip))


def unsafe_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address ("a loopback address"), or ``None``.

    An IPv6 address carrying an IPv4 (mapped, NAT64, 6to4, ...) is judged by that IPv4.
    """
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if is_metadata_address(ip):
        return "a cloud metadata address inside an IPv6 address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
        for inner in embedded_ipv4(ip):
            reason = unsafe_reason(inner)
            if reason is not None:
                return f"{reason} inside an IPv6 address"
        if embedded_ipv4(ip):
            return None
        if ip in _SITE_LOCAL:
            return "a private (site-local) address"
    for test, reason in (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED, "a shared (CGNAT) address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "a non-public address"),
    ):
        if test:
            return reason
    return None


def _normalise_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


@dataclass(frozen=True)
class AddressPolicy:
    """Which non-public destinations the operator allows."""

    allow_private: bool = False
    hosts: frozenset[str] = frozenset()  # exact names, or "*.suffix"
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, allowlist: str, *, allow_private: bool = False) -> AddressPolicy:
        """From a comma-separated list of host names, ``*.domain`` patterns, IPs and CIDRs."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in allowlist.split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if "/" in entry or any(c.isspace() for c in entry) or ":" in entry:
                raise InvalidInput(f"PELOSYNC_WEBHOOK_ALLOWLIST: {entry!r} is not a host or CIDR")
            hosts.add(_normalise_host(entry))
        return cls(allow_private=allow_private, hosts=frozenset(hosts), networks=tuple(networks))

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        return cls.parse(settings.webhook_allowlist, allow_private=settings.webhook_allow_private)

    def allows_host(self, host: str) -> bool:
        """Whether ``host`` (a name) is allowlisted, whatever it resolves to."""
        host = _normalise_host(host)
        return host in self.hosts or any(
            p.startswith("*.") and host.endswith(p[1:]) for p in self.hosts
        )

    def refusal(self, ip: IPAddress) -> str | None:
        """Why ``ip`` is refused under this policy, or ``None`` if it may be used."""
        reason = unsafe_reason(ip)
        if reason is None:
            return None
        candidates: list[IPAddress] = [ip, *embedded_ipv4(ip)]
        if any(c in net for c in candidates for net in self.networks if net.version == c.version):
            return None
        if self.allow_private and not is_metadata_address(ip):
            return None
        return reason


@dataclass(frozen=True)
class CheckedTarget:
    """A URL whose addresses passed the guard; send requests to one of ``addresses``."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host name or IP literal, as sent in Host and TLS SNI
    addresses: tuple[IPAddress, ...]

    def pinned_url(self, address: IPAddress) -> httpx.URL:
        """The URL with its host replaced by ``address``, so no new DNS lookup happens."""
        if _ip_literal(self.host) == address:
            return self.url  # an address already
        return self.url.copy_with(host=str(address))

    def host_header(self) -> str:
        return self.url.netloc.decode("ascii")

    def extensions(self) -> dict[str, Any]:
        """httpx request extensions: TLS SNI and certificate checks use the real host name."""
        return {"sni_hostname": self.host} if self.url.scheme == "https" else {}


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (``getaddrinfo``, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def check_destination(
    url: str | httpx.URL,
    policy: AddressPolicy,
    *,
    resolver: Resolver | None = None,
    dns_timeout_s: float = DNS_TIMEOUT_S,
) -> CheckedTarget:
    """Resolve ``url``'s host once and check every address against ``policy``.

    Raises :class:`UnsafeDestination` (permanent) if any address is refused,
    :class:`ResolutionFailed` (retried) if the name does not resolve, and
    :class:`InvalidDestinationUrl` for a URL that is not http(s) with a host.
    """
    parsed = httpx.URL(validate_url(str(url)))
    return await check_address(parsed, policy, resolver=resolver, dns_timeout_s=dns_timeout_s)


async def check_address(
    parsed: httpx.URL,
    policy: AddressPolicy,
    *,
    resolver: Resolver | None = None,
    dns_timeout_s: float = DNS_TIMEOUT_S,
) -> CheckedTarget:
    """:func:`check_destination` for a URL already through :func:`validate_url` (a stored
    destination's): the same checks, without parsing the URL again on every attempt."""
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    literal = _ip_literal(host)
    if literal is not None:
        reason = policy.refusal(literal)
        if reason is not None:
            hint = _METADATA_HINT if is_metadata_address(literal) else _PRIVATE_HINT
            raise UnsafeDestination(f"{literal} is {reason}; {hint}")
        return CheckedTarget(parsed, host, (literal,))

    try:
        async with asyncio.timeout(dns_timeout_s):
            answers = await (resolver or system_resolver)(host, port)
    except TimeoutError:
        raise ResolutionFailed(
            f"could not resolve {host}: no answer in {dns_timeout_s:g} s"
        ) from None
    except OSError as exc:  # socket.gaierror
        raise ResolutionFailed(f"could not resolve {host}: {exc}") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        ip = ipaddress.ip_address(answer)
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise ResolutionFailed(f"could not resolve {host}: no addresses")
    if policy.allows_host(host):
        return CheckedTarget(parsed, host, tuple(addresses))
    for ip in addresses:
        reason = policy.refusal(ip)
        if reason is not None:
            hint = _METADATA_HINT if is_metadata_address(ip) else _PRIVATE_HINT
            raise UnsafeDestination(f"{host} resolves to {ip}, {reason}; {hint}")
    return CheckedTarget(parsed, host, tuple(addresses))
