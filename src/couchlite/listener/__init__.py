"""listener: the passive peer (``UrlEndpointListener``), its configuration and authenticators."""

from __future__ import annotations

from couchlite.listener.config import (
    ListenerCertificateAuthenticator,
    ListenerPasswordAuthenticator,
    UrlEndpointListenerConfiguration,
)
from couchlite.listener.listener import AsyncUrlEndpointListener, ConnectionStatus
from couchlite.listener.sync import UrlEndpointListener

__all__ = [
    "AsyncUrlEndpointListener",
    "ConnectionStatus",
    "ListenerCertificateAuthenticator",
    "ListenerPasswordAuthenticator",
    "UrlEndpointListener",
    "UrlEndpointListenerConfiguration",
]
