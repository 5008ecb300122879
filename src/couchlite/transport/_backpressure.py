"""Back-pressure and per-connection limits of :class:`~couchlite.transport.blip_connection.
BlipConnection`: when senders wait, when the reader pauses, when a stalled peer is dropped.

:class:`FlowControl` is a base class holding only these waits; the connection owns the state
they read (declared here for the type checker) and the tasks that make progress.
"""

from __future__ import annotations

import asyncio
from typing import Any

from couchlite._tuning import BLIP_SMALL_MESSAGE_BYTES
from couchlite.blip import BlipLimitExceeded, BlipProtocol, Message
from couchlite.blip.errors import CLOSE_POLICY_VIOLATION
from couchlite.transport._pending import CallbackReply
from couchlite.transport.channel import RequestTimeout


class BackPressure:
    """The waits of a connection's senders and of its reader (see the connection module)."""

    name: str
    protocol: BlipProtocol
    _stats: dict[str, Any]
    _pending: dict[int, asyncio.Future[Message] | CallbackReply]
    _progress: asyncio.Event
    _wake_writer: asyncio.Event
    _reply_freed: asyncio.Event
    _queued_bytes: int
    _max_pending_messages: int
    _max_pending_bytes: int
    _max_outstanding: int
    _outstanding_waiters: int
    _max_outbox: int
    _stalled_timeout: float

    def _check_open(self) -> None:
        raise NotImplementedError

    def _admissible(self, size: int) -> bool:
        pending = self.protocol.pending_messages
        if pending == 0:
            # Our byte count is an estimate (compressed frames are smaller than their input);
            # an empty out-box is the moment to correct its drift.
            self._queued_bytes = 0
            return True
        if pending >= self._max_pending_messages:
            return False
        if size <= BLIP_SMALL_MESSAGE_BYTES:
            return True
        return self._queued_bytes + size <= self._max_pending_bytes

    async def _wait_for_outstanding(self, deadline: float | None) -> None:
        """Wait until fewer than ``max_outstanding_requests`` requests await their replies."""
        self._stats["outstanding_waits"] += 1
        self._outstanding_waiters += 1
        try:
            async with asyncio.timeout_at(deadline):
                while len(self._pending) >= self._max_outstanding:
                    self._reply_freed.clear()
                    await self._reply_freed.wait()  # also set when the connection stops
                    self._check_open()
        except TimeoutError as exc:
            raise RequestTimeout(
                f"{self.name}: {self._max_outstanding} requests still await their replies"
            ) from exc
        finally:
            self._outstanding_waiters -= 1

    async def _wait_for_outbox(self) -> None:
        """Pause the reader while the out-box holds ``max_outbox_messages`` messages.

        Called before a request is dispatched: its reply would grow the out-box further. Only
        frames leaving can end the wait, so if every queued message waits for an ACK (which
        only reading could bring), or nothing leaves for ``stalled_peer_timeout``, the peer is
        not reading what it asked for and the connection is closed (1008).
        """
        protocol = self.protocol
        self._stats["reader_outbox_waits"] += 1
        while protocol.pending_messages >= self._max_outbox:
            if not protocol.sendable_messages:
                raise BlipLimitExceeded(
                    f"peer does not acknowledge our {protocol.pending_messages} queued messages",
                    limit="max_outbox_messages",
                    maximum=self._max_outbox,
                    close_code=CLOSE_POLICY_VIOLATION,
                )
            self._progress.clear()
            self._wake_writer.set()
            try:
                async with asyncio.timeout(self._stalled_timeout):
                    await self._progress.wait()
            except TimeoutError:
                raise BlipLimitExceeded(
                    f"peer read none of our {protocol.pending_messages} queued messages"
                    f" in {self._stalled_timeout:.0f} s",
                    limit="max_outbox_messages",
                    maximum=self._max_outbox,
                    close_code=CLOSE_POLICY_VIOLATION,
                ) from None

    def _has_room(self, size: int, urgent: bool) -> bool:
        # An urgent message is small by convention and must not queue behind bulk data.
        if urgent and self.protocol.pending_messages < self._max_pending_messages:
            return True
        return self._admissible(size)

    async def _wait_for_room(self, size: int, urgent: bool, deadline: float | None) -> None:
        """Wait until :meth:`_has_room`; the caller has checked :meth:`_check_open`."""
        if self._has_room(size, urgent):
            return
        self._stats["sender_waits"] += 1
        try:
            async with asyncio.timeout_at(deadline):
                while not self._admissible(size):
                    self._progress.clear()
                    await self._progress.wait()
                    self._check_open()
        except TimeoutError as exc:
            raise RequestTimeout(f"{self.name}: out-box still full (peer not reading)") from exc
