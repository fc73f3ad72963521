"""The address policy every outbound fetch of a source passes: which hosts and IP addresses may be reached.

A source is untrusted input: its URL (or a redirect it answers with) must not reach loopback, private ranges,
link-local addresses such as the cloud metadata service at 169.254.169.254, or any other address that is not
globally routable, unless the operator allowed that host or network (`LOREGUARD_ALLOWED_HOSTS`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import ErrorType
from guard.types import SourceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 forms that carry an IPv4 address a router or the kernel may deliver to: NAT64 (RFC 6052) and the
# deprecated IPv4-compatible ::a.b.c.d; IPv4-mapped, 6to4 and Teredo have accessors on IPv6Address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class AddressRefused(SourceError):
    """The policy refused a host or address; retrying cannot help, the operator has to allow it."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorType.ADDRESS_REFUSED, message)


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order. Tests replace this function."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    seen: dict[str, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]).split("%", 1)[0], None)
    return list(seen)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_because(address: IPAddress) -> str | None:
    """Why a source must not reach `address` ("a loopback address", ...), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            why = forbidden_because(inner)
            return f"{why} (as {address})" if why else None
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata lives there)"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "an address that is not globally routable"),
    )
    return next((why for bad, why in checks if bad), None)


@dataclass(frozen=True)
class AddressPolicy:
    """Hosts (exact names) and networks the operator allowed in addition to the public internet."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, entries: Iterable[str]) -> AddressPolicy:
        """From `LOREGUARD_ALLOWED_HOSTS` entries: host names, IP addresses and CIDR networks."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            cleaned = entry.strip().lower().rstrip(".")
            if not cleaned:
                continue
            try:
                networks.append(ipaddress.ip_network(cleaned.strip("[]"), strict=False))
            except ValueError:
                hosts.add(cleaned)
        return cls(frozenset(hosts), tuple(networks))

    def _allowed_address(self, address: IPAddress) -> bool:
        forms: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and (inner := _embedded_ipv4(address)) is not None:
            forms.append(inner)
        return any(
            form in network for form in forms for network in self.networks if form.version == network.version
        )

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """The reason `address` (which `host` resolved to) may not be reached, or None."""
        if host.lower().rstrip(".") in self.hosts or self._allowed_address(address):
            return None
        why = forbidden_because(address)
        if why is None:
            return None
        named = f"{host} resolves to {address}" if host.strip("[]") != str(address) else f"{address}"
        return (
            f"{named}, {why}: sources may not reach it (an operator can allow it in LOREGUARD_ALLOWED_HOSTS)"
        )

    def checked_addresses(self, host: str, port: int) -> list[str]:
        """The addresses of `host` a fetch may connect to, or AddressRefused when there is none.

        The caller connects to these literal addresses, so a second DNS answer cannot swap in another one.
        """
        literal = host.strip("[]")
        try:
            candidates = [str(ipaddress.ip_address(literal))]
        except ValueError:
            candidates = resolve(host, port)
        allowed: list[str] = []
        refusals: list[str] = []
        for candidate in candidates:
            reason = self.refusal(host, ipaddress.ip_address(candidate))
            if reason is None:
                allowed.append(candidate)
            else:
                refusals.append(reason)
        if refusals:
            # A name that resolves to both a public and a private address is refused as a whole: it is the
            # shape of a rebinding attempt, and connecting to "the public one" would depend on resolver order.
            raise AddressRefused(refusals[0])
        if not allowed:
            raise OSError(f"{host} has no address")
        return allowed
