"""A started listener's DNS-SD advertisement (``advertise=True``): what it says, and where.

The TXT record (:mod:`couchlite.discovery.txt`) is built from the listener's settings and its
identity: database, collections, TLS and the certificate's SHA-256, what authentication is
required, the sub-protocols accepted, and the peer ID derived from the database's UUID. It is
announced on the listener's own address when it has one (so a listener on 127.0.0.1 is
advertised on loopback alone), else on every interface (or those of
``$COUCHLITE_DISCOVERY_INTERFACES``). zeroconf is imported only here, at start, so that a
listener without ``advertise`` never needs it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.serialization import Encoding

from couchlite.errors import ConfigurationError
from couchlite.listener.config import (
    ListenerCertificateAuthenticator,
    ListenerPasswordAuthenticator,
    ListenerSettings,
)
from couchlite.tls.fingerprint import certificate_fingerprint
from couchlite.tls.identity import TLSIdentity
from couchlite.transport.channel import DEFAULT_SUBPROTOCOLS

if TYPE_CHECKING:
    from couchlite.discovery.advertiser import Advertiser

_HINT = "pip install 'couchlite[discovery]'"


def _auth_kind(settings: ListenerSettings) -> str:
    if isinstance(settings.authenticator, ListenerPasswordAuthenticator):
        return "password"
    if isinstance(settings.authenticator, ListenerCertificateAuthenticator):
        return "cert"
    return "none"


def _interfaces(settings: ListenerSettings) -> list[str] | None:
    host = settings.bind_host
    if not host or ipaddress.ip_address(host).is_unspecified:
        return None
    return [host]


def check_available() -> None:
    """:class:`ConfigurationError` (with the install hint) when zeroconf is not installed."""
    try:
        import couchlite.discovery._zeroconf  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(f"advertise=True needs the zeroconf package: {_HINT}") from exc


async def start_advertising(
    settings: ListenerSettings,
    port: int,
    hosts: Sequence[str],
    identity: TLSIdentity | None,
) -> Advertiser:
    """Register the listener's services; returns the running advertiser.

    :class:`ConfigurationError` without zeroconf; :class:`DiscoveryError` when registering
    fails.
    """
    check_available()
    from couchlite.discovery._zeroconf import interface_list
    from couchlite.discovery.advertiser import Advertiser, default_service_name
    from couchlite.discovery.txt import build_txt, peer_id_for

    database = settings.database
    peer_id = peer_id_for(database.uuid)
    fingerprint = None
    if identity is not None:
        fingerprint = certificate_fingerprint(identity.certificates[0].public_bytes(Encoding.DER))
    txt = build_txt(
        peer_id=peer_id,
        database=database.name,
        collections=[c.full_name for c in settings.collections],
        tls=not settings.disable_tls,
        fingerprint=fingerprint,
        auth=_auth_kind(settings),
        protocols=DEFAULT_SUBPROTOCOLS,
    )
    interfaces = _interfaces(settings)
    # With no address of its own, the listener is announced where zeroconf announces it.
    addresses = interfaces or interface_list(None) or list(hosts)
    advertiser = Advertiser(
        name=settings.service_name or default_service_name(database.name),
        port=port,
        addresses=addresses,
        txt=txt,
        peer_id=peer_id,
        interfaces=interfaces,
        cbl_sample=settings.advertise_cbl_sample,
    )
    await advertiser.start()
    return advertiser


__all__ = ["check_available", "start_advertising"]
