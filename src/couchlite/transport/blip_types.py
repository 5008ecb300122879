"""The values a :class:`~couchlite.transport.blip_connection.BlipConnection` takes and gives:
properties and bodies, the :class:`Reply` of a handler, the writer of a streamed reply body,
and the exception an ``ERR`` reply raises."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from couchlite.blip import BlipErrorReply, Message

Properties = Mapping[str, str] | Iterable[tuple[str, str]]
Body = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class Reply:
    """What a request handler answers. ``urgent=None`` copies the request's flag (as LiteCore)."""

    properties: Properties = ()
    body: Body = b""
    compressed: bool = False
    urgent: bool | None = None


Handler = Callable[[Message], Awaitable[Reply | None]]

#: What a reply's outcome is handed to: the reply (``None``: an empty one), or the error.
Settle = Callable[[Reply | None, Exception | None], None]


class Deferred:
    """A reply that a synchronous handler gives later (e.g. once a batch commits).

    The handler returns it at once, keeps it, and settles it exactly once: :meth:`resolve` with
    the reply, or :meth:`fail` with the error it would have raised. Whoever waits registers
    :meth:`then`, which is called when it settles (at once if it already has). Later settlements
    are ignored. No future and no event-loop turn per reply: settling calls the waiter directly.
    """

    __slots__ = ("_outcome", "_waiter")

    def __init__(self) -> None:
        self._outcome: tuple[Reply | None, Exception | None] | None = None
        self._waiter: Settle | None = None

    def resolve(self, reply: Reply | None = None) -> None:
        self._settle(reply, None)

    def fail(self, error: Exception) -> None:
        self._settle(None, error)

    def then(self, waiter: Settle) -> None:
        """Call ``waiter(reply, error)`` once settled; one waiter (the last one registered)."""
        outcome = self._outcome
        if outcome is None:
            self._waiter = waiter
        else:
            waiter(*outcome)

    def _settle(self, reply: Reply | None, error: Exception | None) -> None:
        if self._outcome is not None:
            return
        self._outcome = (reply, error)
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter(reply, error)


#: A synchronous handler: answers at once (a reply, ``None`` or an exception raised), later
#: (a :class:`Deferred`), or through a coroutine the connection runs in a handler task.
SyncHandler = Callable[[Message], "Reply | Deferred | Coroutine[Any, Any, Reply | None] | None"]
#: Receives the outcome of a request sent with ``request_later``: the reply, or the error.
ReplyCallback = Callable[[Message | None, Exception | None], None]
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
