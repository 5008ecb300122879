"""Messages as the connection would deliver them, built from what the protocol core sends."""

from __future__ import annotations

from couchlite.blip import FrameFlags, Message, MessageType
from couchlite.replicator.protocol.wire import Outgoing


def received(out: Outgoing, number: int = 1) -> Message:
    """``out`` as the peer receives it (same properties, body and flags)."""
    flags = FrameFlags(0)
    if out.urgent:
        flags |= FrameFlags.URGENT
    if out.compressed:
        flags |= FrameFlags.COMPRESSED
    if out.no_reply:
        flags |= FrameFlags.NO_REPLY
    return Message(MessageType.REQUEST, number, flags, dict(out.properties), out.body)


def request(properties: dict[str, str], body: bytes = b"", *, no_reply: bool = False) -> Message:
    flags = FrameFlags.NO_REPLY if no_reply else FrameFlags(0)
    return Message(MessageType.REQUEST, 1, flags, properties, body)


def reply(properties: dict[str, str], body: bytes) -> Message:
    return Message(MessageType.RESPONSE, 1, FrameFlags(0), properties, body)
