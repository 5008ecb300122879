"""An in-memory pair of connected message channels, for tests and in-process replication.

Each end owns a bounded inbox that the other end fills. ``send`` waits while the peer's inbox is
full, which is the whole point: a peer that stops reading blocks its sender exactly as a full
TCP window would, so back-pressure bugs show up without sockets.

Closing one end closes both, with the same code and reason; the closing end stops receiving at
once, the other end first drains what was already delivered to it (as a WebSocket does).
"""

from __future__ import annotations

import asyncio
from collections import deque

from couchlite._tuning import LOOPBACK_QUEUE_MESSAGES
from couchlite.errors import InvalidArgumentError
from couchlite.transport.channel import (
    CLOSE_NORMAL,
    SUBPROTOCOL_CBMOBILE_3,
    ChannelClosed,
    truncate_close_reason,
)


class LoopbackChannel:
    """One end of :func:`loopback_pair`; implements :class:`MessageChannel`."""

    def __init__(self, subprotocol: str | None, max_queue: int, name: str) -> None:
        self._subprotocol = subprotocol
        self._max_queue = max_queue
        self._name = name
        self._inbox: deque[bytes] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._peer: LoopbackChannel | None = None
        self._close: tuple[int, str] | None = None
        self._closed_locally = False

    @property
    def subprotocol(self) -> str | None:
        return self._subprotocol

    @property
    def remote_address(self) -> str | None:
        return self._peer._name if self._peer is not None else None

    @property
    def close_code(self) -> int | None:
        return self._close[0] if self._close is not None else None

    @property
    def close_reason(self) -> str | None:
        return self._close[1] if self._close is not None else None

    @property
    def queued(self) -> int:
        """Messages waiting in this end's inbox (for tests and benchmarks)."""
        return len(self._inbox)

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in this end's inbox (for tests and benchmarks)."""
        return sum(len(m) for m in self._inbox)

    def _closed_error(self) -> ChannelClosed:
        assert self._close is not None
        return ChannelClosed(*self._close)

    def send_nowait(self, data: bytes) -> bool:
        peer = self._peer
        assert peer is not None
        if self._close is not None or len(peer._inbox) >= peer._max_queue:
            return False
        peer._inbox.append(bytes(data))
        peer._readable.set()
        return True

    async def send(self, data: bytes) -> None:
        peer = self._peer
        assert peer is not None
        while True:
            if self._close is not None:
                raise self._closed_error()
            if len(peer._inbox) < peer._max_queue:
                break
            self._writable.clear()
            await self._writable.wait()
        # bytes() is a no-op for bytes; it copies views so the receiver never sees later edits.
        peer._inbox.append(bytes(data))
        peer._readable.set()

    async def recv(self) -> bytes:
        while True:
            if self._inbox and not self._closed_locally:
                message = self._inbox.popleft()
                if self._peer is not None:
                    self._peer._writable.set()
                return message
            if self._close is not None:
                raise self._closed_error()
            self._readable.clear()
            await self._readable.wait()

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self._close is not None:
            return
        self._closed_locally = True
        self._inbox.clear()
        state = (code, truncate_close_reason(reason))
        for end in (self, self._peer):
            if end is not None and end._close is None:
                end._close = state
                end._readable.set()
                end._writable.set()

    def __repr__(self) -> str:
        return f"<LoopbackChannel {self._name} close={self._close}>"


def loopback_pair(
    subprotocol: str | None = SUBPROTOCOL_CBMOBILE_3,
    max_queue: int = LOOPBACK_QUEUE_MESSAGES,
) -> tuple[LoopbackChannel, LoopbackChannel]:
    """Two connected in-memory channels; each buffers at most ``max_queue`` messages."""
    if max_queue < 1:
        raise InvalidArgumentError("max_queue must be at least 1")
    a = LoopbackChannel(subprotocol, max_queue, "loopback-a")
    b = LoopbackChannel(subprotocol, max_queue, "loopback-b")
    a._peer, b._peer = b, a
    return a, b


__all__ = ["LoopbackChannel", "loopback_pair"]
