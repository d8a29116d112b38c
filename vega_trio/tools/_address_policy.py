"""Where an HTTP tool may connect: default-deny for internal destinations (SPEC §5.3).

A model that can choose a URL (or a server that answers with a redirect) must not make the tool
reach what only the machine running vega-trio can reach: its loopback services, the private
network, link-local neighbours and, above all, the cloud metadata service that hands out the
machine's credentials. So every destination address is classified, and an address that is not
an ordinary public one is refused unless the tool's ``allowed_hosts`` names it.

Classification is an explicit table (each entry says why it is there), then the
:mod:`ipaddress` module's properties as a safety net for anything the table does not name. IPv6
forms that carry an IPv4 address (IPv4-mapped ``::ffff:127.0.0.1``, IPv4-compatible, NAT64
``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by the IPv4 address they lead to.

``allowed_hosts`` entries (:class:`AllowList`):

* ``api.example.com`` — this host name. Its addresses are allowed **whatever range they are
  in**: naming a host is the statement that it may be reached (``localhost``, ``db.internal``).
* ``*.example.com`` — any subdomain (not ``example.com`` itself). A wildcard names no
  particular host, so its addresses must be public unless an IP/CIDR entry covers them.
* ``10.1.2.3``, ``::1``, ``[::1]`` — this address, as a URL host or as the address a name
  resolves to.
* ``10.0.0.0/8``, ``fd00::/8`` — every address in the network, the same way.
* A name or address entry may end in ``:port`` (``127.0.0.1:8080``, ``[::1]:8080``,
  ``api.example.com:8443``): then only that port; without one, any port.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Final, TypeAlias

import attrs

__all__ = [
    "AllowList",
    "IPAddress",
    "classify",
    "forbidden_name",
    "literal_address",
    "normalize_entry",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def _net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


# Cloud metadata endpoints, checked first so that the message says what the address is. Most
# sit in ranges that are refused anyway; 168.63.129.16 does not (it is a public-range address
# that Azure answers inside every virtual network).
_METADATA_ADDRESSES: Final[tuple[tuple[IPNetwork, str], ...]] = (
    # The instance metadata service of AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean, ...
    (_net("169.254.169.254/32"), "AWS/GCP/Azure/OpenStack/Oracle instance metadata"),
    # AWS ECS task metadata and task-role credentials.
    (_net("169.254.170.2/32"), "AWS ECS task metadata and credentials"),
    # AWS EKS Pod Identity agent (credentials).
    (_net("169.254.170.23/32"), "AWS EKS Pod Identity credentials"),
    # AWS instance metadata over IPv6 (Nitro instances).
    (_net("fd00:ec2::254/128"), "AWS instance metadata (IPv6)"),
    # AWS EKS Pod Identity agent over IPv6.
    (_net("fd00:ec2::23/128"), "AWS EKS Pod Identity credentials (IPv6)"),
    # Alibaba Cloud instance metadata (inside the carrier-grade NAT range).
    (_net("100.100.100.200/32"), "Alibaba Cloud instance metadata"),
    # Azure WireServer: the platform's agent, DNS and health endpoint in every VNet.
    (_net("168.63.129.16/32"), "Azure WireServer"),
    # Oracle Cloud's older instance metadata address.
    (_net("192.0.0.192/32"), "Oracle Cloud instance metadata"),
)

# Ranges that are never an ordinary public destination. The more specific entries come first.
_RANGES: Final[tuple[tuple[IPNetwork, str], ...]] = (
    # -- IPv4 --
    # "This network" (RFC 1122); connecting to 0.0.0.0 reaches the local host on Linux.
    (_net("0.0.0.0/8"), "an unspecified ('this network') address"),
    # Private networks (RFC 1918): the LAN, VPCs, internal services.
    (_net("10.0.0.0/8"), "a private network address (RFC 1918)"),
    # Shared address space for carrier-grade NAT (RFC 6598); clouds and VPNs (Tailscale)
    # put internal services here.
    (_net("100.64.0.0/10"), "a carrier-grade NAT (shared, RFC 6598) address"),
    # The local host itself.
    (_net("127.0.0.0/8"), "a loopback address"),
    # Link-local (RFC 3927): the local segment, home of the metadata services.
    (_net("169.254.0.0/16"), "a link-local address"),
    (_net("172.16.0.0/12"), "a private network address (RFC 1918)"),
    # IETF protocol assignments (RFC 6890): special-purpose, not ordinary hosts.
    (_net("192.0.0.0/24"), "an IETF special-purpose address (RFC 6890)"),
    # Documentation ranges (RFC 5737): never a real destination.
    (_net("192.0.2.0/24"), "a documentation address (RFC 5737)"),
    # The deprecated 6to4 relay anycast range (RFC 7526).
    (_net("192.88.99.0/24"), "a deprecated 6to4 relay address (RFC 7526)"),
    (_net("192.168.0.0/16"), "a private network address (RFC 1918)"),
    # Benchmarking (RFC 2544); also where "fake-IP" DNS proxies map names.
    (_net("198.18.0.0/15"), "a benchmarking address (RFC 2544)"),
    (_net("198.51.100.0/24"), "a documentation address (RFC 5737)"),
    (_net("203.0.113.0/24"), "a documentation address (RFC 5737)"),
    # Multicast: one packet to many hosts of the local network.
    (_net("224.0.0.0/4"), "a multicast address"),
    # Limited broadcast: every host of the local segment.
    (_net("255.255.255.255/32"), "the broadcast address"),
    # Reserved for future use (RFC 1112); not routed.
    (_net("240.0.0.0/4"), "a reserved address (RFC 1112)"),
    # -- IPv6 --
    (_net("::/128"), "the unspecified address"),
    (_net("::1/128"), "a loopback address"),
    # Local-use NAT64 (RFC 8215): an operator's own translation prefix, into its own network.
    (_net("64:ff9b:1::/48"), "a local-use NAT64 address (RFC 8215)"),
    # Discard-only (RFC 6666).
    (_net("100::/64"), "a discard-only address (RFC 6666)"),
    # Teredo (RFC 4380) tunnels to an obfuscated IPv4 address that can't be checked.
    (_net("2001::/32"), "a Teredo tunnel address (RFC 4380)"),
    (_net("2001:2::/48"), "a benchmarking address (RFC 5180)"),
    # ORCHID identifiers (RFC 4843, RFC 7343): not routable.
    (_net("2001:10::/28"), "a non-routable ORCHID identifier (RFC 4843)"),
    (_net("2001:20::/28"), "a non-routable ORCHID identifier (RFC 7343)"),
    # Documentation (RFC 3849, RFC 9637).
    (_net("2001:db8::/32"), "a documentation address (RFC 3849)"),
    (_net("3fff::/20"), "a documentation address (RFC 9637)"),
    # SRv6 segment identifiers (RFC 9602): inside an operator's network.
    (_net("5f00::/16"), "an SRv6 segment identifier (RFC 9602)"),
    # Unique local addresses (RFC 4193), IPv6's private networks; fd00::/8 in practice.
    (_net("fc00::/7"), "a unique local (private) IPv6 address (RFC 4193)"),
    (_net("fe80::/10"), "a link-local address"),
    # Site-local, deprecated (RFC 3879) but still routed inside some sites.
    (_net("fec0::/10"), "a site-local address (RFC 3879)"),
    (_net("ff00::/8"), "a multicast address"),
)

# IPv6 prefixes whose packets go to an IPv4 address written inside the IPv6 one.
_NAT64: Final = _net("64:ff9b::/96")  # RFC 6052 well-known prefix: low 32 bits
_IPV4_COMPATIBLE: Final = _net("::/96")  # deprecated (RFC 4291): low 32 bits
_IPV4_TRANSLATED: Final = _net("::ffff:0:0:0/96")  # SIIT (RFC 2765): low 32 bits

# Host names refused by name, before any lookup (and whatever a custom transport would do
# with them), because what they reach is dangerous by definition.
_METADATA_NAMES: Final[dict[str, str]] = {
    "metadata.google.internal": "the GCP instance metadata service",
    "metadata.goog": "the GCP instance metadata service",
    # GCE's resolver answers the bare name too.
    "metadata": "the GCP instance metadata service",
    "instance-data": "the AWS EC2 instance metadata service",
    "instance-data.ec2.internal": "the AWS EC2 instance metadata service",
    "metadata.tencentyun.com": "the Tencent Cloud instance metadata service",
}


def classify(address: IPAddress) -> str | None:
    """Why ``address`` is not an ordinary public destination (for example
    ``"a loopback address (127.0.0.0/8)"``), or ``None`` when it is one."""
    for network, what in _METADATA_ADDRESSES:
        if address in network:
            return f"a cloud metadata address ({what})"
    for network, what in _RANGES:
        if address in network:
            return f"{what} ({network})"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            # NOTE: judged by where the packets end up; ipaddress calls ::ffff:8.8.8.8
            # "reserved", although it is just 8.8.8.8.
            reason = classify(embedded)
            return None if reason is None else f"an IPv6 form of {embedded}, {reason}"
    # The safety net: whatever ipaddress knows that the table does not name.
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "an address that is not globally reachable"
    return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to (IPv4-mapped, -compatible, -translated,
    NAT64 well-known prefix, 6to4), or ``None``."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _IPV4_COMPATIBLE or address in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_name(host: str) -> str | None:
    """Why a host *name* is refused before any lookup, or ``None``."""
    if host in _METADATA_NAMES:
        return f"the name of {_METADATA_NAMES[host]} (cloud metadata)"
    # RFC 6761: localhost and every name under it are the loopback interface.
    if host == "localhost" or host.endswith(".localhost"):
        return "a loopback name (RFC 6761)"
    return None


_LEGACY_IPV4: Final = re.compile(r"^[0-9a-fx.]+$")


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host denotes without a lookup, or ``None`` for a name.

    Besides ordinary literals (``10.0.0.1``, ``::1``, ``[::1]``) this knows the legacy IPv4
    forms the C resolver accepts — ``127.1``, ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1``
    — which would otherwise slip past a check of "the host as written".
    """
    text = host.strip("[]")
    text = text.split("%", 1)[0]  # an IPv6 zone ("fe80::1%25eth0") does not change the range
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(text) and not text.endswith("."):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


# -- the allow-list --------------------------------------------------------------------------

_NAME: Final = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$")
_PORT: Final = re.compile(r"^(.*):([0-9]{1,5})$")


def normalize_entry(entry: str) -> str:
    """An ``allowed_hosts`` entry in its canonical spelling (lower case, no trailing dot, IPs
    and networks as :mod:`ipaddress` writes them); an invalid entry is returned unchanged for
    :meth:`AllowList.parse` to report."""
    text = str(entry).strip().lower()
    try:
        host, port = _split_port(text)
        parsed = _parse_host(host)
    except ValueError:
        return text.rstrip(".")
    if isinstance(parsed, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return text if port is not None else str(parsed)
    if isinstance(parsed, ipaddress.IPv4Address | ipaddress.IPv6Address):
        shown = f"[{parsed}]" if parsed.version == 6 and port is not None else str(parsed)
    else:
        shown = parsed
    return shown if port is None else f"{shown}:{port}"


def _split_port(text: str) -> tuple[str, int | None]:
    """``host[:port]`` → (host, port); a bare IPv6 address has no port."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("an unclosed '['")
        rest = text[end + 1 :]
        if not rest:
            return text[1:end], None
        if not rest.startswith(":"):
            raise ValueError("text after ']'")
        return text[1:end], _port(rest[1:])
    if text.count(":") == 1:
        match = _PORT.match(text)
        if match is None:
            raise ValueError("a malformed port")
        return match.group(1), _port(match.group(2))
    return text, None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"port {text!r} is not 1-65535")
    return int(text)


def _parse_host(text: str) -> str | IPAddress | IPNetwork:
    text = text.rstrip(".")
    if "/" in text:
        try:
            return ipaddress.ip_network(text)
        except ValueError as problem:
            raise ValueError(f"not a network: {problem}") from None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if not _NAME.match(text):
        raise ValueError("not a host name")
    return text


@attrs.frozen
class _Entry:
    host: str | IPNetwork  # a name, "*.suffix", or an address/network
    port: int | None
    source: str

    def port_ok(self, port: int) -> bool:
        return self.port is None or self.port == port


@attrs.frozen
class AllowList:
    """Parsed ``allowed_hosts`` entries (see the module docstring for their forms)."""

    entries: tuple[_Entry, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Parse the (normalized) entries.

        Raises:
            ValueError: an entry is not a host name, ``*.`` wildcard, address or network
                with an optional port (the message says which and why).
        """
        parsed: list[_Entry] = []
        for entry in entries:
            try:
                host, port = _split_port(entry)
                value = _parse_host(host)
            except ValueError as problem:
                raise ValueError(f"{entry!r}: {problem}") from None
            if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network) and port:
                raise ValueError(f"{entry!r}: a network entry can't have a port")
            if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
                value = ipaddress.ip_network(value)
            parsed.append(_Entry(value, port, entry))
        return cls(tuple(parsed))

    def matches(self, names: Iterable[str], literal: IPAddress | None, port: int) -> bool:
        """Whether a URL host (its spellings ``names``, or the address ``literal``) is
        allowed at all — the host check of every request and redirect."""
        if literal is not None:
            return self.covers(literal, port)
        spellings = set(names)
        for entry in self.entries:
            if not isinstance(entry.host, str) or not entry.port_ok(port):
                continue
            if entry.host.startswith("*."):
                suffix = entry.host[1:]
                if any(n.endswith(suffix) and len(n) > len(suffix) for n in spellings):
                    return True
            elif entry.host in spellings:
                return True
        return False

    def names(self, names: Iterable[str], port: int) -> bool:
        """Whether an exact host-name entry names this host (then every address it resolves
        to is allowed)."""
        spellings = set(names)
        return any(
            isinstance(e.host, str)
            and not e.host.startswith("*.")
            and e.host in spellings
            and e.port_ok(port)
            for e in self.entries
        )

    def covers(self, address: IPAddress, port: int) -> bool:
        """Whether an address or network entry covers ``address`` (or the IPv4 address an
        IPv6 form of it leads to)."""
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            embedded = embedded_ipv4(address)
            if embedded is not None:
                candidates.append(embedded)
        return any(
            not isinstance(e.host, str)
            and e.port_ok(port)
            and any(c.version == e.host.version and c in e.host for c in candidates)
            for e in self.entries
        )
