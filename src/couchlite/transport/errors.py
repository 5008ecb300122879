"""The errors of the transport: a closed channel, a request without reply, a refused upgrade.

Exported from :mod:`couchlite` and :mod:`couchlite.errors` too: a replicator's
``status.error`` may be any of them. Whether each is transient comes from the one
classification table, :data:`couchlite.transport.failures.RULES`.
"""

from __future__ import annotations

from couchlite.errors import ErrorDomain, NetworkCode, NetworkError
from couchlite.transport.failures import is_transient


def is_transient_close(code: int) -> bool:
    """Whether a connection that ended with this WebSocket close code may succeed if retried."""
    return is_transient(ErrorDomain.WEBSOCKET, code)


class ChannelClosed(NetworkError):
    """The channel is closed: ``code``/``reason`` are the WebSocket close code and reason.

    Raised by ``recv``/``send`` once the channel has closed, whoever closed it. A normal close
    (1000) is not an error for whoever asked for it; upper layers decide what it means to them.
    """

    default_domain = ErrorDomain.WEBSOCKET
    default_code = 1006  # abnormal closure

    def __init__(self, code: int, reason: str = "", *, message: str | None = None) -> None:
        text = message or (f"connection closed ({code}{': ' + reason if reason else ''})")
        super().__init__(text, code=code, transient=is_transient_close(code))
        self.reason = reason

    @property
    def is_normal(self) -> bool:
        """True for a normal close (1000): the conversation ended on purpose."""
        return self.code == 1000


class ConnectionClosedError(ChannelClosed):
    """The connection is closed (or closing): no more requests can be sent."""


class RequestTimeout(NetworkError):
    """No reply arrived within the request's timeout (Network/Timeout, transient)."""

    default_code = NetworkCode.TIMEOUT


class HandshakeRefused(NetworkError):
    """The server answered the WebSocket upgrade with an HTTP error status (``code``)."""

    default_domain = ErrorDomain.WEBSOCKET
    default_code = 400
    default_transient = False

    def __init__(self, status: int, detail: str = "") -> None:
        text = f"WebSocket upgrade refused with HTTP {status}"
        super().__init__(
            f"{text}: {detail}" if detail else text,
            code=status,
            transient=is_transient_close(status),
        )
        self.status = status


class RedirectRefused(HandshakeRefused):
    """The server redirected the upgrade somewhere we will not follow (``code``: its status).

    A redirect to another origin (scheme, host or port) without
    ``allow_cross_origin_redirects``, from ``wss://`` to ``ws://``, or one too many.
    ``location`` is where it pointed.
    """

    def __init__(self, status: int, location: str, why: str) -> None:
        super().__init__(status, f"redirect to {location} refused: {why}")
        self.location = location


__all__ = [
    "ChannelClosed",
    "ConnectionClosedError",
    "HandshakeRefused",
    "RedirectRefused",
    "RequestTimeout",
    "is_transient_close",
]
