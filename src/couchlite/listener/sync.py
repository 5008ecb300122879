"""``UrlEndpointListener``: the synchronous façade of :class:`AsyncUrlEndpointListener`.

The work runs on the library's event-loop thread (``couchlite._runtime``); each call waits,
bounded, for the loop to do it.
"""

from __future__ import annotations

from couchlite._lifecycle import StartsOnEnter
from couchlite._runtime import loop_thread
from couchlite._tuning import LISTENER_SYNC_START_TIMEOUT_S, LISTENER_SYNC_STOP_TIMEOUT_S
from couchlite.listener.config import UrlEndpointListenerConfiguration
from couchlite.listener.listener import AsyncUrlEndpointListener, ConnectionStatus
from couchlite.tls.identity import TLSIdentity


class UrlEndpointListener(StartsOnEnter):
    """The passive peer, synchronous: ``start()`` returns once listening, ``stop()`` closes
    everything; ``with UrlEndpointListener(config) as listener:`` does both. The work runs on
    the library's event-loop thread. Closing the database stops the listener first."""

    def __init__(self, config: UrlEndpointListenerConfiguration) -> None:
        self._impl = AsyncUrlEndpointListener(config)

    @property
    def config(self) -> UrlEndpointListenerConfiguration:
        """A copy of the configuration in use."""
        return self._impl.config

    @property
    def port(self) -> int | None:
        """The TCP port listened on; ``None`` when not listening."""
        return self._impl.port

    @property
    def urls(self) -> list[str]:
        """``ws[s]://<address>:<port>/<dbname>``, one per usable address; [] when stopped."""
        return self._impl.urls

    @property
    def service_name(self) -> str | None:
        """The DNS-SD instance name registered (``advertise``); ``None`` when not advertising."""
        return self._impl.service_name

    @property
    def tls_identity(self) -> TLSIdentity | None:
        """The identity presented (``None`` with TLS disabled; the anonymous one once
        started when none was configured)."""
        return self._impl.tls_identity

    @property
    def status(self) -> ConnectionStatus:
        """The connections now open and how many of them are replicating; (0, 0) when
        stopped."""
        return self._impl.status

    @property
    def is_listening(self) -> bool:
        """``True`` from a successful ``start()`` until ``stop()`` (or its database's close)."""
        return self._impl.is_listening

    def start(self) -> None:
        """Listen; returns once listening, raises on failure (see the async ``start``)."""
        loop_thread().run(self._impl.start(), timeout=LISTENER_SYNC_START_TIMEOUT_S)

    def stop(self) -> None:
        """Close every connection (1001) and stop listening; returns when done."""
        loop_thread().run(self._impl.stop(), timeout=LISTENER_SYNC_STOP_TIMEOUT_S)

    def _stop_for_database_close(self) -> None:
        # The running object is the one registered with the database; this is for callers
        # that hold the façade.
        self._impl._stop_for_database_close()

    def __repr__(self) -> str:
        return repr(self._impl).replace("AsyncUrlEndpointListener", "UrlEndpointListener", 1)


__all__ = ["UrlEndpointListener"]
