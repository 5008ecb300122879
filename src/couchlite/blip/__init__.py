"""BLIP v3, sans I/O: bytes in, messages out; calls in, frames out (notes §2).

Modules: :mod:`.varint` (LEB128), :mod:`.message` (message model, properties codec),
:mod:`.codec` (frames, running CRC, shared deflate streams), :mod:`.protocol` (the connection
state machine: out-box multiplexing, numbering, ACK flow control), :mod:`.receiving` (its
receiving half: one path for every incoming frame, numbering and limits), :mod:`.incoming`
(messages still arriving, buffered or streamed), :mod:`.dump` (a command-line decoder for
interop recordings).
"""

from __future__ import annotations

from couchlite.blip.codec import FrameDecoder, FrameEncoder, FrameHeader, parse_frame_header
from couchlite.blip.errors import BlipError, BlipErrorReply, BlipLimitExceeded, BlipMessageError
from couchlite.blip.message import TYPE_MASK, FrameFlags, Message, MessageType
from couchlite.blip.protocol import BlipProtocol, BlipStatistics
from couchlite.blip.varint import decode_varint, encode_varint

__all__ = [
    "TYPE_MASK",
    "BlipError",
    "BlipErrorReply",
    "BlipLimitExceeded",
    "BlipMessageError",
    "BlipProtocol",
    "BlipStatistics",
    "FrameDecoder",
    "FrameEncoder",
    "FrameFlags",
    "FrameHeader",
    "Message",
    "MessageType",
    "decode_varint",
    "encode_varint",
    "parse_frame_header",
]
