"""Hand-written BLIP frames for tests that play a hostile peer."""

from __future__ import annotations

import zlib

from couchlite.blip.codec import SYNC_FLUSH_TAIL
from couchlite.blip.message import FLAG_COMPRESSED
from couchlite.blip.varint import encode_varint


class Forger:
    """A peer that writes frames by hand: running CRC and one shared deflate stream, as a real
    sender has, but with whatever flags, numbers and payloads a test wants, so that only what
    the test chooses is hostile."""

    def __init__(self) -> None:
        self.crc = 0
        self.deflater = zlib.compressobj(9, zlib.DEFLATED, -15, 9)

    def frame(self, number: int, flags: int, data: bytes) -> bytes:
        self.crc = zlib.crc32(data, self.crc)
        payload = data
        if flags & FLAG_COMPRESSED:
            out = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
            assert out.endswith(SYNC_FLUSH_TAIL)
            payload = out[:-4]
        return encode_varint(number) + bytes((flags,)) + payload + self.crc.to_bytes(4, "big")
