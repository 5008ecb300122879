"""BLIP message model and the properties codec (notes §2.1, §2.2, §2.8).

A message is an ordered set of string properties plus an opaque body. On the wire (before
framing, compression and checksums, which live in :mod:`couchlite.blip.codec`)::

    message := uvarint(len(props)) || props || body
    props   := (key NUL value NUL)*

Properties are validated strictly both ways: UTF-8, no NUL inside a key or value, an even number
of NULs with a final NUL, and a size limit (LiteCore's ``kMaxPropertiesSize``). Violations by the
peer are fatal (close code 1002); violations by our own caller raise ``BlipError`` with
``is_remote_fault=False`` before anything is queued.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from itertools import chain
from typing import Any

import orjson

from couchlite.blip.errors import CLOSE_PROTOCOL_ERROR, BlipError, BlipMessageError
from couchlite.blip.varint import encode_varint


class MessageType(IntEnum):
    """The 3-bit type field of a frame's flags; 3, 6 and 7 are undefined."""

    REQUEST = 0
    RESPONSE = 1
    ERROR = 2
    ACK_REQUEST = 4
    ACK_RESPONSE = 5

    @property
    def wire_name(self) -> str:
        """The name BLIP tools print: MSG, RPY, ERR, ACKMSG, ACKRPY."""
        return _WIRE_NAMES[self]


_WIRE_NAMES = {
    MessageType.REQUEST: "MSG",
    MessageType.RESPONSE: "RPY",
    MessageType.ERROR: "ERR",
    MessageType.ACK_REQUEST: "ACKMSG",
    MessageType.ACK_RESPONSE: "ACKRPY",
}


class FrameFlags(IntFlag):
    """Flag bits of a frame header (the low three bits are the :class:`MessageType`)."""

    COMPRESSED = 0x08
    URGENT = 0x10
    NO_REPLY = 0x20
    MORE_COMING = 0x40


TYPE_MASK = 0x07

# The same bits as plain ints, for the per-frame hot paths: every operation on an ``IntFlag`` or
# ``IntEnum`` goes through Python-level ``enum`` code (``__and__``, ``__call__``), about a
# third of the cost of a small message. The enums remain the public face.
TYPE_REQUEST = 0
TYPE_RESPONSE = 1
TYPE_ERROR = 2
TYPE_ACK_REQUEST = 4
TYPE_ACK_RESPONSE = 5
FLAG_COMPRESSED = 0x08
FLAG_URGENT = 0x10
FLAG_NO_REPLY = 0x20
FLAG_MORE_COMING = 0x40
#: The flag bits this implementation understands; others are reserved and ignored (notes §2.3).
KNOWN_FLAGS = (
    FrameFlags.COMPRESSED | FrameFlags.URGENT | FrameFlags.NO_REPLY | FrameFlags.MORE_COMING
)

#: Names used by the interop recordings and the dump tool, in bit order.
FLAG_NAMES: tuple[tuple[FrameFlags, str], ...] = (
    (FrameFlags.COMPRESSED, "compressed"),
    (FrameFlags.URGENT, "urgent"),
    (FrameFlags.NO_REPLY, "noreply"),
    (FrameFlags.MORE_COMING, "moreComing"),
)


#: ``MessageType`` by type code (undefined codes absent), built once instead of per frame.
MESSAGE_TYPES: dict[int, MessageType] = {int(t): t for t in MessageType}
#: ``FrameFlags`` for every combination of the known bits, indexed by ``bits >> 3``.
FRAME_FLAGS: tuple[FrameFlags, ...] = tuple(FrameFlags(i << 3) for i in range(16))


def flag_names(flags: int) -> list[str]:
    """The names of the flag bits set in ``flags``."""
    return [name for bit, name in FLAG_NAMES if flags & bit]


@dataclass(slots=True)  # not frozen: one per message, and frozen costs 5x to make
class Message:
    """A complete message, as received (or decoded by the dump tool)."""

    type: MessageType
    number: int
    flags: FrameFlags
    properties: dict[str, str]
    body: bytes
    #: How many frames carried it (informational; ignored by ==).
    frame_count: int = field(default=1, compare=False)

    @property
    def profile(self) -> str | None:
        return self.properties.get("Profile")

    # int.__and__ skips IntFlag.__and__ (and the FrameFlags it would construct): these are
    # read for every message the connection dispatches.

    @property
    def urgent(self) -> bool:
        return int.__and__(self.flags, FLAG_URGENT) != 0

    @property
    def compressed(self) -> bool:
        return int.__and__(self.flags, FLAG_COMPRESSED) != 0

    @property
    def no_reply(self) -> bool:
        return int.__and__(self.flags, FLAG_NO_REPLY) != 0

    @property
    def is_request(self) -> bool:
        return self.type is MessageType.REQUEST

    @property
    def is_error(self) -> bool:
        return self.type is MessageType.ERROR

    @property
    def error_domain(self) -> str | None:
        """``Error-Domain`` of an ERR message; BLIP's default ``"BLIP"`` when absent."""
        if not self.is_error:
            return None
        return self.properties.get("Error-Domain") or "BLIP"

    @property
    def error_code(self) -> int | None:
        """``Error-Code`` of an ERR message, or None when absent or not an integer."""
        if not self.is_error:
            return None
        try:
            return int(self.properties.get("Error-Code", ""))
        except ValueError:
            return None

    @property
    def error_message(self) -> str:
        """The body of an ERR message as text (empty for other messages)."""
        if not self.is_error:
            return ""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise BlipMessageError(
                f"{self.type.wire_name} #{self.number} body is not valid JSON: {exc}"
            ) from exc

    def bool_property(self, name: str, default: bool = False) -> bool:
        """Read a boolean property the way LiteCore does (notes §2.2): true/YES, false/NO, int."""
        value = self.properties.get(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in ("true", "yes"):
            return True
        if lowered in ("false", "no"):
            return False
        try:
            return int(lowered) != 0
        except ValueError:
            return default

    def int_property(self, name: str, default: int | None = None) -> int | None:
        """A decimal integer property, or ``default`` when absent or malformed."""
        value = self.properties.get(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            return default


PropertiesArg = Mapping[str, str] | Iterable[tuple[str, str]]


def _local_error(text: str) -> BlipError:
    return BlipError(text, is_remote_fault=False)


def encode_properties(properties: PropertiesArg, max_size: int) -> bytes:
    """Encode properties as ``uvarint(len) || (key NUL value NUL)*``; validates caller input."""
    if not properties and isinstance(properties, dict | tuple | list):
        return b"\x00"
    if type(properties) is dict:
        # Fast path for the usual case, a plain dict of str: one join and one encode. Anything
        # it cannot vouch for (a non-str, a NUL inside a string, an unencodable surrogate) goes
        # to the general path below, which finds and reports the offending entry.
        try:
            text = "\0".join(chain.from_iterable(properties.items()))
            if text.count("\0") == 2 * len(properties) - 1:
                block = (text + "\0").encode("utf-8")
                if len(block) > max_size:
                    raise _local_error(f"properties too large: {len(block)} bytes > {max_size}")
                return encode_varint(len(block)) + block
        except (TypeError, UnicodeEncodeError):
            pass
    items = properties.items() if isinstance(properties, Mapping) else properties
    parts: list[bytes] = []
    for item in items:
        try:
            key, value = item
        except (TypeError, ValueError):
            raise _local_error(f"property entry is not a (key, value) pair: {item!r}") from None
        if not isinstance(key, str) or not isinstance(value, str):
            raise _local_error(f"property {key!r} must map a str to a str, got {value!r}")
        if "\0" in key or "\0" in value:
            raise _local_error(f"property {key!r} contains a NUL character")
        try:
            parts.append(key.encode("utf-8"))
            parts.append(value.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise _local_error(f"property {key!r} is not encodable as UTF-8") from exc
    block = b"".join(p + b"\0" for p in parts)
    if len(block) > max_size:
        raise _local_error(f"properties too large: {len(block)} bytes > {max_size}")
    return encode_varint(len(block)) + block


def decode_properties(block: bytes | memoryview) -> dict[str, str]:
    """Decode a properties block (without its length varint), validating it as LiteCore does."""
    if not block:
        return {}
    if block[-1] != 0:
        raise BlipError("properties do not end with NUL", close_code=CLOSE_PROTOCOL_ERROR)
    try:
        # Decoding the whole block at once is valid UTF-8 exactly when every string is: NUL
        # never occurs inside a multi-byte sequence.
        strings = str(block[:-1], "utf-8").split("\0")
    except UnicodeDecodeError:
        strings = None
    if strings is None or len(strings) % 2:
        raise _properties_error(bytes(block))
    it = iter(strings)
    return dict(zip(it, it, strict=True))


def _properties_error(raw: bytes) -> BlipError:
    """The error for a block the fast decoder refused, checked in the original order."""
    fields = raw[:-1].split(b"\0")
    if len(fields) % 2:
        return BlipError("odd number of strings in properties", close_code=CLOSE_PROTOCOL_ERROR)
    try:
        for f in fields:
            f.decode("utf-8")
    except UnicodeDecodeError as exc:
        error = BlipError("properties are not valid UTF-8", close_code=CLOSE_PROTOCOL_ERROR)
        error.__cause__ = exc
        return error
    raise AssertionError("properties block refused but valid")  # pragma: no cover
