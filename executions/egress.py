"""Egress guard: where outbound calls (task, compensation and notify requests) may go.

``resolve(url)`` is the one check. It allows http and https only, resolves the
host once and checks EVERY address it resolves to (IPv4 addresses embedded in
IPv6 ones, such as ``::ffff:169.254.169.254``, are checked as the IPv4 address
they stand for):

* link-local and cloud metadata (169.254.0.0/16, fe80::/10, fd00:ec2::254),
  "this network" (0.0.0.0/8, ::), multicast and broadcast are refused always,
  even when ``TRAMA_EGRESS_ALLOW`` lists them: no workflow has a reason to read
  a cloud instance's credentials;
* loopback, private (RFC 1918, fc00::/7), carrier-grade NAT (100.64.0.0/10)
  and the other special-purpose ranges are refused unless ``TRAMA_EGRESS_ALLOW``
  (comma-separated CIDRs and host names) allows them.

It returns a ``Target`` naming the checked address; the dispatcher connects to
that address and never resolves the name again, so a DNS answer that changes
between the check and the connection (DNS rebinding) cannot redirect the call.
See docs/security.md.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_ALWAYS_DENIED = [
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "0.0.0.0/8", "::/128", "255.255.255.255/32")
]
_DENIED_UNLESS_ALLOWED = [
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressDenied(Exception):
    """The URL may not be called; the message names the scheme, host or address at fault."""


@dataclass(frozen=True)
class Target:
    """Where a checked URL's connection goes: ``addresses`` (IP literals, all checked) stand for ``host``."""

    host: str
    port: int
    addresses: tuple[str, ...]

    @property
    def address(self) -> str:
        return self.addresses[0]


def resolve(url: str) -> Target:
    """Check ``url`` and return the address to connect to; EgressDenied if any part of it is refused."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise EgressDenied(f"egress refused: scheme '{parts.scheme}' is not allowed (http and https only)")
    try:
        host, port = parts.hostname, parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise EgressDenied(f"egress refused: invalid URL ({exc})") from None
    if not host:
        raise EgressDenied("egress refused: the URL has no host")
    addresses = _addresses(host, port)
    networks, hosts = _allowed_rules()
    host_allowed = host.rstrip(".").lower() in hosts
    for address in addresses:
        check_address(address, host_allowed, networks, host)
    return Target(host=host, port=port, addresses=tuple(str(a) for a in addresses))


def _addresses(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise EgressDenied(f"egress refused: host '{host}' does not resolve ({exc})") from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not found:
        raise EgressDenied(f"egress refused: host '{host}' resolves to no address")
    return list(dict.fromkeys(found))


def _allowed_rules() -> tuple[list[Network], set[str]]:
    """TRAMA_EGRESS_ALLOW split into networks (CIDRs and single addresses) and host names."""
    networks: list[Network] = []
    hosts: set[str] = set()
    for item in settings.TRAMA_EGRESS_ALLOW:
        try:
            networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
        except ValueError:
            hosts.add(item.rstrip(".").lower())
    return networks, hosts


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), else the address itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def check_address(address: IPAddress, host_allowed: bool, allowed_networks: list[Network], host: str = "") -> None:
    """Raise EgressDenied if ``address`` may not be called (``host_allowed``: its name is in the allow list)."""
    effective = embedded_ipv4(address)
    shown = f"{address}" if effective == address else f"{address} ({effective})"
    where = f"'{host}' resolves to {shown}" if host and host != str(address) else f"address {shown}"
    if _always_denied(effective):
        raise EgressDenied(
            f"egress refused: {where}, a link-local, cloud metadata or otherwise unroutable address; "
            "never allowed, not even by TRAMA_EGRESS_ALLOW"
        )
    if host_allowed or _in_any(address, allowed_networks) or _in_any(effective, allowed_networks):
        return
    if _internal(effective):
        raise EgressDenied(
            f"egress refused: {where}, an internal (loopback, private or carrier-grade NAT) address; "
            "allow it with TRAMA_EGRESS_ALLOW"
        )


def _always_denied(address: IPAddress) -> bool:
    return address.is_multicast or address.is_unspecified or _in_any(address, _ALWAYS_DENIED)


def _internal(address: IPAddress) -> bool:
    """Not a public unicast address: the named ranges, plus what ``ipaddress`` calls private or reserved."""
    return (
        _in_any(address, _DENIED_UNLESS_ALLOWED)
        or address.is_private
        or address.is_loopback
        or address.is_reserved
        or not address.is_global
    )


def _in_any(address: IPAddress, networks: list[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)
