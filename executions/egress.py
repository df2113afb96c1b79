"""Egress guard: where outbound calls may go.

Every address a host resolves to is checked. Link-local and cloud metadata
addresses are refused always; loopback, private and carrier-grade NAT ranges
are refused unless the operator allows them in ``TRAMA_EGRESS_ALLOW`` (CIDRs
or host names, comma-separated).
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ALWAYS_DENIED = [
    ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "0.0.0.0/8", "::/128")
]
_DENIED_UNLESS_ALLOWED = [
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
]


class EgressDenied(Exception):
    pass


def _allowed_rules() -> tuple[list, set[str]]:
    networks, hosts = [], set()
    for item in settings.TRAMA_EGRESS_ALLOW:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower())
    return networks, hosts


def _unwrap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def check_address(address: IPAddress, host_allowed: bool, allowed_networks: list) -> None:
    address = _unwrap(address)
    if any(address in net for net in _ALWAYS_DENIED) or address.is_multicast:
        raise EgressDenied(f"address {address} is link-local or metadata: never allowed")
    if host_allowed or any(address in net for net in allowed_networks if net.version == address.version):
        return
    if any(address in net for net in _DENIED_UNLESS_ALLOWED) or address.is_private or address.is_loopback:
        raise EgressDenied(f"address {address} is internal; allow it with TRAMA_EGRESS_ALLOW")


def check_url(url: str) -> None:
    """Raise EgressDenied unless ``url`` is http(s) and every address of its host may be called."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise EgressDenied(f"scheme '{parts.scheme}' is not allowed (http and https only)")
    host = parts.hostname
    if not host:
        raise EgressDenied("URL has no host")
    networks, hosts = _allowed_rules()
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise EgressDenied(f"host '{host}' does not resolve: {exc}") from None
    for info in infos:
        check_address(ipaddress.ip_address(info[4][0].split("%")[0]), host.lower() in hosts, networks)
