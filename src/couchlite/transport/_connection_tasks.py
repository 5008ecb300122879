"""The tasks of a :class:`~couchlite.transport.blip_connection.BlipConnection`: the reader, the
writer (with the synchronous sends that spare it most wake-ups) and the handler tasks.

:class:`ConnectionTasks` is a base class holding only these task bodies; the connection owns
their state (declared here for the type checker), starts them and stops them. The theory of
operation is in the connection module's docstring.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

from couchlite._slots import Slots
from couchlite.blip import BlipError, BlipErrorReply, Message, MessageType
from couchlite.errors import CouchliteError, DatabaseClosedError
from couchlite.transport._backpressure import BackPressure
from couchlite.transport.blip_types import Deferred, Handler, Reply, SyncHandler
from couchlite.transport.boundary import unexpected
from couchlite.transport.channel import CLOSE_UNEXPECTED, ChannelClosed, MessageChannel

# The connection's logger: these records belong to it, wherever its code lives.
logger = logging.getLogger("couchlite.transport.blip_connection")


class ConnectionTasks(BackPressure):
    """The reader, writer and handler tasks of a connection (see the connection module)."""

    channel: MessageChannel
    _handlers: dict[str, Handler]
    _sync_handlers: dict[str, SyncHandler]
    _handler_slots: Slots
    _requests: deque[Message]
    _handler_pending: bool
    _handler_tasks: set[asyncio.Task[Any]]
    _handler_name: str
    _sending: bool
    _handoff: bytes | None
    _stop: asyncio.Event
    _end: ChannelClosed | None

    def _request_stop(self, code: int, reason: str, error: CouchliteError | None = None) -> None:
        raise NotImplementedError

    def _queued(self, size: int) -> None:
        stats = self._stats
        queued = self._queued_bytes = self._queued_bytes + size
        if queued > stats["peak_queued_bytes"]:
            stats["peak_queued_bytes"] = queued
        pending = self.protocol.pending_messages
        if pending > stats["peak_pending_messages"]:
            stats["peak_pending_messages"] = pending
        self._send_now()

    async def _reader(self) -> None:
        protocol, recv, stats = self.protocol, self.channel.recv, self._stats
        try:
            while True:
                data = await recv()
                stats["frames_received"] += 1
                stats["bytes_received"] += len(data)
                messages = protocol.receive_frame(data)
                if protocol.has_output:
                    # ACKs to send, or an ACK reopened a window.
                    self._send_now()
                for message in messages:
                    if message.type is MessageType.REQUEST:
                        if protocol.pending_messages >= self._max_outbox:
                            await self._wait_for_outbox()
                        # taken last, with nothing awaited before the handler starts: a
                        # reader cancelled while it waits holds no slot
                        if not self._handler_slots.take():
                            await self._handler_slots.acquire()
                        sync = self._sync_handlers.get(message.profile or "")
                        if sync is None:
                            self._start_handler(message)
                        else:
                            self._run_sync_handler(sync, message)
                    else:
                        self._resolve(message)
        except ChannelClosed as exc:
            self._end = exc
            error = None if exc.is_normal else exc
            self._request_stop(exc.code, exc.reason, error)
        except BlipError as exc:
            logger.warning(
                "%s: fatal BLIP error from %s: %s", self.name, self.channel.remote_address, exc
            )
            self._request_stop(exc.close_code, str(exc), exc)
        except Exception as exc:
            logger.exception("%s: reader failed", self.name)
            self._request_stop(CLOSE_UNEXPECTED, "unexpected exception", unexpected(exc, self.name))

    def _send_now(self) -> None:
        """Send queued frames from the calling task, as long as the channel takes them at once.

        Waking the writer task costs an event-loop turn per wake-up, a good part of a round
        trip's latency. So whoever queues something writes it right away through the channel's
        synchronous ``send_nowait``, frame after frame, while no send is in progress and the
        channel has room; the caller never awaits here, so it cannot be cancelled half-way
        through a send. The first frame the channel refuses (its buffer is full) is handed to
        the writer task, which awaits ``channel.send`` for it; the channel's bounded buffer
        also bounds the work a caller does here.
        """
        if self._sending or self._stop.is_set():
            self._wake_writer.set()
            return
        protocol, send_nowait = self.protocol, self.channel.send_nowait
        try:
            while True:
                frame = protocol.next_frame()
                if frame is None:
                    self._progress.set()
                    return
                if not send_nowait(frame):
                    # Back-pressure: one frame in transit at a time, so order is kept.
                    self._sending = True
                    self._handoff = frame
                    break
                self._sent(frame)
        except ChannelClosed as exc:
            self._end = exc
            self._request_stop(exc.code, exc.reason, None if exc.is_normal else exc)
            return
        except BlipError as exc:
            logger.error("%s: BLIP error while sending: %s", self.name, exc)
            self._request_stop(exc.close_code, str(exc), exc)
            return
        except Exception as exc:
            logger.exception("%s: sending failed", self.name)
            self._request_stop(CLOSE_UNEXPECTED, "unexpected exception", unexpected(exc, self.name))
            return
        self._wake_writer.set()

    def _sent(self, frame: bytes) -> None:
        stats = self._stats
        stats["frames_sent"] += 1
        stats["bytes_sent"] += len(frame)
        self._queued_bytes = max(0, self._queued_bytes - len(frame))
        self._progress.set()

    async def _writer(self) -> None:
        protocol, channel = self.protocol, self.channel
        try:
            while True:
                frame = self._handoff
                if frame is not None:
                    self._handoff = None
                else:
                    frame = protocol.next_frame()
                if frame is None:
                    self._progress.set()
                    self._wake_writer.clear()
                    await self._wake_writer.wait()
                    continue
                self._sending = True
                try:
                    await channel.send(frame)
                finally:
                    self._sending = False
                self._sent(frame)
        except ChannelClosed as exc:
            self._end = exc
            self._request_stop(exc.code, exc.reason, None if exc.is_normal else exc)
        except BlipError as exc:
            logger.error("%s: BLIP error while sending: %s", self.name, exc)
            self._request_stop(exc.close_code, str(exc), exc)
        except Exception as exc:
            logger.exception("%s: writer failed", self.name)
            self._request_stop(CLOSE_UNEXPECTED, "unexpected exception", unexpected(exc, self.name))

    def _start_handler(self, message: Message) -> None:
        self._stats["requests_received"] += 1
        self._requests.append(message)
        if not self._handler_pending:
            self._spawn_handler_task()

    def _spawn_handler_task(self) -> None:
        self._handler_pending = True
        task = asyncio.create_task(self._handle_requests(), name=self._handler_name)
        self._handler_tasks.add(task)

    async def _handle_requests(self) -> None:
        """A handler task: answers queued requests, one after another, until none is left.

        Creating a task costs more than a typical handler (~5 us on CPython 3.11), so one task
        takes as many requests as arrived together. Concurrency is kept: before running each
        handler, the task makes sure another one is on its way if requests remain, so a
        handler that suspends never holds up the requests behind it.
        """
        self._handler_pending = False
        requests = self._requests
        try:
            while requests:
                message = requests.popleft()
                if requests and not self._handler_pending:
                    self._spawn_handler_task()
                try:
                    await self._run_handler(message)
                finally:
                    self._handler_slots.release()
        finally:
            self._handler_tasks.discard(asyncio.current_task())
            if requests and not self._handler_pending and not self._stop.is_set():
                self._spawn_handler_task()  # we were cancelled: someone takes the rest over

    def _resolve(self, message: Message) -> None:
        if message.type is MessageType.ERROR:
            self._stats["errors_received"] += 1
        else:
            self._stats["responses_received"] += 1
        future = self._pending.get(message.number)
        if future is None:
            # The requester gave up (timeout, cancellation); the reply has nowhere to go.
            logger.debug("%s: dropping reply to abandoned request #%d", self.name, message.number)
        elif not future.done():
            future.set_result(message)

    async def _run_handler(self, message: Message) -> None:
        handler = self._handlers.get(message.profile or "")
        if handler is None:
            if message.no_reply:
                logger.warning("%s: no handler for no-reply %r", self.name, message.profile)
                return
            self._reply_error(message.number, "BLIP", 404, "no handler for message", message.urgent)
            return
        try:
            reply = await handler(message)
        except Exception as exc:
            self._answer(message, None, exc)
            return
        self._answer(message, reply, None)

    def _run_sync_handler(self, handler: SyncHandler, message: Message) -> None:
        """Run a synchronous handler from the reader; its slot is held until it answered.

        A handler that answers at once, or settles a :class:`Deferred` later, costs no task and
        no coroutine: what makes a stream of small requests (``rev``) cheap to serve. One that
        must wait returns a coroutine, which runs in a handler task of its own.
        """
        self._stats["requests_received"] += 1
        try:
            result = handler(message)
        except Exception as exc:
            self._settled(message, None, exc)
            return
        if isinstance(result, Deferred):
            result.then(lambda reply, error: self._settled(message, reply, error))
        elif isinstance(result, Coroutine):
            task = asyncio.create_task(result, name=self._handler_name)
            self._handler_tasks.add(task)
            task.add_done_callback(lambda done: self._handler_task_done(message, done))
        else:
            self._settled(message, result, None)

    def _handler_task_done(self, message: Message, task: asyncio.Task[Reply | None]) -> None:
        self._handler_tasks.discard(task)
        if task.cancelled():  # the connection is closing: nobody to answer
            self._handler_slots.release()
            return
        error = task.exception()
        if error is None:
            self._settled(message, task.result(), None)
        elif isinstance(error, Exception):
            self._settled(message, None, error)
        else:  # KeyboardInterrupt and the like: not the peer's answer
            self._handler_slots.release()

    def _settled(self, message: Message, reply: Reply | None, error: Exception | None) -> None:
        self._handler_slots.release()
        self._answer(message, reply, error)

    def _answer(self, message: Message, reply: Reply | None, error: Exception | None) -> None:
        """Send what a handler answered (``error``: what it raised) to ``message``."""
        number, urgent, no_reply = message.number, message.urgent, message.no_reply
        if error is not None:
            if isinstance(error, BlipErrorReply):
                if not no_reply:
                    self._reply_error(number, error.error_domain, error.code, error.message, urgent)
            elif isinstance(error, DatabaseClosedError):
                # The database was closed while the message was on its way (``close()`` stops
                # this side a moment later): an expected end, answered as "try again later".
                logger.info("%s: %r not handled: %s", self.name, message.profile, error)
                if not no_reply:
                    self._reply_error(number, "HTTP", 503, "database closed", urgent)
            else:
                self._stats["handler_errors"] += 1
                logger.error(
                    "%s: handler for %r failed", self.name, message.profile, exc_info=error
                )
                if not no_reply:
                    self._reply_error(number, "BLIP", 501, "unexpected exception", urgent)
            return
        if no_reply:
            return
        if reply is None:
            reply = Reply()
        if self._stop.is_set():
            return
        try:
            self.protocol.send_response(
                number,
                reply.properties,
                reply.body,
                urgent=urgent if reply.urgent is None else reply.urgent,
                compressed=reply.compressed,
            )
        except BlipError as exc:
            # The handler built an invalid reply (e.g. oversized properties): its bug, not
            # the connection's; answer with an error instead.
            logger.error("%s: invalid reply from handler %r: %s", self.name, message.profile, exc)
            self._reply_error(number, "BLIP", 501, "unexpected exception", urgent)
            return
        self._queued(len(reply.body))

    def _reply_error(self, number: int, domain: str, code: int, text: str, urgent: bool) -> None:
        if self._stop.is_set():
            return
        self.protocol.send_error(number, domain, code, text, urgent=urgent)
        self._send_now()
