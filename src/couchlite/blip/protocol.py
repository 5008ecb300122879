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

Performance: a small message is one frame; it is encoded straight from its prefix and body
(``FrameEncoder.encode_whole``) and received without the state of a message spanning frames
(see :mod:`couchlite.blip.receiving`). Hot paths test flags as plain ints (``FLAG_*``,
``TYPE_*``): ``IntFlag``/``IntEnum`` arithmetic runs Python-level ``enum`` code, a third of the
cost of a small message. The enums appear only at the API boundary, taken from prebuilt tables
(``MESSAGE_TYPES``, ``FRAME_FLAGS``).

Incoming (§2.3-§2.7): :class:`~couchlite.blip.receiving.Receiver` holds the receiving half (one
path for every frame: numbering, limits, properties, ACKs to queue). It shares with this object
the queue of ACK frames and the two sets of messages awaiting replies. Every violation raises
:class:`BlipError` and poisons the object: later ``receive_frame`` and ``send_*`` calls
re-raise it and ``next_frame`` returns None.

Limits (a peer may be hostile; defaults in ``couchlite._tuning``). ``max_message_size`` bounds
one message after inflation; ``max_buffered_bytes`` all partially received messages together;
``max_incoming_messages`` the requests partially received at once. Exceeding any of them raises
:class:`BlipLimitExceeded` (close code 1009 for sizes, 1008 for the count).

Streamed replies (:meth:`BlipProtocol.stream_response`): the body of the reply to one of our
requests goes to a sink frame by frame instead of being buffered, with its own cap; only its
properties are kept (:class:`~couchlite.blip.incoming.StreamIn`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from couchlite._tuning import (
    BLIP_ACK_THRESHOLD,
    BLIP_BIG_FRAME_SIZE,
    BLIP_COMPRESSION_LEVEL,
    BLIP_MAX_ABANDONED_REPLIES,
    BLIP_MAX_BUFFERED_BYTES,
    BLIP_MAX_INCOMING_MESSAGES,
    BLIP_MAX_MESSAGE_SIZE,
    BLIP_MAX_PROPERTIES_SIZE,
    BLIP_MAX_UNACKED_BYTES,
    BLIP_SMALL_FRAME_SIZE,
)
from couchlite.blip.codec import (
    MIN_FRAME_SIZE,
    FrameEncoder,
    OutgoingPayload,
)
from couchlite.blip.errors import (
    BlipError,
)
from couchlite.blip.incoming import BodySink
from couchlite.blip.message import (
    FLAG_COMPRESSED,
    FLAG_NO_REPLY,
    FLAG_URGENT,
    TYPE_ERROR,
    TYPE_MASK,
    TYPE_REQUEST,
    TYPE_RESPONSE,
    Message,
    encode_properties,
)
from couchlite.blip.receiving import Receiver
from couchlite.blip.varint import encode_varint
from couchlite.errors import InvalidArgumentError

Properties = Mapping[str, str] | Iterable[tuple[str, str]]
Body = bytes | bytearray | memoryview
#: An allowance that never binds (the codec still caps each frame at BLIP_MAX_INFLATED_FRAME_SIZE).
_UNBOUNDED = 1 << 62


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
        max_message_size: int | None = BLIP_MAX_MESSAGE_SIZE,
        max_buffered_bytes: int | None = BLIP_MAX_BUFFERED_BYTES,
        max_incoming_messages: int | None = BLIP_MAX_INCOMING_MESSAGES,
        strict_numbering: bool = True,
        standard_zlib: bool = False,
    ) -> None:
        if not -1 <= compression_level <= 9:
            raise InvalidArgumentError(f"compression_level must be -1..9, not {compression_level}")
        if frame_size < MIN_FRAME_SIZE:
            raise InvalidArgumentError(f"frame_size must be at least {MIN_FRAME_SIZE}")
        if ack_threshold < 1 or max_unacked_bytes < 1 or max_properties_size < 0:
            raise InvalidArgumentError("ack_threshold and max_unacked_bytes must be positive")
        for name, value in (
            ("max_message_size", max_message_size),
            ("max_buffered_bytes", max_buffered_bytes),
            ("max_incoming_messages", max_incoming_messages),
        ):
            if value is not None and (type(value) is not int or value < 1):
                raise InvalidArgumentError(f"{name} must be a positive int or None, not {value!r}")
        self._compression_enabled = compression_level != 0
        self._frame_size = frame_size
        self._small_frame_size = min(BLIP_SMALL_FRAME_SIZE, frame_size)
        self._max_unacked = max_unacked_bytes
        self._max_properties_size = max_properties_size
        self._max_message_size = max_message_size
        #: max_message_size as a plain int, for the hot paths (no None test per frame).
        message_limit = _UNBOUNDED if max_message_size is None else max_message_size

        self._encoder = FrameEncoder(compression_level, standard_zlib=standard_zlib)
        self._error: BlipError | None = None

        self._next_request_number = 1
        # Keyed by message, in order: a newer ACK of a message replaces a queued one (its byte
        # count is cumulative), so a peer that does not read cannot grow this beyond one ACK
        # per message in progress.
        self._acks: dict[tuple[int, int], bytes] = {}
        self._outbox: deque[_OutMessage] = deque()
        self._icebox: dict[tuple[bool, int], _OutMessage] = {}
        self._outgoing: dict[tuple[bool, int], _OutMessage] = {}
        #: Our requests expecting a reply, and incoming requests we owe one: both halves
        #: update them.
        self._awaiting_response: set[int] = set()
        self._awaiting_reply: set[int] = set()
        #: Requests whose sender gave up on the reply, oldest first (see abandon_response).
        self._abandoned: deque[int] = deque()
        self._stats = {name: 0 for name in BlipStatistics.__dataclass_fields__}
        self._receiver = Receiver(
            ack_threshold=ack_threshold,
            max_properties_size=max_properties_size,
            message_limit=message_limit,
            # A single maximum-size message must always fit, whatever max_buffered_bytes says.
            max_buffered=_UNBOUNDED
            if max_buffered_bytes is None
            else max(max_buffered_bytes, message_limit),
            max_incoming=_UNBOUNDED if max_incoming_messages is None else max_incoming_messages,
            strict_numbering=strict_numbering,
            awaiting_response=self._awaiting_response,
            awaiting_reply=self._awaiting_reply,
            acks=self._acks,
            on_ack=self._received_ack,
            stats=self._stats,
        )

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

    @property
    def sendable_messages(self) -> int:
        """Outgoing messages :meth:`next_frame` can make progress on without an ACK."""
        return len(self._outbox)

    @property
    def buffered_bytes(self) -> int:
        """Bytes held in partially received incoming messages (streamed replies excluded)."""
        return self._receiver.buffered

    @property
    def incoming_in_progress(self) -> int:
        """Incoming requests and replies partially received."""
        return self._receiver.in_progress

    def is_awaiting_response(self, request_number: int) -> bool:
        """Whether our request ``request_number`` still expects a reply from the peer."""
        return request_number in self._awaiting_response

    def statistics(self) -> BlipStatistics:
        return BlipStatistics(**self._stats)

    def abandon_response(self, request_number: int) -> None:
        """Our caller no longer wants the reply to ``request_number`` (timed out, cancelled).

        A late reply is still accepted (and its streamed body still goes to its sink, which
        the caller may have made a no-op), so a slow peer does not lose the connection. But a
        peer that never answers must not make us remember every request we gave up on: beyond
        ``BLIP_MAX_ABANDONED_REPLIES`` the oldest are forgotten, and a reply to one of those is
        then a protocol error, as for any request we never sent.
        """
        if request_number not in self._awaiting_response:
            return
        abandoned = self._abandoned
        abandoned.append(request_number)
        if len(abandoned) > BLIP_MAX_ABANDONED_REPLIES:
            oldest = abandoned.popleft()
            receiver = self._receiver
            if not receiver.is_receiving_response(oldest):  # a reply being received finishes
                self._awaiting_response.discard(oldest)
                receiver.streams.pop(oldest, None)

    def stream_response(self, request_number: int, max_size: int, sink: BodySink) -> None:
        """Have the reply to our request ``request_number`` streamed instead of buffered.

        Call it right after :meth:`send_request`, before feeding any further frame. The reply's
        body bytes then go to ``sink`` as each frame is decoded (a view valid only during the
        call: copy or write it out before returning; ``sink`` must not raise), and the
        :class:`Message` that :meth:`receive_frame` returns at the end carries the reply's
        properties with an empty body. More than ``max_size`` body bytes is fatal
        (:class:`BlipLimitExceeded`, close code 1009) and ``sink`` never sees the excess; this
        cap replaces ``max_message_size`` for that reply, and the reply does not count towards
        ``max_buffered_bytes``. An ``ERR`` reply is not streamed: its message arrives buffered,
        as usual.
        """
        self._check_usable()
        if type(max_size) is not int or max_size < 0:
            raise InvalidArgumentError(f"max_size must be an int >= 0, not {max_size!r}")
        self._receiver.stream(request_number, max_size, sink)

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
        acks = self._acks
        if acks:
            frame = acks.pop(next(iter(acks)))
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
            return self._receiver.receive(
                memoryview(data) if type(data) is bytes else _as_bytes_view(data)
            )
        except BlipError as exc:
            self._error = exc
            raise

    def _received_ack(self, for_response: bool, number: int, byte_count: int) -> None:
        msg = self._outgoing.get((for_response, number))
        if msg is None:
            return  # late ACK for a finished message, or nonsense: harmless either way
        if byte_count <= msg.bytes_sent:
            msg.unacked = min(msg.unacked, msg.bytes_sent - byte_count)
        if msg.key in self._icebox and msg.unacked < self._max_unacked:
            del self._icebox[msg.key]
            self._requeue(msg)
