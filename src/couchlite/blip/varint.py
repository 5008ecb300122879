"""LEB128 unsigned varints, as BLIP writes message numbers, flags and lengths (notes §2.2, §2.3).

Seven bits per byte, least significant group first, high bit set on every byte but the last.
Values are limited to 64 bits, hence at most 10 bytes; anything longer, or a value that overflows
64 bits in its tenth byte, is malformed. Decoding errors are fatal :class:`BlipError` (close code
1002) because a varint is always part of framing.
"""

from __future__ import annotations

from couchlite.blip.errors import CLOSE_PROTOCOL_ERROR, BlipError

MAX_VARINT_LEN = 10
MAX_VARINT_VALUE = (1 << 64) - 1


#: Every one-byte varint, prebuilt: message numbers, flags and property lengths are almost always
#: below 128, and a table lookup is several times cheaper than building a bytes object.
_ONE_BYTE = tuple(bytes((i,)) for i in range(0x80))


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer below 2**64."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    # Message numbers keep growing over a connection's life: two and three bytes unrolled.
    if 0x80 <= value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if 0x4000 <= value < 0x200000:
        return bytes(((value & 0x7F) | 0x80, ((value >> 7) & 0x7F) | 0x80, value >> 14))
    if value < 0 or value > MAX_VARINT_VALUE:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode the varint at ``offset``; return ``(value, offset just after it)``."""
    # Up to three bytes without the loop; anything else (longer, truncated, malformed) takes
    # the general path below, which also produces the errors.
    if 0 <= offset < len(data) - 2:
        b0 = data[offset]
        if b0 < 0x80:
            return b0, offset + 1
        b1 = data[offset + 1]
        if b1 < 0x80:
            return (b0 & 0x7F) | (b1 << 7), offset + 2
        b2 = data[offset + 2]
        if b2 < 0x80:
            return (b0 & 0x7F) | ((b1 & 0x7F) << 7) | (b2 << 14), offset + 3
    elif offset < len(data) and data[offset] < 0x80:
        return data[offset], offset + 1
    value = 0
    shift = 0
    end = len(data)
    pos = offset
    while True:
        if pos >= end:
            raise BlipError("truncated varint", close_code=CLOSE_PROTOCOL_ERROR)
        if pos - offset >= MAX_VARINT_LEN:
            raise BlipError("varint longer than 10 bytes", close_code=CLOSE_PROTOCOL_ERROR)
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    if value > MAX_VARINT_VALUE:
        raise BlipError("varint overflows 64 bits", close_code=CLOSE_PROTOCOL_ERROR)
    return value, pos


def try_decode_varint(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """Like :func:`decode_varint` at offset 0, but return None while ``data`` is too short.

    Used on the first bytes of a message whose properties length may straddle two frames.
    """
    for i in range(min(len(data), MAX_VARINT_LEN)):
        if not data[i] & 0x80:
            return decode_varint(data, 0)
    if len(data) >= MAX_VARINT_LEN:
        raise BlipError("varint longer than 10 bytes", close_code=CLOSE_PROTOCOL_ERROR)
    return None
