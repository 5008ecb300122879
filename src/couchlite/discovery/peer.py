"""``DiscoveredPeer`` and ``PeerEvent``: what a browser reports about an advertised listener."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import quote

from couchlite._tuning import DISCOVERY_MAX_ADDRESSES
from couchlite.discovery.txt import read_txt
from couchlite.errors import DiscoveryError
from couchlite.replicator.config import ReplicatorConfiguration, UrlEndpoint

#: the longest DNS label, which an instance name is
MAX_NAME_BYTES = 63


def _ordered_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    """Valid addresses, IPv4 first (reachable more often than IPv6 link-local ones), bounded."""
    valid: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if address.is_multicast or address.is_unspecified or address in valid:
            continue
        valid.append(address)
        if len(valid) >= DISCOVERY_MAX_ADDRESSES:
            break
    valid.sort(key=lambda a: a.version)
    return tuple(str(a) for a in valid)


@dataclass(frozen=True)
class DiscoveredPeer:
    """A listener found by :func:`couchlite.discovery.browse`, as its TXT record describes it.

    ``name``: the service instance name (unique on the network). ``addresses``: its IP
    addresses, IPv4 first. ``txt``: the record's entries as received (bounded, decoded); the
    other fields are read from it: ``database``, ``collections`` (``scope.collection``; and
    ``collections_complete`` is ``False`` when more are served than the record could list),
    ``tls``, ``fingerprint`` (lowercase hex SHA-256 of the certificate, ``None`` without TLS or
    when not advertised), ``auth`` (``"none"``, ``"password"``, ``"cert"`` or ``"unknown"``),
    ``protocols`` (BLIP sub-protocols) and ``peer_id`` (stable across restarts; ``None`` if not
    advertised).
    """

    name: str
    addresses: tuple[str, ...]
    port: int
    txt: Mapping[str, str] = field(hash=False)
    database: str
    collections: tuple[str, ...]
    tls: bool
    fingerprint: str | None
    auth: str
    protocols: tuple[str, ...]
    peer_id: str | None
    collections_complete: bool = True

    @classmethod
    def from_record(
        cls, name: str, addresses: Sequence[str], port: int, txt: Mapping[str, str]
    ) -> DiscoveredPeer:
        """A peer from a resolved service; :class:`DiscoveryError` if it is not usable."""
        if not name or len(name.encode()) > MAX_NAME_BYTES or not name.isprintable():
            raise DiscoveryError(f"unusable service name {name[:80]!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise DiscoveryError(f"{name!r}: invalid port {port!r}")
        ordered = _ordered_addresses(addresses)
        if not ordered:
            raise DiscoveryError(f"{name!r}: no usable address")
        fields = read_txt(txt)
        return cls(
            name=name,
            addresses=ordered,
            port=port,
            txt=MappingProxyType(dict(txt)),
            database=fields.database,
            collections=fields.collections,
            tls=fields.tls,
            fingerprint=fields.fingerprint,
            auth=fields.auth,
            protocols=fields.protocols,
            peer_id=fields.peer_id,
            collections_complete=fields.collections_complete,
        )

    @property
    def url(self) -> str:
        """``ws[s]://<first address>:<port>/<database>`` (IPv6 in brackets)."""
        host = self.addresses[0]
        if ":" in host:
            host = f"[{host.replace('%', '%25')}]"
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://{host}:{self.port}/{quote(self.database, safe='')}"

    def endpoint(self) -> UrlEndpoint:
        """A :class:`UrlEndpoint` for the peer's database at its first address."""
        return UrlEndpoint(self.url)

    def replicator_configuration(
        self, *, trust_on_first_use: bool = True, **options: Any
    ) -> ReplicatorConfiguration:
        """A replicator configuration for this peer: the target is :meth:`endpoint`; with TLS,
        ``server_fingerprint`` is the advertised fingerprint and ``peer_id`` keys the pin that
        ``trust_on_first_use`` stores. ``options`` are the other arguments of
        :class:`ReplicatorConfiguration` (``authenticator``, ``continuous``...); add the
        collections afterwards."""
        config = ReplicatorConfiguration(self.endpoint(), **options)
        if self.tls:
            config.server_fingerprint = self.fingerprint
            config.trust_on_first_use = trust_on_first_use
            config.peer_id = self.peer_id
        return config


@dataclass(frozen=True)
class PeerEvent:
    """A change seen by a browser: a peer ``"added"``, ``"updated"`` (its record, addresses or
    port changed) or ``"removed"`` (unregistered, or its records expired)."""

    kind: Literal["added", "updated", "removed"]
    peer: DiscoveredPeer


__all__ = ["MAX_NAME_BYTES", "DiscoveredPeer", "PeerEvent"]
