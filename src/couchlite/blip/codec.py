"""BLIP frame codec: headers, running checksums and the shared deflate streams (notes §2.3-§2.5).

Theory of operation
-------------------
A frame is ``uvarint(msgno) || uvarint(flags) || payload || crc32_be`` (§2.3); ACK frames carry
no CRC (§2.7). Each direction of a connection owns exactly one codec object here:

* :class:`FrameEncoder` (outgoing) holds one raw-deflate compressor (level, windowBits -15,
  memLevel 9) shared by every compressed frame of every message, and the running CRC32 (§2.4)
  updated with the *uncompressed* bytes of every non-ACK frame before compression.
* :class:`FrameDecoder` (incoming) holds the matching raw-deflate decompressor and running CRC,
  updated *after* inflation.

Compressed frames (§2.5): the chunk is compressed and sync-flushed; the final ``00 00 FF FF`` of
the flush is stripped and the receiver appends it back before inflating. Because deflate output
size is unknown in advance, the encoder fills a frame in *pieces*: each piece is small enough that
even incompressible data (stored blocks) cannot overflow the room left, and each piece is
sync-flushed so the running output size is exact. A single piece for a small message gives the
same bytes as LiteCore (interop README, re-compression check); large frames contain interior
sync markers, which every inflater handles (interop fact 11).

Since the shared streams are stateful, frames must be encoded and decoded in wire order, and a
decoding error leaves the decoder unusable: every error raised here is fatal.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from couchlite._tuning import BLIP_MAX_INFLATED_FRAME_SIZE, BLIP_MAX_INPUT_PER_FRAME_FACTOR
from couchlite.blip.errors import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_PROTOCOL_ERROR,
    BlipError,
    BlipLimitExceeded,
)
from couchlite.blip.message import (
    FLAG_COMPRESSED,
    FLAG_MORE_COMING,
    FLAG_NO_REPLY,
    FLAG_URGENT,
    FRAME_FLAGS,
    MESSAGE_TYPES,
    TYPE_MASK,
    FrameFlags,
    MessageType,
)
from couchlite.blip.varint import decode_varint, encode_varint

try:
    # zlib-ng: the same deflate format, with a "quick" level 1 that sync-flushes a small message
    # in a fifth of zlib's time (a flush per frame dominates what small revisions cost).
    from zlib_ng import zlib_ng as deflate
except ImportError:  # pragma: no cover - a platform zlib-ng has no build for
    import zlib as deflate  # type: ignore[no-redef]

CHECKSUM_SIZE = 4
SYNC_FLUSH_TAIL = b"\x00\x00\xff\xff"
SYNC_FLUSH = deflate.Z_SYNC_FLUSH
#: Flags bytes, prebuilt (flags stay below 0x80, so they are always one varint byte).
_BYTE = tuple(bytes((i,)) for i in range(0x80))

#: LiteCore keeps adding compressed pieces to a frame while at least this much room is left.
MIN_PIECE_ROOM = 1024
#: The smallest frame budget we can always make progress with (header + CRC + a deflate piece).
MIN_FRAME_SIZE = 64

_ACK_TYPES = frozenset({MessageType.ACK_REQUEST, MessageType.ACK_RESPONSE})


@dataclass(slots=True)  # not frozen: one per frame, and frozen costs 5x to make
class FrameHeader:
    """The decoded header of one frame."""

    number: int
    raw_flags: int
    header_len: int

    @property
    def type_code(self) -> int:
        return self.raw_flags & TYPE_MASK

    @property
    def type(self) -> MessageType | None:
        """The message type, or None for the undefined types 3, 6 and 7."""
        return MESSAGE_TYPES.get(self.raw_flags & TYPE_MASK)

    @property
    def flags(self) -> FrameFlags:
        """The known flag bits (reserved bits are dropped, notes §2.3)."""
        return FRAME_FLAGS[(self.raw_flags & 0x78) >> 3]

    @property
    def is_ack(self) -> bool:
        return self.type in _ACK_TYPES

    @property
    def more_coming(self) -> bool:
        return bool(self.raw_flags & FLAG_MORE_COMING)


def parse_frame_header(data: bytes | bytearray | memoryview) -> FrameHeader:
    """Parse the two varints that open every frame."""
    number, pos = decode_varint(data, 0)
    flags, pos = decode_varint(data, pos)
    return FrameHeader(number, flags, pos)


def encode_ack_frame(number: int, ack_type: MessageType, byte_count: int) -> bytes:
    """An ACK frame (§2.7): urgent, no-reply, payload = varint byte count, no CRC."""
    flags = int(ack_type) | FLAG_URGENT | FLAG_NO_REPLY
    return encode_varint(number) + encode_varint(flags) + encode_varint(byte_count)


def decode_ack_payload(header: FrameHeader, data: bytes | bytearray | memoryview) -> int:
    """The byte count an ACK frame acknowledges."""
    count, _ = decode_varint(data, header.header_len)
    return count


class OutgoingPayload:
    """The bytes of one outgoing message, consumed front to back without copying the body.

    The small prefix (properties length + properties) and the caller's body are kept apart so
    the body is only ever sliced as memoryviews, never concatenated with the prefix.
    """

    __slots__ = ("_body", "_body_offset", "_prefix", "_prefix_offset", "total")

    def __init__(self, prefix: bytes, body: memoryview) -> None:
        self._prefix = prefix
        self._body = body
        self._prefix_offset = 0
        self._body_offset = 0
        self.total = len(prefix) + len(body)

    @property
    def remaining(self) -> int:
        return (len(self._prefix) - self._prefix_offset) + (len(self._body) - self._body_offset)

    @property
    def started(self) -> bool:
        return self._prefix_offset > 0

    def take(self, limit: int) -> list[memoryview]:
        """Up to ``limit`` next bytes, as one or two views."""
        views: list[memoryview] = []
        if self._prefix_offset < len(self._prefix) and limit > 0:
            end = min(len(self._prefix), self._prefix_offset + limit)
            views.append(memoryview(self._prefix)[self._prefix_offset : end])
            limit -= end - self._prefix_offset
            self._prefix_offset = end
        if self._body_offset < len(self._body) and limit > 0:
            end = min(len(self._body), self._body_offset + limit)
            views.append(self._body[self._body_offset : end])
            self._body_offset = end
        if not self.remaining:
            # Drop the caller's buffer as soon as it is fully sent.
            self._body = memoryview(b"")
            self._body_offset = 0
        return views


def _too_big(allowance: int) -> BlipLimitExceeded:
    return BlipLimitExceeded(
        f"frame payload exceeds the {allowance} bytes allowed", limit="frame", maximum=allowance
    )


def _overflow() -> BlipError:
    return BlipError(
        "compression buffer overflow", close_code=CLOSE_INTERNAL_ERROR, is_remote_fault=False
    )


class FrameEncoder:
    """The outgoing half of a connection's codec: running CRC and the shared compressor."""

    def __init__(self, compression_level: int, *, standard_zlib: bool = False) -> None:
        """``standard_zlib``: compress with the standard library's zlib (byte for byte what
        LiteCore's zlib gives at the same level) instead of zlib-ng."""
        library = zlib if standard_zlib else deflate
        self._deflater = library.compressobj(compression_level, library.DEFLATED, -15, 9)
        # zlib-ng's level 1 ("quick") never falls back to stored blocks (see _max_piece)
        self._quick = library is not zlib and compression_level == 1
        self.checksum = 0

    def encode(
        self, number: int, flags: int, payload: OutgoingPayload, budget: int
    ) -> tuple[bytes, bool]:
        """Encode the next frame of ``payload`` within ``budget`` bytes (header and CRC included).

        ``flags`` is the message's flags without MORE_COMING. Returns the frame and whether the
        message has more frames to send.
        """
        # Flags stay below 0x80, so the header size does not depend on MORE_COMING.
        header_len = len(encode_varint(number)) + 1
        room = budget - header_len - CHECKSUM_SIZE
        parts: list[bytes] | list[memoryview]
        if flags & FLAG_COMPRESSED:
            parts = [self._compress(payload, room, budget * BLIP_MAX_INPUT_PER_FRAME_FACTOR)]
        else:
            # The views go straight into the frame's single join: one copy of the body.
            parts = payload.take(room)
            crc = self.checksum
            for view in parts:
                crc = deflate.crc32(view, crc)
            self.checksum = crc
        more = payload.remaining > 0
        if more:
            flags |= FLAG_MORE_COMING
        frame = b"".join(
            (encode_varint(number), _BYTE[flags], *parts, self.checksum.to_bytes(4, "big"))
        )
        return frame, more

    def encode_whole(
        self, number: int, flags: int, prefix: bytes, body: memoryview, budget: int
    ) -> bytes | None:
        """The only frame of a message ``prefix + body``, or None if it may not fit in one.

        The fast path for small messages: no :class:`OutgoingPayload`, no intermediate views,
        one join. Gives exactly the bytes :meth:`encode` would (None leaves all state as is).
        """
        size = len(prefix) + len(body)
        head = encode_varint(number)
        room = budget - len(head) - 1 - CHECKSUM_SIZE
        if flags & FLAG_COMPRESSED:
            # The bound of the first piece in _compress: guaranteed to fit when it is all.
            if size > min(_max_piece(room, self._quick), budget * BLIP_MAX_INPUT_PER_FRAME_FACTOR):
                return None
            # One input, so two calls into the deflater: each releases the GIL, and getting
            # it back can wait for another thread's switch interval (milliseconds)
            data = prefix + body
            crc = deflate.crc32(data, self.checksum)
            deflater = self._deflater
            compressed = deflater.compress(data) + deflater.flush(SYNC_FLUSH)
            self.checksum = crc
            if not compressed.endswith(SYNC_FLUSH_TAIL) or len(compressed) - 4 > room:
                raise _overflow()
            return b"".join((head, _BYTE[flags], compressed[:-4], crc.to_bytes(4, "big")))
        if size > room:
            return None
        crc = self.checksum = deflate.crc32(body, deflate.crc32(prefix, self.checksum))
        return b"".join((head, _BYTE[flags], prefix, body, crc.to_bytes(4, "big")))

    def _compress(self, payload: OutgoingPayload, room: int, max_input: int) -> bytes:
        out: list[bytes] = []
        used = 0
        consumed = 0
        crc = self.checksum
        while payload.remaining and consumed < max_input:
            left = room - used
            if out and left < MIN_PIECE_ROOM:
                break
            piece = min(_max_piece(left, self._quick), max_input - consumed)
            if piece <= 0:
                break
            for view in payload.take(piece):
                crc = deflate.crc32(view, crc)
                consumed += len(view)
                data = self._deflater.compress(view)
                if data:
                    out.append(data)
                    used += len(data)
            data = self._deflater.flush(SYNC_FLUSH)
            out.append(data)
            used += len(data)
        self.checksum = crc
        compressed = b"".join(out)
        if not compressed.endswith(SYNC_FLUSH_TAIL) or len(compressed) - 4 > room:
            raise _overflow()
        return compressed[:-4]


def _max_piece(room: int, quick: bool) -> int:
    """The most input whose sync-flushed deflate output always fits in ``room`` bytes.

    Worst case for incompressible input: stored blocks (5 bytes each, at most one per 8 KiB
    here) plus the 5-byte empty block of the flush. ``quick``: zlib-ng's level 1, which never
    falls back to stored blocks and spends 9 bits on each literal above 143, so a piece may
    come out an eighth larger than it went in.
    """
    bound = room - 16 - 5 * (room // 8192 + 1)
    return bound * 8 // 9 if quick else bound


class FrameDecoder:
    """The incoming half of a connection's codec: running CRC and the shared decompressor."""

    def __init__(self) -> None:
        self._inflater = deflate.decompressobj(-15)
        self.checksum = 0

    def decode(
        self,
        header: FrameHeader,
        frame: bytes | bytearray | memoryview,
        max_inflated: int = BLIP_MAX_INFLATED_FRAME_SIZE,
    ) -> bytes:
        """Return the message bytes a non-ACK frame carries, after inflating and checking its CRC.

        ``max_inflated`` bounds the uncompressed size (the caller passes what is left of its
        message-size allowance); exceeding it raises :class:`BlipLimitExceeded` (close code
        1009) before more than ``max_inflated + 1`` bytes were ever inflated.
        """
        compressed = header.raw_flags & FLAG_COMPRESSED != 0
        view = memoryview(frame)
        return bytes(self.decode_payload(compressed, view, header.header_len, max_inflated))

    def decode_payload(
        self, compressed: bool, view: memoryview, start: int, max_inflated: int
    ) -> bytes | memoryview:
        """:meth:`decode` for a frame whose header (``start`` bytes) the caller has parsed.

        An uncompressed payload comes back as a view into ``view`` (no copy): the caller copies
        what it keeps.
        """
        end = len(view) - CHECKSUM_SIZE
        if end < start:
            raise BlipError("frame too short for its checksum", close_code=CLOSE_PROTOCOL_ERROR)
        expected = int.from_bytes(view[end:], "big")
        data: bytes | memoryview
        if compressed:
            data = self._inflate(view[start:end], max_inflated)
        else:
            if end - start > max_inflated:
                raise _too_big(max_inflated)
            data = view[start:end]
        crc = self.checksum = deflate.crc32(data, self.checksum)
        if crc != expected:
            raise BlipError("invalid checksum", close_code=CLOSE_INTERNAL_ERROR)
        return data

    def _inflate(self, payload: memoryview, limit: int) -> bytes:
        limit = min(limit, BLIP_MAX_INFLATED_FRAME_SIZE)
        # max_length stops inflation one byte past the allowance, so a decompression bomb costs
        # at most the allowance in memory before it is refused.
        try:
            data = self._inflater.decompress(bytes(payload) + SYNC_FLUSH_TAIL, limit + 1)
        except deflate.error as exc:  # type: ignore[misc]
            raise BlipError(
                f"corrupt compressed frame: {exc}", close_code=CLOSE_INTERNAL_ERROR
            ) from exc
        if len(data) > limit:
            raise _too_big(limit)
        if self._inflater.eof or self._inflater.unconsumed_tail:
            # A final deflate block would end the shared stream, breaking every later frame.
            raise BlipError(
                "corrupt compressed frame: stream ended", close_code=CLOSE_INTERNAL_ERROR
            )
        return data
