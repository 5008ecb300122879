"""The asyncio BLIP connection: a sans-I/O :class:`BlipProtocol` driven over a message channel.

Theory of operation
-------------------
Three kinds of tasks, all owned by the connection and cancelled when it closes (their code
is in :mod:`couchlite.transport._connection_tasks`):

* the **reader** feeds every channel message to ``protocol.receive_frame`` and dispatches the
  completed messages: responses resolve the futures of :meth:`BlipConnection.request`, requests
  go to a handler task. Receiving may queue ACKs and received ACKs may reopen a window, so the
  reader wakes the writer afterwards whenever the protocol has output.
* the **writer** drains ``protocol.next_frame()`` into ``channel.send()``; it sleeps when the
  protocol has nothing sendable (empty out-box, or every message waiting for an ACK). Most
  frames never reach it: whichever task queues a message (a requester, a handler replying,
  the reader queuing ACKs) writes the frames itself through the channel's synchronous
  ``send_nowait``, saving the writer's wake-up, for as long as the channel has room
  (``_send_now``). The first frame the channel refuses, and whatever follows, go to the
  writer, which awaits the channel's back-pressure. One frame is in transit at a time
  (``_sending``), so frames reach the channel in ``next_frame`` order.
* **handler tasks** run the handlers of incoming requests, at most ``max_concurrent_handlers``
  requests at a time. Requests that arrive together share one task while their handlers
  complete without waiting (a task per request cost more than a small handler); as soon as
  a handler suspends, the requests behind it go to another task, so handlers run
  concurrently. Only context variables set by a handler may leak to the next handler in the
  same task. A synchronous handler (:meth:`~BlipConnection.register_sync_handler`) runs in the
  reader with no task: it answers at once, later through a :class:`Deferred`, or via a
  coroutine run in a task of its own; it holds its slot until it answered. When all slots are
  busy the reader stops reading, which pushes back on the peer through the channel's (and
  TCP's) own flow control. Consequence: a handler that itself awaits a reply from the same
  peer holds its slot meanwhile, and if every slot is held that way the reply can never be
  read. Such handlers must stay fewer than ``max_concurrent_handlers`` (the replicator's
  in-flight limits, far below 100, already ensure it).

Back-pressure on the sending side: :meth:`request` and :meth:`send_no_reply` wait before queueing
while the protocol's out-box holds ``max_pending_messages`` messages or, for large messages,
``max_pending_bytes`` bytes not yet handed to the channel; :meth:`request` also waits while
``max_outstanding_requests`` of our requests await their replies. With the channel's bounded
buffer, memory stays bounded when the peer stops reading. Bodies are passed through as given
(bytes or memoryview): the connection never copies them.

Limits against a hostile peer (each a constant in ``couchlite._tuning``):

* one incoming message may not exceed ``max_message_size`` bytes after inflation, all partial
  incoming messages together ``max_buffered_bytes``, partial incoming requests at once
  ``max_incoming_messages`` (all enforced by :class:`BlipProtocol`, which this connection builds
  with ``max_message_size`` unless given a protocol); the excess closes the connection with 1009
  (sizes) or 1008 and :attr:`close_error` is a :class:`BlipLimitExceeded` naming the limit;
* replies we owe a peer that does not read them: before dispatching a request, the reader waits
  while the out-box holds ``max_outbox_messages`` messages, so the peer is throttled through TCP;
  if none of them can progress without an ACK from the peer, or no frame leaves for
  ``BLIP_STALLED_PEER_TIMEOUT_S``, the connection is closed with 1008 instead;
* no task per message: handler tasks are bounded by ``max_concurrent_handlers``, the request
  queue by the same slots, pending futures by ``max_outstanding_requests``.

Streamed replies: :meth:`request_streamed` sends a request whose reply body is never buffered:
each frame's body bytes go to the caller's ``write`` as they are decoded, capped at
``max_size`` (typically :attr:`max_attachment_size`, or less when the expected length is
known). It is meant for ``getAttachment``: ``write`` appends to a spool file.

Shutdown: the first fatal event wins and decides :attr:`close_error`. A fatal
:class:`BlipError` in what the peer sent closes the channel with the error's close code
(1002/1011); the peer closing the channel, or the network failing, ends the connection with
:class:`ChannelClosed`; a local :meth:`close` flushes the out-box (bounded) and closes with the
given code. Pending requests then fail with the close error (or :class:`ChannelClosed` after a
normal close).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections import deque
from types import TracebackType
from typing import Any

from couchlite._slots import Slots
from couchlite._tuning import (
    BLIP_CLOSE_FLUSH_TIMEOUT_S,
    BLIP_CLOSE_TASKS_TIMEOUT_S,
    BLIP_MAX_ATTACHMENT_SIZE,
    BLIP_MAX_CONCURRENT_HANDLERS,
    BLIP_MAX_MESSAGE_SIZE,
    BLIP_MAX_OUTBOX_MESSAGES,
    BLIP_MAX_OUTSTANDING_REQUESTS,
    BLIP_MAX_PENDING_BYTES,
    BLIP_MAX_PENDING_MESSAGES,
    BLIP_REQUEST_TIMEOUT_S,
    BLIP_STALLED_PEER_TIMEOUT_S,
)
from couchlite.blip import BlipProtocol, Message
from couchlite.errors import CouchliteError, InvalidArgumentError
from couchlite.transport._connection_tasks import ConnectionTasks
from couchlite.transport._deadlines import Deadlines
from couchlite.transport._pending import CallbackReply
from couchlite.transport.blip_types import (
    Body,
    BodyWriter,
    Deferred,
    Handler,
    Properties,
    Reply,
    ReplyCallback,
    StreamTarget,
    SyncHandler,
    error_reply,
)
from couchlite.transport.channel import (
    CLOSE_NORMAL,
    CLOSE_UNEXPECTED,
    ChannelClosed,
    ConnectionClosedError,
    MessageChannel,
    RequestTimeout,
    truncate_close_reason,
)

logger = logging.getLogger(__name__)

_connection_ids = itertools.count(1)


class BlipConnection(ConnectionTasks):
    """BLIP over a :class:`MessageChannel`: requests, replies, handlers, flow control.

    Use ``async with BlipConnection(channel) as conn:`` or :meth:`start` + :meth:`close`; a
    server-side handler may simply ``await conn.run()``.
    """

    def __init__(
        self,
        channel: MessageChannel,
        protocol: BlipProtocol | None = None,
        *,
        name: str | None = None,
        max_concurrent_handlers: int = BLIP_MAX_CONCURRENT_HANDLERS,
        max_pending_messages: int = BLIP_MAX_PENDING_MESSAGES,
        max_pending_bytes: int = BLIP_MAX_PENDING_BYTES,
        max_message_size: int | None = None,
        max_attachment_size: int = BLIP_MAX_ATTACHMENT_SIZE,
        max_outstanding_requests: int = BLIP_MAX_OUTSTANDING_REQUESTS,
        max_outbox_messages: int = BLIP_MAX_OUTBOX_MESSAGES,
        stalled_peer_timeout: float = BLIP_STALLED_PEER_TIMEOUT_S,
    ) -> None:
        limits = (
            max_concurrent_handlers,
            max_pending_messages,
            max_pending_bytes,
            max_attachment_size,
            max_outstanding_requests,
            max_outbox_messages,
        )
        if any(type(value) is not int or value < 1 for value in limits):
            raise InvalidArgumentError("connection limits must be positive ints")
        if not stalled_peer_timeout > 0:
            raise InvalidArgumentError("stalled_peer_timeout must be positive")
        if protocol is not None and max_message_size is not None:
            raise InvalidArgumentError("give max_message_size to the BlipProtocol passed in")
        self.channel = channel
        self.protocol = (
            protocol
            if protocol is not None
            else BlipProtocol(
                max_message_size=BLIP_MAX_MESSAGE_SIZE
                if max_message_size is None
                else max_message_size
            )
        )
        #: The cap callers should pass to :meth:`request_streamed` for a blob of unknown size.
        self.max_attachment_size = max_attachment_size
        self._max_outstanding = max_outstanding_requests
        self._max_outbox = max_outbox_messages
        self._stalled_timeout = stalled_peer_timeout
        # Set when a reply resolves while requesters wait for an outstanding slot, and on stop.
        self._reply_freed = asyncio.Event()
        self._outstanding_waiters = 0
        self.name = name or f"blip-{next(_connection_ids)}"
        self._handlers: dict[str, Handler] = {}
        self._sync_handlers: dict[str, SyncHandler] = {}
        self._max_pending_messages = max_pending_messages
        self._max_pending_bytes = max_pending_bytes
        self._max_handlers = max_concurrent_handlers
        self._handler_slots = Slots(max_concurrent_handlers)
        #: our requests' timeouts
        self._deadlines = Deadlines(self._expire)
        # Requests waiting for a handler task, and whether a task that will take them is
        # already created but not yet running (see _handle_requests).
        self._requests: deque[Message] = deque()
        self._handler_pending = False
        #: our requests awaiting replies: the future :meth:`request` awaits, or the stand-in
        #: of a :meth:`request_later` callback (it has the same methods)
        self._pending: dict[int, asyncio.Future[Message] | CallbackReply] = {}
        self._handler_tasks: set[asyncio.Task[Any]] = set()
        # One name for every handler task: formatting one per request costs more than it helps.
        self._handler_name = f"{self.name}-handler"
        self._supervisor: asyncio.Task[None] | None = None
        self._wake_writer = asyncio.Event()
        # True while a frame's send is in progress (only ever awaited by the writer task).
        self._sending = False
        # A frame _send_now took from the protocol but the channel refused (its buffer is
        # full): the writer sends it, before any other.
        self._handoff: bytes | None = None
        self._progress = asyncio.Event()  # set after frames are sent: capacity may be back
        self._stop = asyncio.Event()
        self._closed = asyncio.Event()
        self._closing = False
        self._stop_code = CLOSE_NORMAL
        self._stop_reason = ""
        self._close_error: CouchliteError | None = None
        self._end: ChannelClosed | None = None
        # Estimate of body bytes not yet handed to the channel; see _admissible().
        self._queued_bytes = 0
        self._stats = {
            "requests_sent": 0,
            "no_reply_sent": 0,
            "responses_received": 0,
            "errors_received": 0,
            "requests_received": 0,
            "handler_errors": 0,
            "frames_sent": 0,
            "frames_received": 0,
            "bytes_sent": 0,
            "bytes_received": 0,
            "sender_waits": 0,
            "outstanding_waits": 0,
            "reader_outbox_waits": 0,
            "peak_queued_bytes": 0,
            "peak_pending_messages": 0,
        }

    # --- public API -----------------------------------------------------------------------

    def register_handler(self, profile: str, handler: Handler) -> None:
        """Answer requests whose ``Profile`` is ``profile`` with ``handler``."""
        self._sync_handlers.pop(profile, None)
        self._handlers[profile] = handler

    def register_sync_handler(self, profile: str, handler: SyncHandler) -> None:
        """Answer requests whose ``Profile`` is ``profile`` with a synchronous ``handler``,
        called from the reader: it returns the reply (or raises), a :class:`Deferred` it
        settles later, or a coroutine when it must wait (run in a handler task). It holds its
        handler slot until it answered, as an ``async`` handler does."""
        self._handlers.pop(profile, None)
        self._sync_handlers[profile] = handler

    def unregister_handler(self, profile: str) -> None:
        self._handlers.pop(profile, None)
        self._sync_handlers.pop(profile, None)

    @property
    def is_open(self) -> bool:
        return self._supervisor is not None and not self._closing and not self._stop.is_set()

    @property
    def is_closed(self) -> bool:
        return self._closed.is_set()

    @property
    def close_error(self) -> CouchliteError | None:
        """Why the connection ended, if not by a normal (1000) close; ``None`` otherwise."""
        return self._close_error

    @property
    def close_code(self) -> int | None:
        return self._end.code if self._end is not None else None

    @property
    def close_reason(self) -> str | None:
        return self._end.reason if self._end is not None else None

    def start(self) -> None:
        """Start the reader and writer. Idempotent; needs a running event loop."""
        if self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"{self.name}-supervisor"
            )

    async def run(self) -> None:
        """Start, then wait until the connection ends; raises :attr:`close_error` if any."""
        self.start()
        await self._closed.wait()
        if self._close_error is not None:
            raise self._close_error

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait (bounded by ``timeout``) for the end; raises :attr:`close_error` if any."""
        async with asyncio.timeout(timeout):
            await self._closed.wait()
        if self._close_error is not None:
            raise self._close_error

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Flush what is queued (bounded), close the channel with ``code``, wait for the end."""
        if self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"{self.name}-supervisor"
            )
        if not self._closing and not self._stop.is_set():
            self._closing = True
            if code == CLOSE_NORMAL:
                await self._flush(BLIP_CLOSE_FLUSH_TIMEOUT_S)
            self._request_stop(code, reason)
        await asyncio.shield(self._closed.wait())

    async def __aenter__(self) -> BlipConnection:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.close()
        else:
            await self.close(CLOSE_UNEXPECTED, "unexpected exception")

    async def request(
        self,
        properties: Properties,
        body: Body = b"",
        *,
        urgent: bool = False,
        compressed: bool = False,
        timeout: float | None = BLIP_REQUEST_TIMEOUT_S,
    ) -> Message:
        """Send a request and return its reply.

        Raises :class:`BlipErrorReply` if the peer answers ERR, :class:`RequestTimeout` after
        ``timeout`` seconds (``None``: wait as long as the connection lives), or the
        connection's close error if the connection ends first.
        """
        return await self._round_trip(properties, body, urgent, compressed, timeout, None, 0)

    async def request_streamed(
        self,
        properties: Properties,
        body: Body = b"",
        *,
        write: BodyWriter,
        max_size: int,
        urgent: bool = False,
        compressed: bool = False,
        timeout: float | None = BLIP_REQUEST_TIMEOUT_S,
    ) -> Message:
        """Send a request whose reply body is streamed to ``write`` instead of buffered.

        ``write(view)`` is called from the connection's reader with each piece of the reply's
        body as it is decoded, in order; ``view`` is valid only during the call (write it out or
        copy it) and the call must not block the event loop for long (a buffered file write is
        fine). The returned :class:`Message` has the reply's properties and an empty body. A
        reply with more than ``max_size`` body bytes closes the connection with 1009 and raises
        :class:`BlipLimitExceeded` (``limit == "max_size"``); ``write`` never receives more than
        ``max_size`` bytes in total. An ``ERR`` reply raises :class:`BlipErrorReply` as
        :meth:`request` does, without calling ``write``. If ``write`` raises, that exception
        is raised here at once and the rest of the reply is discarded. On a timeout, a
        cancellation or the connection's end, ``write`` may have received part of the body:
        the caller discards what it wrote.
        """
        if type(max_size) is not int or max_size < 0:
            raise InvalidArgumentError(f"max_size must be an int >= 0, not {max_size!r}")
        return await self._round_trip(
            properties, body, urgent, compressed, timeout, write, max_size
        )

    async def _round_trip(
        self,
        properties: Properties,
        body: Body,
        urgent: bool,
        compressed: bool,
        timeout: float | None,
        write: BodyWriter | None,
        max_size: int,
    ) -> Message:
        """Send a request and await its reply: buffered, or streamed to ``write`` (at most
        ``max_size`` body bytes) when ``write`` is given."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        self._check_open()
        if len(self._pending) >= self._max_outstanding:
            await self._wait_for_outstanding(deadline)
        if not self._has_room(len(body), urgent):
            await self._wait_for_room(len(body), urgent, deadline)
        protocol = self.protocol
        number = protocol.send_request(properties, body, urgent=urgent, compressed=compressed)
        future: asyncio.Future[Message] = loop.create_future()
        target = None
        if write is not None:
            target = StreamTarget(write, future)
            # Registered before any frame can be read: the reader runs only when this task
            # yields.
            protocol.stream_response(number, max_size, target)
        self._pending[number] = future
        self._queued(len(body))
        self._stats["requests_sent"] += 1
        # Not asyncio.timeout(), nor a timer each: this is the hot path of every round trip
        if timeout is not None:
            self._deadlines.add(number, future, timeout)
        try:
            reply = await future
        except BaseException:
            protocol.abandon_response(number)
            raise
        finally:
            if target is not None:
                target.write = None  # whatever still arrives for this reply is dropped
            self._pending.pop(number, None)
            if timeout is not None:
                self._deadlines.discard(number, timeout)
            if self._outstanding_waiters:
                self._reply_freed.set()
        if reply.is_error:
            raise error_reply(reply)
        return reply

    def request_later(
        self,
        properties: Properties,
        body: Body,
        on_reply: ReplyCallback,
        *,
        urgent: bool = False,
        compressed: bool = False,
        timeout: float | None = BLIP_REQUEST_TIMEOUT_S,
    ) -> bool:
        """Send a request now, if that needs no wait, and hand its outcome to ``on_reply``.

        ``on_reply(reply, None)`` gets the reply, ``on_reply(None, error)`` what
        :meth:`request` would raise (:class:`BlipErrorReply` for ``ERR``, a timeout, the
        connection's end); it is called once, from the connection's reader or its end, and
        must not block. Nothing is sent and ``False`` returned when the request would have to
        wait first (too many outstanding requests, or a full out-box): use :meth:`request`."""
        self._check_open()
        if len(self._pending) >= self._max_outstanding or not self._has_room(len(body), urgent):
            return False
        number = self.protocol.send_request(properties, body, urgent=urgent, compressed=compressed)
        pending = self._pending[number] = CallbackReply(number, on_reply, timeout, self._forget)
        self._queued(len(body))
        self._stats["requests_sent"] += 1
        if timeout is not None:
            self._deadlines.add(number, pending, timeout)
        return True

    def _forget(self, pending: CallbackReply) -> None:
        """A :meth:`request_later` request is settled: it no longer counts as outstanding."""
        self._pending.pop(pending.number, None)
        if pending.timeout is not None:
            self._deadlines.discard(pending.number, pending.timeout)
        if self._outstanding_waiters:
            self._reply_freed.set()

    async def send_no_reply(
        self,
        properties: Properties,
        body: Body = b"",
        *,
        urgent: bool = False,
        compressed: bool = False,
        timeout: float | None = BLIP_REQUEST_TIMEOUT_S,
    ) -> None:
        """Queue a request that gets no reply; waits (up to ``timeout``) while the out-box is
        full."""
        self._check_open()
        if not self._has_room(len(body), urgent):
            # Only now is the deadline worth a clock read: usually there is room.
            deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
            await self._wait_for_room(len(body), urgent, deadline)
        self.protocol.send_request(
            properties, body, urgent=urgent, compressed=compressed, no_reply=True
        )
        self._queued(len(body))
        self._stats["no_reply_sent"] += 1

    def statistics(self) -> dict[str, Any]:
        """A snapshot of counters: this connection's and the protocol's (under ``"blip"``)."""
        stats: dict[str, Any] = dict(self._stats)
        stats.update(
            pending_requests=len(self._pending),
            buffered_bytes=self.protocol.buffered_bytes,
            running_handlers=self._max_handlers - self._handler_slots.free,
            pending_messages=self.protocol.pending_messages,
            queued_bytes=self._queued_bytes,
        )
        stats["blip"] = dataclasses.asdict(self.protocol.statistics())
        return stats

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "closing" if self._closing else "open"
        return f"<BlipConnection {self.name} {state} peer={self.channel.remote_address}>"

    # --- back-pressure ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing or self._stop.is_set() or self._closed.is_set():
            raise self._closed_error_for_callers()
        if self._supervisor is None:
            self.start()

    def _closed_error_for_callers(self) -> CouchliteError:
        if self._close_error is not None:
            return self._close_error
        code = self._end.code if self._end is not None else self._stop_code
        reason = self._end.reason if self._end is not None else self._stop_reason
        return ConnectionClosedError(code, reason, message=f"{self.name}: connection closed")

    def _expire(
        self, future: asyncio.Future[Message] | CallbackReply, timeout: float | None
    ) -> None:
        if not future.done():
            future.set_exception(RequestTimeout(f"{self.name}: no reply within {timeout} s"))

    async def _flush(self, timeout: float) -> None:
        """Let the writer send what is queued; give up after ``timeout`` (e.g. ACK-stalled)."""
        self._wake_writer.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                # The writer sets _progress after each frame and whenever it finds nothing
                # sendable (e.g. waiting for an ACK), so this loop only turns when things move.
                protocol = self.protocol
                # _sending: the last frame may still be on its way to the channel.
                while (
                    protocol.has_output or protocol.pending_messages or self._sending
                ) and not self._stop.is_set():
                    self._progress.clear()
                    await self._progress.wait()

    # --- tasks ------------------------------------------------------------------------------

    def _request_stop(self, code: int, reason: str, error: CouchliteError | None = None) -> None:
        """Record the first reason to stop and wake the supervisor; later reasons are ignored."""
        if self._stop.is_set():
            return
        self._stop_code = code
        self._stop_reason = truncate_close_reason(reason)
        self._close_error = error
        self._stop.set()
        self._progress.set()  # wake senders so they see the closed state
        self._reply_freed.set()

    async def _supervise(self) -> None:
        reader = asyncio.create_task(self._reader(), name=f"{self.name}-reader")
        writer = asyncio.create_task(self._writer(), name=f"{self.name}-writer")
        try:
            await self._stop.wait()
        finally:
            self._closing = True
            tasks = [reader, writer, *self._handler_tasks]
            for task in tasks:
                task.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BLIP_CLOSE_TASKS_TIMEOUT_S):
                    await asyncio.gather(*tasks, return_exceptions=True)
            self._handler_tasks.clear()
            self._handoff = None
            await self._close_channel()
            self._fail_pending()
            self._closed.set()
            self._progress.set()
            if self._close_error is not None:
                logger.info("%s closed: %s", self.name, self._close_error)
            else:
                logger.debug("%s closed (%s)", self.name, self._end)

    async def _close_channel(self) -> None:
        if self._end is None:
            self._end = ChannelClosed(self._stop_code, self._stop_reason)
        # Even after the peer closed, close() completes the handshake and frees the socket.
        try:
            async with asyncio.timeout(BLIP_CLOSE_TASKS_TIMEOUT_S):
                await self.channel.close(self._stop_code, self._stop_reason)
        except (TimeoutError, CouchliteError) as exc:
            logger.debug("%s: closing the channel failed: %s", self.name, exc)

    def _fail_pending(self) -> None:
        error = self._closed_error_for_callers()
        for future in list(self._pending.values()):  # a callback's stand-in leaves the dict
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        self._deadlines.cancel()


__all__ = [
    "BlipConnection",
    "BodyWriter",
    "ConnectionClosedError",
    "Deferred",
    "Handler",
    "Reply",
    "ReplyCallback",
    "RequestTimeout",
    "SyncHandler",
]
