"""Network interfaces: naming an interface to bind, listing addresses to advertise.

Theory of operation
-------------------
The standard library knows interface *names* (``socket.if_nameindex``) but not their
addresses. Without extra dependencies we ask the kernel directly where we can:

* IPv4, Linux: the ``SIOCGIFADDR`` ioctl on a datagram socket returns an interface's (first)
  address;
* IPv6, Linux: ``/proc/net/if_inet6`` lists every interface's addresses.

Elsewhere, interface names cannot be resolved (a :class:`ConfigurationError` says so), and the
advertised addresses fall back to what the host name resolves to. Link-local IPv6 addresses
(``fe80::/10``) are never advertised: a URL would need a zone index only the local host
understands. Loopback addresses are listed last, since peers on other machines cannot use them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import sys
from pathlib import Path

from couchlite.errors import ConfigurationError

#: ``SIOCGIFADDR`` from ``<linux/sockios.h>``.
_SIOCGIFADDR = 0x8915
_IF_INET6 = Path("/proc/net/if_inet6")
_IS_LINUX = sys.platform.startswith("linux")


def _ipv4_of(name: str) -> str | None:
    if not _IS_LINUX:
        return None
    import fcntl  # POSIX only; imported here so the module loads everywhere

    request = struct.pack("256s", name.encode("utf-8")[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
        except OSError:  # EADDRNOTAVAIL: the interface has no IPv4 address
            return None
    # struct ifreq: 16 bytes of name, then a sockaddr_in whose address starts at offset 4.
    return socket.inet_ntoa(reply[20:24])


def _ipv6_table() -> list[tuple[str, str]]:
    """``(interface, address)`` pairs from ``/proc/net/if_inet6`` (empty where unavailable)."""
    if not _IS_LINUX:
        return []
    try:
        lines = _IF_INET6.read_text(encoding="ascii").splitlines()
    except OSError:
        return []
    table = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or len(fields[0]) != 32:
            continue
        with contextlib.suppress(ValueError):
            address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
            table.append((fields[5], str(address)))
    return table


def _advertisable_ipv6(address: str) -> bool:
    return not ipaddress.IPv6Address(address).is_link_local


def _interface_names() -> list[str]:
    try:
        return [name for _index, name in socket.if_nameindex()]
    except OSError:
        return []


def resolve_interface(name: str) -> str:
    """The address to bind for interface ``name``: its IPv4 address, else its first routable
    IPv6 address. Raises :class:`ConfigurationError` for an unknown name or one without an
    address."""
    if name not in _interface_names():
        raise ConfigurationError(f"unknown network interface {name!r}")
    if not _IS_LINUX:
        raise ConfigurationError(
            f"cannot find the address of interface {name!r} on this platform; "
            "configure its IP address instead"
        )
    ipv4 = _ipv4_of(name)
    if ipv4 is not None:
        return ipv4
    for interface, address in _ipv6_table():
        if interface == name and _advertisable_ipv6(address):
            return address
    raise ConfigurationError(f"network interface {name!r} has no usable address")


def local_addresses(*, ipv4: bool = True, ipv6: bool = True) -> list[str]:
    """This machine's addresses worth advertising: routable ones first, then loopback."""
    found: list[str] = []
    if ipv4:
        for name in _interface_names():
            address = _ipv4_of(name)
            if address is not None:
                found.append(address)
    if ipv6:
        found.extend(a for _n, a in _ipv6_table() if _advertisable_ipv6(a))
    families = {socket.AF_INET} if ipv4 else set()
    if ipv6:
        families.add(socket.AF_INET6)
    with contextlib.suppress(OSError, UnicodeError):
        for family, _t, _p, _c, sockaddr in socket.getaddrinfo(
            socket.gethostname(), None, type=socket.SOCK_STREAM
        ):
            if family in families:
                address = str(sockaddr[0]).split("%", 1)[0]
                if family != socket.AF_INET6 or _advertisable_ipv6(address):
                    found.append(address)
    if ipv4:
        found.append("127.0.0.1")
    if ipv6:
        found.append("::1")
    unique = list(dict.fromkeys(found))
    routable = [a for a in unique if not ipaddress.ip_address(a).is_loopback]
    loopback = [a for a in unique if ipaddress.ip_address(a).is_loopback]
    return routable + loopback


def url_host(address: str) -> str:
    """``address`` as the host part of a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


__all__ = ["local_addresses", "resolve_interface", "url_host"]
