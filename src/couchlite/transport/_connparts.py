"""The small pieces of :mod:`couchlite.transport.blip_connection`: its defaults, public value types,
errors and coroutine helpers (kept apart so the connection module stays about its tasks)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import CouchliteError

Properties = Mapping[str, str] | Iterable[tuple[str, str]]
Body = bytes | bytearray | memoryview

#: Handlers run at once per connection; LiteCore handles up to 100-200 incoming revs in
#: parallel (notes §13). Beyond this the reader stops reading, which throttles the peer.
DEFAULT_MAX_CONCURRENT_HANDLERS = 100
#: Messages queued in the protocol's out-box before senders wait. Each message costs one
#: entry; 200 matches LiteCore's changes batch and keeps memory small when the peer stalls.
DEFAULT_MAX_PENDING_MESSAGES = 200
#: Bytes of large message bodies queued before senders of large messages wait. Small messages
#: (up to one frame) are bounded by the message count instead, so a queued bulk transfer never
#: delays an urgent control message behind it.
DEFAULT_MAX_PENDING_BYTES = 4 * 1024 * 1024
#: A message no bigger than one big frame is "small" for back-pressure purposes.
SMALL_MESSAGE_BYTES = 16 * 1024
#: How long request() waits for its reply by default: the peer may be slow (a big rev, a busy
#: database), but a reply that never comes must not hang a replicator forever.
DEFAULT_REQUEST_TIMEOUT_S = 300.0
#: How long a clean close waits for queued frames to be sent (LiteCore's close timeout, §3.6).
CLOSE_FLUSH_TIMEOUT_S = 5.0
#: How long closing waits for cancelled handlers and for the channel's closing handshake.
CLOSE_TASKS_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Reply:
    """What a request handler answers. ``urgent=None`` copies the request's flag (as LiteCore)."""

    properties: Properties = ()
    body: Body = b""
    compressed: bool = False
    urgent: bool | None = None


Handler = Callable[[Message], Awaitable[Reply | None]]
#: Receives the body of a streamed reply, piece by piece (see request_streamed).
BodyWriter = Callable[[memoryview], None]


class StreamTarget:
    """The sink the protocol feeds for one streamed reply; shields it from the caller's writer.

    A writer that raises fails the request at once (its future gets the exception); bytes that
    still arrive for it, or for a request whose caller gave up, are dropped.
    """

    __slots__ = ("future", "write")

    def __init__(self, write: BodyWriter, future: asyncio.Future[Message]) -> None:
        self.write: BodyWriter | None = write
        self.future = future

    def __call__(self, data: memoryview) -> None:
        write = self.write
        if write is None:
            return
        try:
            write(data)
        except Exception as exc:
            self.write = None
            if not self.future.done():
                self.future.set_exception(exc)


def error_reply(reply: Message) -> BlipErrorReply:
    """The exception for an ``ERR`` reply to one of our requests."""
    code = reply.error_code
    return BlipErrorReply(reply.error_domain or "BLIP", code or 0, reply.error_message)


def unexpected(exc: Exception, name: str) -> CouchliteError:
    if isinstance(exc, CouchliteError):
        return exc
    error = CouchliteError(f"{name}: unexpected {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
