"""Finding couchlite listeners on the local network: DNS-SD over mDNS (``zeroconf``).

A listener started with ``UrlEndpointListenerConfiguration(advertise=True)`` registers a
``_couchlite._tcp`` service whose TXT record (:mod:`couchlite.discovery.txt`) describes it;
:func:`browse` / :func:`browse_async` report such listeners appearing, changing and leaving as
:class:`PeerEvent`\\ s, :func:`find_peer` waits for one by name, :func:`peers` lists those seen
in a few seconds. ``DiscoveredPeer.replicator_configuration()`` turns a peer into a replicator
configuration that pins its certificate (trust on first use).

Needs ``pip install 'couchlite[discovery]'``; without it, importing this package raises
``ImportError`` saying so. ``$COUCHLITE_DISCOVERY_INTERFACES`` (comma-separated IP addresses)
is the default for ``interfaces=None``, e.g. ``127.0.0.1`` to stay on loopback.
"""

from __future__ import annotations

from couchlite.discovery._zeroconf import (
    CBL_SAMPLE_SERVICE_TYPE,
    INSTALL_HINT,
    INTERFACES_ENV,
    SERVICE_TYPE,
)
from couchlite.discovery.browser import (
    AsyncPeerBrowser,
    PeerBrowser,
    browse,
    browse_async,
    find_peer,
    find_peer_async,
    peers,
)
from couchlite.discovery.peer import DiscoveredPeer, PeerEvent
from couchlite.errors import DiscoveryError

__all__ = [
    "CBL_SAMPLE_SERVICE_TYPE",
    "INSTALL_HINT",
    "INTERFACES_ENV",
    "SERVICE_TYPE",
    "AsyncPeerBrowser",
    "DiscoveredPeer",
    "DiscoveryError",
    "PeerBrowser",
    "PeerEvent",
    "browse",
    "browse_async",
    "find_peer",
    "find_peer_async",
    "peers",
]
