"""The sans-I/O BLIP v3 connection state machine (notes §2.1-§2.8).

Theory of operation
-------------------
:class:`BlipProtocol` is one end of a BLIP connection with no I/O of its own. The owner feeds it
every binary WebSocket message it receives (:meth:`BlipProtocol.receive_frame`, one BLIP frame
each) and transmits whatever :meth:`BlipProtocol.next_frame` hands out, whenever it can.

Outgoing (§2.6, §2.7). ``send_request``/``send_response``/``send_error`` only validate and queue;
encoding is lazy, one frame per :meth:`next_frame` call, so compression and the running CRC
always follow the real transmission order. Queued ACK frames go first. The out-box is then served
round robin, one frame per turn, the message re-queued at the tail (urgent ones after the last
urgent message, one normal message between where possible, never overtaking a message that has
not sent its first frame: LiteCore's ``requeue``). The frame budget shrinks to 4096 bytes when an
urgent message waits behind a normal one. A message with ``max_unacked_bytes`` or more sent but
not acknowledged leaves the out-box for the "icebox" until an ACK from the peer reopens its
window; other messages keep flowing meanwhile.

Performance: a small message is one frame, and both directions have a fast path for that case
(``FrameEncoder.encode_whole``; ``_receive_whole``) that skips the multi-frame machinery
(``OutgoingPayload``, ``_InMessage``, the ACK bookkeeping) but performs the same checks. Hot
paths test flags as plain ints (``FLAG_*``, ``TYPE_*``): ``IntFlag``/``IntEnum`` arithmetic runs
Python-level ``enum`` code, and used to be a third of the cost of a small message. The enums
appear only at the API boundary, taken from prebuilt tables (``MESSAGE_TYPES``,
``FRAME_FLAGS``).

Incoming (§2.3-§2.7). Frames are checked in wire order through one :class:`FrameDecoder`
(inflate, running CRC). Requests must be numbered last+1 (or continue one in progress);
responses must answer one of our requests still awaiting its reply. Message bytes are kept as
the chunks they arrived in (views of the frames when those are immutable ``bytes``) and joined
once when the last frame arrives. Every
``ack_threshold`` bytes of one message (frame size after its header, as on the wire) we queue an
ACK. Every violation raises :class:`BlipError` and poisons the object: later ``receive_frame``
and ``send_*`` calls re-raise it and ``next_frame`` returns None.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from couchlite._tuning import (
    BLIP_ACK_THRESHOLD,
    BLIP_BIG_FRAME_SIZE,
    BLIP_COMPRESSION_LEVEL,
    BLIP_MAX_PROPERTIES_SIZE,
    BLIP_MAX_UNACKED_BYTES,
    BLIP_SMALL_FRAME_SIZE,
)
from couchlite.blip.codec import (
    MAX_INFLATED_FRAME_SIZE,
    MIN_FRAME_SIZE,
    FrameDecoder,
    FrameEncoder,
    OutgoingPayload,
    encode_ack_frame,
)
from couchlite.blip.errors import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_PROTOCOL_ERROR,
    BlipError,
)
from couchlite.blip.message import (
    FLAG_COMPRESSED,
    FLAG_MORE_COMING,
    FLAG_NO_REPLY,
    FLAG_URGENT,
    FRAME_FLAGS,
    MESSAGE_TYPES,
    TYPE_ACK_REQUEST,
    TYPE_ACK_RESPONSE,
    TYPE_ERROR,
    TYPE_MASK,
    TYPE_REQUEST,
    TYPE_RESPONSE,
    FrameFlags,
    Message,
    MessageType,
    decode_properties,
    encode_properties,
)
from couchlite.blip.varint import decode_varint, encode_varint, try_decode_varint
from couchlite.errors import InvalidArgumentError

Properties = Mapping[str, str] | Iterable[tuple[str, str]]
Body = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class BlipStatistics:
    """Counters of one connection. Frames and bytes include ACK frames; bytes are wire bytes."""

    frames_sent: int = 0
    bytes_sent: int = 0
    messages_sent: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    messages_received: int = 0
    acks_sent: int = 0
    acks_received: int = 0


_EMPTY_VIEW = memoryview(b"")


class _OutMessage:
    __slots__ = (
        "body",
        "bytes_sent",
        "flags",
        "key",
        "number",
        "payload",
        "prefix",
        "unacked",
        "urgent",
    )

    def __init__(self, number: int, flags: int, prefix: bytes, body: memoryview) -> None:
        self.number = number
        self.flags = flags
        self.prefix = prefix
        self.body = body
        #: Created only when the message turns out to need several frames (see next_frame).
        self.payload: OutgoingPayload | None = None
        self.bytes_sent = 0
        self.unacked = 0
        # Plain attributes, not properties: the out-box reads them several times per frame.
        self.key = ((flags & TYPE_MASK) != TYPE_REQUEST, number)
        self.urgent = flags & FLAG_URGENT != 0


class _InMessage:
    __slots__ = (
        "chunks",
        "flags",
        "frame_count",
        "number",
        "props_end",
        "props_start",
        "received",
        "size",
        "type",
        "unacked",
    )

    def __init__(self, type_: MessageType, number: int, flags: FrameFlags) -> None:
        self.type = type_
        self.number = number
        self.flags = flags  # without MORE_COMING
        # Views into the frames when those are immutable bytes (no copy until finish()).
        self.chunks: list[bytes | memoryview] = []
        self.size = 0
        self.props_start = 0
        self.props_end: int | None = None
        self.received = 0
        self.unacked = 0
        self.frame_count = 0

    def add(self, data: bytes | memoryview, max_properties_size: int) -> None:
        if data:
            self.chunks.append(data)
            self.size += len(data)
        if self.props_end is None and self.chunks:
            # The properties-length varint may straddle frames; it is at most 10 bytes.
            head = self.chunks[0][:10] if len(self.chunks[0]) >= 10 else b"".join(self.chunks)[:10]
            decoded = try_decode_varint(head)
            if decoded is not None:
                props_len, start = decoded
                if props_len > max_properties_size:
                    raise BlipError(
                        f"oversized properties ({props_len} bytes)",
                        close_code=CLOSE_PROTOCOL_ERROR,
                    )
                self.props_start = start
                self.props_end = start + props_len

    def finish(self) -> Message:
        if self.props_end is None:
            raise BlipError("message ends before its properties length", close_code=1002)
        if self.size < self.props_end:
            raise BlipError("message ends inside its properties", close_code=1002)
        props_parts: list[bytes | memoryview] = []
        body_parts: list[bytes | memoryview] = []
        offset = 0
        for chunk in self.chunks:
            end = offset + len(chunk)
            if end <= self.props_end:
                props_parts.append(chunk)
            elif offset >= self.props_end:
                body_parts.append(chunk)
            else:
                cut = self.props_end - offset
                props_parts.append(chunk[:cut])
                body_parts.append(chunk[cut:])
            offset = end
        self.chunks = []
        head = b"".join(props_parts)
        properties = decode_properties(memoryview(head)[self.props_start :])
        return Message(
            self.type, self.number, self.flags, properties, b"".join(body_parts), self.frame_count
        )


def _as_bytes_view(body: Body) -> memoryview:
    view = memoryview(body)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class BlipProtocol:
    """One end of a BLIP v3 connection, without I/O. See the module docstring."""

    def __init__(
        self,
        *,
        compression_level: int = BLIP_COMPRESSION_LEVEL,
        frame_size: int = BLIP_BIG_FRAME_SIZE,
        ack_threshold: int = BLIP_ACK_THRESHOLD,
        max_unacked_bytes: int = BLIP_MAX_UNACKED_BYTES,
        max_properties_size: int = BLIP_MAX_PROPERTIES_SIZE,
        max_message_size: int | None = None,
        strict_numbering: bool = True,
    ) -> None:
        if not -1 <= compression_level <= 9:
            raise InvalidArgumentError(f"compression_level must be -1..9, not {compression_level}")
        if frame_size < MIN_FRAME_SIZE:
            raise InvalidArgumentError(f"frame_size must be at least {MIN_FRAME_SIZE}")
        if ack_threshold < 1 or max_unacked_bytes < 1 or max_properties_size < 0:
            raise InvalidArgumentError("ack_threshold and max_unacked_bytes must be positive")
        if max_message_size is not None and max_message_size < 1:
            raise InvalidArgumentError("max_message_size must be positive")
        self._compression_enabled = compression_level != 0
        self._frame_size = frame_size
        self._small_frame_size = min(BLIP_SMALL_FRAME_SIZE, frame_size)
        self._ack_threshold = ack_threshold
        self._max_unacked = max_unacked_bytes
        self._max_properties_size = max_properties_size
        self._max_message_size = max_message_size
        #: False only for passive decoding of recordings (the dump tool): accepts any request
        #: number and responses to requests this object never sent.
        self._strict = strict_numbering

        self._encoder = FrameEncoder(compression_level)
        self._decoder = FrameDecoder()
        self._error: BlipError | None = None

        # outgoing
        self._next_request_number = 1
        self._acks: deque[bytes] = deque()
        self._outbox: deque[_OutMessage] = deque()
        self._icebox: dict[tuple[bool, int], _OutMessage] = {}
        self._outgoing: dict[tuple[bool, int], _OutMessage] = {}
        self._awaiting_response: set[int] = set()

        # incoming
        self._last_request_in = 0
        self._in_requests: dict[int, _InMessage] = {}
        self._in_responses: dict[int, _InMessage] = {}
        self._awaiting_reply: set[int] = set()

        self._stats = {name: 0 for name in BlipStatistics.__dataclass_fields__}

    # ---------------------------------------------------------------- state

    @property
    def error(self) -> BlipError | None:
        """The fatal error that stopped this connection, if any."""
        return self._error

    @property
    def has_output(self) -> bool:
        """Whether :meth:`next_frame` would return a frame now."""
        return self._error is None and bool(self._acks or self._outbox)

    @property
    def pending_messages(self) -> int:
        """Outgoing messages not fully sent yet (including those waiting for an ACK)."""
        return len(self._outbox) + len(self._icebox)

    def is_awaiting_response(self, request_number: int) -> bool:
        """Whether our request ``request_number`` still expects a reply from the peer."""
        return request_number in self._awaiting_response

    def statistics(self) -> BlipStatistics:
        return BlipStatistics(**self._stats)

    def _check_usable(self) -> None:
        if self._error is not None:
            raise self._error

    # ---------------------------------------------------------------- sending

    def send_request(
        self,
        properties: Properties,
        body: Body = b"",
        *,
        urgent: bool = False,
        compressed: bool = False,
        no_reply: bool = False,
    ) -> int:
        """Queue a request; return its number (1, 2, 3... per connection)."""
        if self._error is not None:
            raise self._error
        flags = self._flags(TYPE_REQUEST, urgent, compressed) if urgent or compressed else 0
        if no_reply:
            flags |= FLAG_NO_REPLY
        prefix = encode_properties(properties, self._max_properties_size)
        view = memoryview(body) if type(body) is bytes else _as_bytes_view(body)
        number = self._next_request_number
        self._next_request_number += 1
        if not no_reply:
            self._awaiting_response.add(number)
        msg = _OutMessage(number, flags, prefix, view)
        if urgent:
            self._requeue(msg)
        else:
            self._outbox.append(msg)  # what _requeue does with a normal message
        return number

    def send_response(
        self,
        request_number: int,
        properties: Properties = (),
        body: Body = b"",
        *,
        urgent: bool = False,
        compressed: bool = False,
    ) -> None:
        """Queue the reply to incoming request ``request_number``."""
        self._send_reply(TYPE_RESPONSE, request_number, properties, body, urgent, compressed)

    def send_error(
        self,
        request_number: int,
        domain: str,
        code: int,
        message: str = "",
        *,
        urgent: bool = False,
    ) -> None:
        """Queue an ERR reply (``Error-Domain``, ``Error-Code``, UTF-8 message body, §2.8)."""
        props = (("Error-Domain", domain), ("Error-Code", str(int(code))))
        self._send_reply(TYPE_ERROR, request_number, props, message.encode("utf-8"), urgent, False)

    def _send_reply(
        self,
        type_: int,
        number: int,
        properties: Properties,
        body: Body,
        urgent: bool,
        compressed: bool,
    ) -> None:
        self._check_usable()
        if number not in self._awaiting_reply:
            raise BlipError(
                f"no incoming request #{number} awaiting a reply"
                " (unknown, still arriving, already answered, or NoReply)",
                is_remote_fault=False,
            )
        prefix = encode_properties(properties, self._max_properties_size)
        view = memoryview(body) if type(body) is bytes else _as_bytes_view(body)
        self._awaiting_reply.discard(number)
        self._requeue(_OutMessage(number, self._flags(type_, urgent, compressed), prefix, view))

    def _flags(self, type_: int, urgent: bool, compressed: bool) -> int:
        flags = type_
        if urgent:
            flags |= FLAG_URGENT
        if compressed and self._compression_enabled:
            flags |= FLAG_COMPRESSED
        return flags

    def _requeue(self, msg: _OutMessage) -> None:
        queue = self._outbox
        count = len(queue)
        if not (msg.urgent and count > 1):
            queue.append(msg)
            return
        is_new = msg.bytes_sent == 0
        index = 1
        for j in range(count - 1, -1, -1):
            other = queue[j]
            if other.urgent:
                # After the last urgent message, leaving one normal message in between.
                index = min(j + 2, count)
                break
            if is_new and other.bytes_sent == 0:
                # Never overtake a message that has not started: first frames stay in order.
                index = j + 1
                break
        queue.insert(index, msg)

    def next_frame(self) -> bytes | None:
        """The next frame to transmit, or None when nothing can be sent now."""
        if self._error is not None:
            return None
        if self._acks:
            frame = self._acks.popleft()
            self._count_sent(frame)
            self._stats["acks_sent"] += 1
            return frame
        outbox = self._outbox
        if not outbox:
            return None
        msg = outbox.popleft()
        budget = self._frame_size
        if not msg.urgent and outbox and outbox[0].urgent:
            budget = self._small_frame_size
        stats = self._stats
        try:
            payload = msg.payload
            if payload is None:
                # First frame: most messages fit in one, encoded straight from prefix + body.
                whole = self._encoder.encode_whole(
                    msg.number, msg.flags, msg.prefix, msg.body, budget
                )
                if whole is not None:
                    stats["frames_sent"] += 1
                    stats["bytes_sent"] += len(whole)
                    stats["messages_sent"] += 1
                    return whole
                payload = msg.payload = OutgoingPayload(msg.prefix, msg.body)
                msg.body = _EMPTY_VIEW
                # Only a message spanning frames can be ACKed, so only those are registered.
                self._outgoing[msg.key] = msg
            frame, more = self._encoder.encode(msg.number, msg.flags, payload, budget)
        except BlipError as exc:
            self._error = exc
            raise
        sent = len(frame) - len(encode_varint(msg.number)) - 1
        msg.bytes_sent += sent
        msg.unacked += sent
        self._count_sent(frame)
        if more:
            if msg.unacked >= self._max_unacked:
                self._icebox[msg.key] = msg
            else:
                self._requeue(msg)
        else:
            del self._outgoing[msg.key]
            self._stats["messages_sent"] += 1
        return frame

    def _count_sent(self, frame: bytes) -> None:
        self._stats["frames_sent"] += 1
        self._stats["bytes_sent"] += len(frame)

    # ---------------------------------------------------------------- receiving

    def receive_frame(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Process one incoming frame; return the messages it completed (zero or one)."""
        if self._error is not None:
            raise self._error
        try:
            return self._receive(memoryview(data) if type(data) is bytes else _as_bytes_view(data))
        except BlipError as exc:
            self._error = exc
            raise

    def _receive(self, view: memoryview) -> list[Message]:
        stats = self._stats
        stats["frames_received"] += 1
        stats["bytes_received"] += len(view)
        # The header, parsed inline with plain ints (parse_frame_header builds a FrameHeader).
        number, pos = decode_varint(view, 0)
        raw_flags, pos = decode_varint(view, pos)
        code = raw_flags & TYPE_MASK
        if code > TYPE_ERROR:
            if code in (TYPE_ACK_REQUEST, TYPE_ACK_RESPONSE):
                stats["acks_received"] += 1
                byte_count, _ = decode_varint(view, pos)
                self._received_ack(code == TYPE_ACK_RESPONSE, number, byte_count)
            return []  # undefined types are reserved for future use: ignored (§2.6)

        is_response = code != TYPE_REQUEST
        table = self._in_responses if is_response else self._in_requests
        msg = table.get(number)
        if msg is None:
            if is_response:
                if self._strict and number not in self._awaiting_response:
                    raise BlipError(
                        f"{MESSAGE_TYPES[code].wire_name} #{number} answers no pending request",
                        close_code=CLOSE_INTERNAL_ERROR,
                    )
            elif self._strict and number != self._last_request_in + 1:
                raise BlipError(
                    f"bad request number #{number} (expected #{self._last_request_in + 1})",
                    close_code=CLOSE_INTERNAL_ERROR,
                )
            else:
                self._last_request_in = number
            if not raw_flags & FLAG_MORE_COMING:
                return [self._receive_whole(code, number, raw_flags, view, pos)]
            msg = _InMessage(MESSAGE_TYPES[code], number, FRAME_FLAGS[(raw_flags & 0x38) >> 3])
            table[number] = msg

        allowance = MAX_INFLATED_FRAME_SIZE
        if self._max_message_size is not None:
            allowance = self._max_message_size - msg.size
        data = self._decoder.decode_payload(raw_flags & FLAG_COMPRESSED != 0, view, pos, allowance)
        if not view.readonly:
            data = bytes(data)  # the caller may reuse a mutable buffer: keep a copy
        if self._max_message_size is not None and msg.size + len(data) > self._max_message_size:
            raise BlipError("message too big", close_code=CLOSE_MESSAGE_TOO_BIG)
        msg.add(data, self._max_properties_size)
        msg.frame_count += 1
        wire_bytes = len(view) - pos
        msg.received += wire_bytes
        msg.unacked += wire_bytes

        if raw_flags & FLAG_MORE_COMING:
            if msg.unacked >= self._ack_threshold:
                ack_type = MessageType.ACK_RESPONSE if is_response else MessageType.ACK_REQUEST
                self._acks.append(encode_ack_frame(number, ack_type, msg.received))
                msg.unacked = 0
            return []

        del table[number]
        return [self._completed(msg.finish())]

    def _receive_whole(
        self, code: int, number: int, raw_flags: int, view: memoryview, pos: int
    ) -> Message:
        """A message that arrived in one frame: split straight from the frame, no _InMessage.

        Performs the same checks, in the same order, as the _InMessage path.
        """
        limit = self._max_message_size
        data = self._decoder.decode_payload(
            raw_flags & FLAG_COMPRESSED != 0,
            view,
            pos,
            MAX_INFLATED_FRAME_SIZE if limit is None else limit,
        )
        if data and data[0] < 0x80:
            props_len, start = data[0], 1  # the usual one-byte properties length
        else:
            decoded = try_decode_varint(data)
            if decoded is None:
                raise BlipError("message ends before its properties length", close_code=1002)
            props_len, start = decoded
        if props_len > self._max_properties_size:
            raise BlipError(
                f"oversized properties ({props_len} bytes)", close_code=CLOSE_PROTOCOL_ERROR
            )
        end = start + props_len
        if len(data) < end:
            raise BlipError("message ends inside its properties", close_code=1002)
        flags = FRAME_FLAGS[(raw_flags & 0x38) >> 3]
        message = Message(
            MESSAGE_TYPES[code],
            number,
            flags,
            decode_properties(data[start:end]),
            bytes(data[end:]),
        )
        # What _completed does, inline on this hot path.
        if code != TYPE_REQUEST:
            self._awaiting_response.discard(number)
        elif not raw_flags & FLAG_NO_REPLY:
            self._awaiting_reply.add(number)
        self._stats["messages_received"] += 1
        return message

    def _completed(self, message: Message) -> Message:
        number = message.number
        if message.type is not MessageType.REQUEST:
            self._awaiting_response.discard(number)
        elif not int.__and__(message.flags, FLAG_NO_REPLY):
            self._awaiting_reply.add(number)
        self._stats["messages_received"] += 1
        return message

    def _received_ack(self, for_response: bool, number: int, byte_count: int) -> None:
        msg = self._outgoing.get((for_response, number))
        if msg is None:
            return  # late ACK for a finished message, or nonsense: harmless either way
        if byte_count <= msg.bytes_sent:
            msg.unacked = min(msg.unacked, msg.bytes_sent - byte_count)
        if msg.key in self._icebox and msg.unacked < self._max_unacked:
            del self._icebox[msg.key]
            self._requeue(msg)
