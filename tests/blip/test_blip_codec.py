"""Varints, properties and the frame codec on their own (notes §2.2-§2.5)."""

from __future__ import annotations

import os
import zlib

import pytest

from couchlite._tuning import BLIP_COMPRESSION_LEVEL
from couchlite.blip import BlipError, FrameDecoder, FrameEncoder, decode_varint, encode_varint
from couchlite.blip.codec import OutgoingPayload, parse_frame_header
from couchlite.blip.message import decode_properties, encode_properties
from couchlite.blip.varint import try_decode_varint


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (2**64 - 1, b"\xff" * 9 + b"\x01"),
    ],
)
def test_varint_known_encodings(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))


def test_varint_rejects_overflow_overlength_and_negative() -> None:
    with pytest.raises(BlipError, match="overflows"):
        decode_varint(b"\xff" * 9 + b"\x02")
    with pytest.raises(BlipError, match="10 bytes"):
        decode_varint(b"\x80" * 10 + b"\x00")
    with pytest.raises(ValueError):
        encode_varint(-1)
    assert try_decode_varint(b"\x80\x80") is None
    assert try_decode_varint(b"\x80\x01rest") == (128, 2)


def test_properties_encoding_is_key_nul_value_nul() -> None:
    assert encode_properties({}, 10) == b"\x00"
    assert (
        encode_properties([("Profile", "x"), ("a", "é")], 100)
        == b"\x0fProfile\x00x\x00a\x00\xc3\xa9\x00"
    )
    assert decode_properties(b"Profile\x00x\x00a\x00\xc3\xa9\x00") == {"Profile": "x", "a": "é"}


def _round_trip(chunks: list[tuple[bytes, bool]], budget: int, level: int = 6) -> list[bytes]:
    enc, dec = FrameEncoder(level), FrameDecoder()
    frames = []
    for data, compressed in chunks:
        payload = OutgoingPayload(b"", memoryview(data))
        out = b""
        more = True
        while more:
            frame, more = enc.encode(1, 0x08 if compressed else 0, payload, budget)
            assert len(frame) <= budget
            frames.append(frame)
            out += dec.decode(parse_frame_header(frame), frame)
        assert out == data
    assert enc.checksum == dec.checksum
    return frames


@pytest.mark.parametrize("level", range(-1, 10))
@pytest.mark.parametrize("budget", [64, 200, 4096, 16384])
def test_frames_never_exceed_budget_even_for_incompressible_data(budget: int, level: int) -> None:
    # level 1 is zlib-ng's quick strategy, which expands random bytes by an eighth; bytes of
    # 144 and above take 9 bits each in its fixed code: its worst case
    data = os.urandom(70_000)
    worst = bytes(144 + b % 112 for b in os.urandom(30_000))
    chunks = [(data, True), (data, False), (worst, True), (b"z" * 100_000, True)]
    frames = _round_trip(chunks, budget, level)
    assert len(frames) > 4


@pytest.mark.parametrize("level", [1, 6])
def test_small_incompressible_messages_fit_their_only_frame(level: int) -> None:
    enc, dec = FrameEncoder(level), FrameDecoder()
    for size in range(0, 3000, 7):
        body = os.urandom(size)
        frame = enc.encode_whole(3, 0x08, b"\x00", memoryview(body), 1024)
        if frame is None:  # may not fit: the general path splits it
            assert size > 800
            continue
        assert len(frame) <= 1024
        assert dec.decode(parse_frame_header(frame), frame) == b"\x00" + body


def test_compressed_frames_inflate_with_the_standard_zlib() -> None:
    """Peers inflate with zlib (LiteCore does): our shared stream must be plain raw deflate."""
    enc = FrameEncoder(BLIP_COMPRESSION_LEVEL)
    inflater = zlib.decompressobj(-15)
    crc = 0
    for i in range(300):
        body = b'{"n":%d,"text":"%s"}' % (i, b"lorem ipsum " * (i % 40))
        frame = enc.encode_whole(i + 1, 0x08, b"\x00", memoryview(body), 16384)
        assert frame is not None
        header = parse_frame_header(frame)
        data = inflater.decompress(frame[header.header_len : -4] + b"\0\0\xff\xff")
        assert data == b"\x00" + body
        crc = zlib.crc32(data, crc)
        assert int.from_bytes(frame[-4:], "big") == crc


def test_compressed_frame_carries_at_most_eight_budgets_of_input() -> None:
    enc = FrameEncoder(6)
    payload = OutgoingPayload(b"", memoryview(bytes(1_000_000)))
    frame, more = enc.encode(1, 0x08, payload, 16384)
    assert more and payload.remaining == 1_000_000 - 8 * 16384
    assert zlib.decompressobj(-15).decompress(frame[2:-4] + b"\0\0\xff\xff") == bytes(8 * 16384)


def test_running_crc_spans_frames_and_messages() -> None:
    enc = FrameEncoder(6)
    a = enc.encode(1, 0, OutgoingPayload(b"\x00", memoryview(b"abc")), 100)[0]
    b = enc.encode(2, 0x08, OutgoingPayload(b"\x00", memoryview(b"def")), 100)[0]
    assert int.from_bytes(a[-4:], "big") == zlib.crc32(b"\x00abc")
    assert int.from_bytes(b[-4:], "big") == zlib.crc32(b"\x00def", zlib.crc32(b"\x00abc"))
