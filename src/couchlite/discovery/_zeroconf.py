"""Where couchlite meets ``zeroconf``: the import check and the choice of interfaces.

``zeroconf`` is an optional dependency (``pip install 'couchlite[discovery]'``); importing this
module without it raises an ``ImportError`` that says so.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence

from couchlite.errors import ConfigurationError

#: The hint every "zeroconf is missing" error carries.
INSTALL_HINT = "pip install 'couchlite[discovery]'"

try:
    from zeroconf import InterfaceChoice, IPVersion
except ImportError as exc:
    raise ImportError(
        f"couchlite.discovery needs the zeroconf package: {INSTALL_HINT}", name=exc.name
    ) from exc

#: Comma-separated IP addresses to use when a caller names none (browsing with
#: ``interfaces=None``, a listener advertising without ``network_interface``): lets a whole
#: process, e.g. a test's subprocess, stay on loopback.
INTERFACES_ENV = "COUCHLITE_DISCOVERY_INTERFACES"

#: the DNS-SD service type of couchlite listeners
SERVICE_TYPE = "_couchlite._tcp.local."
#: the type Couchbase's iOS list-sync sample browses for
CBL_SAMPLE_SERVICE_TYPE = "_cblistservicesync._tcp.local."


def interface_list(interfaces: Sequence[str] | None) -> list[str] | None:
    """The addresses asked for, or from :data:`INTERFACES_ENV`; ``None``: every interface.

    Raises :class:`ConfigurationError` for anything that is not an IP address.
    """
    if interfaces is None:
        env = os.environ.get(INTERFACES_ENV, "").strip()
        if not env:
            return None
        interfaces = [item.strip() for item in env.split(",") if item.strip()]
    if isinstance(interfaces, str):
        raise ConfigurationError("interfaces must be a list of IP addresses, not a string")
    addresses: list[str] = []
    for item in interfaces:
        try:
            addresses.append(str(ipaddress.ip_address(str(item).strip().strip("[]"))))
        except ValueError as exc:
            raise ConfigurationError(f"interfaces: {item!r} is not an IP address") from exc
    if not addresses:
        raise ConfigurationError("interfaces is empty (None: every interface)")
    return addresses


def zeroconf_options(
    interfaces: Sequence[str] | None,
) -> tuple[InterfaceChoice | list[str], IPVersion]:
    """``interfaces`` and ``ip_version`` arguments for ``Zeroconf``."""
    addresses = interface_list(interfaces)
    if addresses is None:
        return InterfaceChoice.All, IPVersion.V4Only
    has_v4 = any(":" not in a for a in addresses)
    has_v6 = any(":" in a for a in addresses)
    version = (
        IPVersion.All if has_v4 and has_v6 else IPVersion.V6Only if has_v6 else IPVersion.V4Only
    )
    return list(addresses), version


__all__ = [
    "CBL_SAMPLE_SERVICE_TYPE",
    "INSTALL_HINT",
    "INTERFACES_ENV",
    "SERVICE_TYPE",
    "interface_list",
    "zeroconf_options",
]
