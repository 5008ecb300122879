"""Incoming messages in progress: the bookkeeping of :class:`~couchlite.blip.protocol.BlipProtocol`
for a message whose frames are still arriving (notes §2.3-§2.7).

:class:`InMessage` keeps the chunks of a buffered message and joins them once at the end;
:class:`StreamIn` keeps only a streamed reply's properties and hands its body to a sink as it
arrives (``BlipProtocol.stream_response``).
"""

from __future__ import annotations

from collections.abc import Callable

from couchlite.blip.errors import CLOSE_PROTOCOL_ERROR, BlipError, BlipLimitExceeded
from couchlite.blip.message import FrameFlags, Message, MessageType, decode_properties
from couchlite.blip.varint import try_decode_varint

#: Receives the body bytes of a streamed reply as they arrive (see stream_response).
BodySink = Callable[[memoryview], None]


def properties_span(
    head: bytes | bytearray | memoryview, max_properties_size: int
) -> tuple[int, int] | None:
    """Where the properties lie in a message whose first bytes are ``head``: ``(start, end)``,
    or None while ``head`` ends inside the length varint. Oversized properties are fatal."""
    if head and head[0] < 0x80:
        props_len, start = head[0], 1  # the usual one-byte properties length
    else:
        decoded = try_decode_varint(head[:10])
        if decoded is None:
            return None
        props_len, start = decoded
    if props_len > max_properties_size:
        raise BlipError(
            f"oversized properties ({props_len} bytes)", close_code=CLOSE_PROTOCOL_ERROR
        )
    return start, start + props_len


def properties_end(span: tuple[int, int] | None, size: int) -> int:
    """Check that a complete message of ``size`` bytes holds its properties; return their end."""
    if span is None:
        raise BlipError("message ends before its properties length", close_code=1002)
    if size < span[1]:
        raise BlipError("message ends inside its properties", close_code=1002)
    return span[1]


class InMessage:
    __slots__ = (
        "chunks",
        "flags",
        "frame_count",
        "limit",
        "number",
        "received",
        "size",
        "span",
        "type",
        "unacked",
    )

    #: Whether the bytes of this message count towards max_buffered_bytes.
    buffered = True

    def __init__(self, type_: MessageType, number: int, flags: FrameFlags, limit: int) -> None:
        self.type = type_
        self.number = number
        self.flags = flags  # without MORE_COMING
        #: Most bytes (properties + body) this message may have: max_message_size.
        self.limit = limit
        # Views into the frames when those are immutable bytes (no copy until finish()).
        self.chunks: list[bytes | memoryview] = []
        self.size = 0
        #: (start, end) of the properties once their length is known.
        self.span: tuple[int, int] | None = None
        self.received = 0
        self.unacked = 0
        self.frame_count = 0

    def add(self, data: bytes | memoryview, max_properties_size: int) -> None:
        if data:
            self.chunks.append(data)
            self.size += len(data)
        if self.span is None and self.chunks:
            # The properties-length varint may straddle frames; it is at most 10 bytes.
            head = self.chunks[0][:10] if len(self.chunks[0]) >= 10 else b"".join(self.chunks)[:10]
            self.span = properties_span(head, max_properties_size)

    def finish(self) -> Message:
        props_end = properties_end(self.span, self.size)
        assert self.span is not None
        props_parts: list[bytes | memoryview] = []
        body_parts: list[bytes | memoryview] = []
        offset = 0
        for chunk in self.chunks:
            end = offset + len(chunk)
            if end <= props_end:
                props_parts.append(chunk)
            elif offset >= props_end:
                body_parts.append(chunk)
            else:
                cut = props_end - offset
                props_parts.append(chunk[:cut])
                body_parts.append(chunk[cut:])
            offset = end
        self.chunks = []
        head = b"".join(props_parts)
        properties = decode_properties(memoryview(head)[self.span[0] :])
        return Message(
            self.type, self.number, self.flags, properties, b"".join(body_parts), self.frame_count
        )


class StreamIn(InMessage):
    """A reply whose body goes to a sink as it arrives (:meth:`BlipProtocol.stream_response`).

    Only the properties are kept (at most ``max_properties_size`` plus the length varint);
    ``size`` counts every byte received, ``body_size`` those handed to the sink, which may
    never exceed ``max_body``.
    """

    __slots__ = ("body_size", "head", "max_body", "properties", "sink")

    buffered = False

    def __init__(
        self,
        number: int,
        flags: FrameFlags,
        max_body: int,
        sink: BodySink,
        max_properties_size: int,
    ) -> None:
        # The inflation allowance: the body's cap plus the largest possible properties prefix.
        super().__init__(MessageType.RESPONSE, number, flags, max_body + max_properties_size + 10)
        self.max_body = max_body
        self.sink = sink
        self.head = bytearray()
        self.properties: dict[str, str] | None = None
        self.body_size = 0

    def add(self, data: bytes | memoryview, max_properties_size: int) -> None:
        self.size += len(data)
        if self.properties is not None:
            self._deliver(data if type(data) is memoryview else memoryview(data))
            return
        self.head += data
        if self.span is None:
            self.span = properties_span(self.head, max_properties_size)
            if self.span is None:
                return
        start, end = self.span
        if len(self.head) < end:
            return
        head, self.head = bytes(self.head), bytearray()
        self.properties = decode_properties(memoryview(head)[start:end])
        if len(head) > end:
            self._deliver(memoryview(head)[end:])

    def _deliver(self, data: memoryview) -> None:
        size = self.body_size = self.body_size + len(data)
        if size > self.max_body:
            raise BlipLimitExceeded(
                f"streamed reply #{self.number} exceeds its {self.max_body}-byte limit",
                limit="max_size",
                maximum=self.max_body,
            )
        self.sink(data)

    def finish(self) -> Message:
        properties_end(self.span, self.size)
        assert self.properties is not None
        return Message(self.type, self.number, self.flags, self.properties, b"", self.frame_count)
