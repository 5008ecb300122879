"""The values a :class:`~couchlite.transport.blip_connection.BlipConnection` takes and gives:
properties and bodies, the :class:`Reply` of a handler, the writer of a streamed reply body,
and the exception an ``ERR`` reply raises."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

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
