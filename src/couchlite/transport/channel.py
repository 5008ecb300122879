"""The message channel: the one interface between BLIP and the network.

A channel carries whole binary WebSocket messages (one BLIP frame each) in both directions.
Everything above it (``BlipConnection``, the replicator) sees only this interface, so the same
code runs over real WebSockets (``transport.websocket``) and over the in-memory pair used by
tests (``transport.loopback``).

Contract:

* ``send_nowait`` is the synchronous write: it takes the message and returns True while the
  transport's bounded buffer has room, and returns False (taking nothing) when it is full or
  the channel is no longer open. The caller then awaits ``send`` for that message, which
  applies back-pressure: it returns once the transport has room for more, so a peer that
  stops reading eventually blocks the sender instead of growing a buffer. Messages reach the
  peer in the order they were taken, whichever of the two took them. A channel may hold the
  messages ``send_nowait`` takes until the end of the current turn of the event loop, to
  write them together (the WebSocket channel does: one system call for a burst of frames).
* ``recv`` returns the next binary message, or raises :class:`ChannelClosed` once the channel is
  closed (by either side, or by a network failure). Messages the peer sent before closing are
  delivered first.
* ``close`` is idempotent; afterwards ``close_code``/``close_reason`` say how the channel ended
  (the code the peer sent when the peer closed first).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from couchlite.errors import ErrorDomain
from couchlite.transport.errors import (
    ChannelClosed,
    ConnectionClosedError,
    RequestTimeout,
    is_transient_close,
)
from couchlite.transport.failures import transient_codes

#: The sub-protocol of Couchbase Lite 3.x with revision trees (notes §3.4), our first choice.
SUBPROTOCOL_CBMOBILE_3 = "BLIP_3+CBMobile_3"
#: Couchbase Lite 2.x's sub-protocol; CBL 3.0-3.2 offer it second, and its messages are ours.
SUBPROTOCOL_CBMOBILE_2 = "BLIP_3+CBMobile_2"
#: What we offer and accept, in order of preference (what CBL 3.0-3.2 offer, notes §3.4).
DEFAULT_SUBPROTOCOLS: tuple[str, ...] = (SUBPROTOCOL_CBMOBILE_3, SUBPROTOCOL_CBMOBILE_2)

# WebSocket close codes (RFC 6455 §7.4.1, plus the application codes LiteCore uses, notes §3.6).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_ABNORMAL = 1006
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_UNEXPECTED = 1011
CLOSE_APP_TRANSIENT = 4001
CLOSE_APP_PERMANENT = 4002

#: Close codes (and HTTP statuses, which share the WebSocket domain) after which retrying may
#: succeed: LiteCore's ``mayBeTransient`` list, plus 1001 because LiteCore reports a peer that
#: went away (or closed while we still wanted to talk) as 1001 and retries it (notes §3.6).
#: Derived from the one classification table, :data:`couchlite.transport.failures.RULES`.
TRANSIENT_WEBSOCKET_CODES = transient_codes(ErrorDomain.WEBSOCKET)

#: A close frame's reason must fit in 123 bytes of UTF-8 (RFC 6455 §5.5: 125-byte control
#: payload minus the 2-byte code).
MAX_CLOSE_REASON_BYTES = 123


def truncate_close_reason(reason: str) -> str:
    """Cut ``reason`` to what a close frame can carry without splitting a UTF-8 sequence."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return encoded[:MAX_CLOSE_REASON_BYTES].decode("utf-8", errors="ignore")


@runtime_checkable
class MessageChannel(Protocol):
    """A bidirectional channel of binary messages (see the module docstring for the contract)."""

    @property
    def subprotocol(self) -> str | None:
        """The negotiated WebSocket sub-protocol (e.g. ``BLIP_3+CBMobile_3``)."""
        ...

    @property
    def remote_address(self) -> str | None:
        """The peer, for logs (``host:port`` for sockets); ``None`` when unknown."""
        ...

    @property
    def close_code(self) -> int | None:
        """The close code once the channel is closed, else ``None``."""
        ...

    @property
    def close_reason(self) -> str | None:
        """The close reason once the channel is closed, else ``None``."""
        ...

    def send_nowait(self, data: bytes) -> bool:
        """Take one binary message if the transport has room now; False: await :meth:`send`."""
        ...

    async def send(self, data: bytes) -> None:
        """Send one binary message; waits while the transport's buffer is full."""
        ...

    async def recv(self) -> bytes:
        """Receive the next binary message; raises :class:`ChannelClosed` when closed."""
        ...

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the channel (idempotent); waits a bounded time for the closing handshake."""
        ...


__all__ = [
    "CLOSE_ABNORMAL",
    "CLOSE_APP_PERMANENT",
    "CLOSE_APP_TRANSIENT",
    "CLOSE_GOING_AWAY",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TOO_BIG",
    "CLOSE_UNEXPECTED",
    "CLOSE_UNSUPPORTED_DATA",
    "DEFAULT_SUBPROTOCOLS",
    "SUBPROTOCOL_CBMOBILE_2",
    "SUBPROTOCOL_CBMOBILE_3",
    "ChannelClosed",
    "ConnectionClosedError",
    "MessageChannel",
    "RequestTimeout",
    "is_transient_close",
    "truncate_close_reason",
]
