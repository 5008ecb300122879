"""The receiving half of :class:`~couchlite.blip.protocol.BlipProtocol` (notes §2.3-§2.7).

Theory of operation
-------------------
:class:`Receiver` turns incoming frames into messages: every frame goes through one
:class:`FrameDecoder` in wire order (inflate, running CRC). Requests must be numbered last+1
(or continue one in progress); responses must answer one of our requests still awaiting its
reply. There is one path for every frame, and each check is made in one place:

1. the header (two varints); ACK frames go to the sending half, undefined types are ignored;
2. numbering, then, for the first frame of a message spanning frames, the count of requests in
   progress; a message that arrives whole in one frame keeps no state between frames;
3. the payload is inflated with an allowance of what is left under the limits (the codec stops
   one byte past it, so a decompression bomb costs at most the allowance), and a frame that
   would exceed it raises the limit's :class:`BlipLimitExceeded`;
4. the properties length is checked against ``max_properties_size`` as soon as it is known
   (:func:`~couchlite.blip.incoming.properties_span`), the message's end against it when the
   last frame arrives (:func:`~couchlite.blip.incoming.properties_end`), by the same
   functions whether the message took one frame or many;
5. a completed message updates the bookkeeping both halves share (:meth:`Receiver._completed`).

Message bytes are kept as the chunks they arrived in (views of the frames when those are
immutable ``bytes``) and joined once when the last frame arrives. Every ``ack_threshold`` bytes
of one message (frame size after its header, as on the wire) an ACK is queued for the sending
half (one queued ACK per message at most: a newer one replaces it, its count is cumulative).

Limits: ``max_message_size`` bounds one message after inflation; ``max_buffered_bytes`` all
partially received messages together; ``max_incoming_messages`` the requests partially received
at once (close code 1009 for sizes, 1008 for the count).
"""

from __future__ import annotations

from collections.abc import Callable

from couchlite.blip.codec import FrameDecoder, encode_ack_frame
from couchlite.blip.errors import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY_VIOLATION,
    BlipError,
    BlipLimitExceeded,
)
from couchlite.blip.incoming import (
    BodySink,
    InMessage,
    StreamIn,
    properties_end,
    properties_span,
)
from couchlite.blip.message import (
    FLAG_COMPRESSED,
    FLAG_MORE_COMING,
    FLAG_NO_REPLY,
    FRAME_FLAGS,
    MESSAGE_TYPES,
    TYPE_ACK_REQUEST,
    TYPE_ACK_RESPONSE,
    TYPE_ERROR,
    TYPE_MASK,
    TYPE_REQUEST,
    TYPE_RESPONSE,
    Message,
    MessageType,
    decode_properties,
)
from couchlite.blip.varint import decode_varint

#: Called with (for_response, message number, byte count) for every ACK frame received.
AckHandler = Callable[[bool, int, int], None]


class Receiver:
    """The incoming state of one connection; see the module docstring.

    ``awaiting_response`` (our requests expecting a reply) and ``awaiting_reply`` (incoming
    requests we owe a reply) are shared with the sending half, which adds to and removes from
    them as well; ``acks`` is the sending half's queue of ACK frames.
    """

    def __init__(
        self,
        *,
        ack_threshold: int,
        max_properties_size: int,
        message_limit: int,
        max_buffered: int,
        max_incoming: int,
        strict_numbering: bool,
        awaiting_response: set[int],
        awaiting_reply: set[int],
        acks: dict[tuple[int, int], bytes],
        on_ack: AckHandler,
        stats: dict[str, int],
    ) -> None:
        self._ack_threshold = ack_threshold
        self._max_properties_size = max_properties_size
        self._message_limit = message_limit
        self._max_buffered = max_buffered
        self._max_incoming = max_incoming
        #: False only for passive decoding of recordings (the dump tool): accepts any request
        #: number and responses to requests this object never sent.
        self._strict = strict_numbering
        self._awaiting_response = awaiting_response
        self._awaiting_reply = awaiting_reply
        self._acks = acks
        self._on_ack = on_ack
        self._stats = stats
        self._decoder = FrameDecoder()
        #: Bytes held in the partially received messages that count towards _max_buffered.
        self.buffered = 0
        self._last_request_in = 0
        self._in_requests: dict[int, InMessage] = {}
        self._in_responses: dict[int, InMessage] = {}
        #: Our requests whose replies go to a sink: number -> (max body size, sink).
        self.streams: dict[int, tuple[int, BodySink]] = {}

    @property
    def in_progress(self) -> int:
        """Incoming requests and replies partially received."""
        return len(self._in_requests) + len(self._in_responses)

    def is_receiving_response(self, request_number: int) -> bool:
        return request_number in self._in_responses

    def stream(self, request_number: int, max_size: int, sink: BodySink) -> None:
        """Stream the reply to ``request_number`` (see ``BlipProtocol.stream_response``)."""
        if request_number not in self._awaiting_response:
            raise BlipError(f"request #{request_number} awaits no reply", is_remote_fault=False)
        if request_number in self._in_responses or request_number in self.streams:
            raise BlipError(
                f"the reply to request #{request_number} is already being received",
                is_remote_fault=False,
            )
        self.streams[request_number] = (max_size, sink)

    def receive(self, view: memoryview) -> list[Message]:
        """Process one incoming frame; return the messages it completed (zero or one)."""
        stats = self._stats
        stats["frames_received"] += 1
        stats["bytes_received"] += len(view)
        # 1. The header, parsed inline with plain ints (parse_frame_header builds a FrameHeader).
        number, pos = decode_varint(view, 0)
        raw_flags, pos = decode_varint(view, pos)
        code = raw_flags & TYPE_MASK
        if code > TYPE_ERROR:
            if code in (TYPE_ACK_REQUEST, TYPE_ACK_RESPONSE):
                stats["acks_received"] += 1
                byte_count, _ = decode_varint(view, pos)
                self._on_ack(code == TYPE_ACK_RESPONSE, number, byte_count)
            return []  # undefined types are reserved for future use: ignored (§2.6)

        # 2. Numbering; the state of a message spanning frames.
        is_response = code != TYPE_REQUEST
        more = raw_flags & FLAG_MORE_COMING
        table = self._in_responses if is_response else self._in_requests
        msg = table.get(number)
        if msg is None:
            msg = self._first_frame(code, number, raw_flags, is_response, table)

        # 3. The payload, within what is left under the limits.
        if msg is None:
            allowance = self._message_limit
            buffered = False
        else:
            allowance = msg.limit - msg.size
            buffered = msg.buffered
            if buffered and self._max_buffered - self.buffered < allowance:
                allowance = self._max_buffered - self.buffered
        try:
            data = self._decoder.decode_payload(
                raw_flags & FLAG_COMPRESSED != 0, view, pos, allowance
            )
        except BlipLimitExceeded:
            raise self._too_big(msg, code, number) from None

        # 4. Properties and completion.
        if msg is None:
            # The whole message in this frame: split straight from it, no InMessage.
            span = properties_span(data, self._max_properties_size)
            end = properties_end(span, len(data))
            assert span is not None
            message = Message(
                MESSAGE_TYPES[code],
                number,
                FRAME_FLAGS[(raw_flags & 0x38) >> 3],
                decode_properties(data[span[0] : end]),
                bytes(data[end:]),
            )
            return [self._completed(code, number, raw_flags, message)]
        if not view.readonly and buffered:
            data = bytes(data)  # the caller may reuse a mutable buffer: keep a copy
        msg.add(data, self._max_properties_size)
        if buffered:
            self.buffered += len(data)
        msg.frame_count += 1
        wire_bytes = len(view) - pos
        msg.received += wire_bytes
        msg.unacked += wire_bytes

        if more:
            if msg.unacked >= self._ack_threshold:
                ack_type = MessageType.ACK_RESPONSE if is_response else MessageType.ACK_REQUEST
                self._acks[(ack_type, number)] = encode_ack_frame(number, ack_type, msg.received)
                msg.unacked = 0
            return []

        del table[number]
        if buffered:
            self.buffered -= msg.size
        return [self._completed(code, number, raw_flags, msg.finish())]

    def _first_frame(
        self,
        code: int,
        number: int,
        raw_flags: int,
        is_response: bool,
        table: dict[int, InMessage],
    ) -> InMessage | None:
        """Check the number of a message's first frame; return the state it needs across
        frames, or None for a message that arrives whole in this frame."""
        msg: InMessage | None = None
        if is_response:
            if self._strict and number not in self._awaiting_response:
                raise BlipError(
                    f"{MESSAGE_TYPES[code].wire_name} #{number} answers no pending request",
                    close_code=CLOSE_INTERNAL_ERROR,
                )
            if self.streams and code == TYPE_RESPONSE:
                stream = self.streams.get(number)
                if stream is not None:
                    msg = StreamIn(
                        number,
                        FRAME_FLAGS[(raw_flags & 0x38) >> 3],
                        stream[0],
                        stream[1],
                        self._max_properties_size,
                    )
        elif self._strict and number != self._last_request_in + 1:
            raise BlipError(
                f"bad request number #{number} (expected #{self._last_request_in + 1})",
                close_code=CLOSE_INTERNAL_ERROR,
            )
        else:
            self._last_request_in = number
        if msg is None:
            if not raw_flags & FLAG_MORE_COMING:
                return None
            if not is_response and len(table) >= self._max_incoming:
                raise BlipLimitExceeded(
                    f"more than {self._max_incoming} incoming requests in progress at once",
                    limit="max_incoming_messages",
                    maximum=self._max_incoming,
                    close_code=CLOSE_POLICY_VIOLATION,
                )
            msg = InMessage(
                MESSAGE_TYPES[code],
                number,
                FRAME_FLAGS[(raw_flags & 0x38) >> 3],
                self._message_limit,
            )
        table[number] = msg
        return msg

    def _too_big(self, msg: InMessage | None, code: int, number: int) -> BlipLimitExceeded:
        """The error for a frame that would take its message (or the connection) past a limit;
        ``msg`` is None for a message arriving whole in one frame."""
        kind = MESSAGE_TYPES[code].wire_name
        if msg is None:
            limit = self._message_limit
        elif not msg.buffered:
            assert isinstance(msg, StreamIn)
            return BlipLimitExceeded(
                f"streamed {kind} #{number} exceeds its {msg.max_body}-byte limit",
                limit="max_size",
                maximum=msg.max_body,
            )
        elif msg.limit - msg.size <= self._max_buffered - self.buffered:
            limit = msg.limit
        else:
            return BlipLimitExceeded(
                f"incoming messages in progress exceed max_buffered_bytes ({self._max_buffered})",
                limit="max_buffered_bytes",
                maximum=self._max_buffered,
            )
        return BlipLimitExceeded(
            f"{kind} #{number} exceeds max_message_size ({limit} bytes)",
            limit="max_message_size",
            maximum=limit,
        )

    def _completed(self, code: int, number: int, raw_flags: int, message: Message) -> Message:
        if code != TYPE_REQUEST:
            self._awaiting_response.discard(number)
            if self.streams:
                self.streams.pop(number, None)  # includes an ERR reply to a streamed request
        elif not raw_flags & FLAG_NO_REPLY:
            self._awaiting_reply.add(number)
        self._stats["messages_received"] += 1
        return message
