"""A reference model, for tests: the Fleece bytes Couchbase Lite 3.x digests into a new revision
ID, and that revision ID.

couchlite's own revision IDs digest canonical JSON instead (``couchlite.model.revid``): this
encoder costs about 50 times as much per document (some 180 us against 4 us), and its result
depends on the database's history of shared keys. The model shows what exactly differs, and
checks that it is only that.

A tree revision ID made by LiteCore is ``<generation>-<SHA-1>``. The SHA-1 covers one byte with
the length of the parent's revision ID *as text* (``"1-ab12..."``, capped at 255; a 0 and nothing
else when there is no parent), that text, one byte for the deleted flag, then the revision body
exactly as it is stored: Fleece data from the database's shared encoder (unique strings on, the
database's shared keys on). A revision saved with no body (a deletion) digests the two bytes of an
empty Fleece dict.

Matching those IDs means reproducing the encoder's output byte for byte, layout choices included:
which values sit inline in a collection's slots, when a collection turns wide (4-byte slots), which
strings are written once and pointed to afterwards. Couchbase Lite C encodes a document's
properties by copying an in-memory dict into that encoder, so keys are visited in sorted order,
depth first, and scalar values are copied as they were stored in memory:

* integers from -2048 to 2047 are 2-byte short ints; others keep the fewest bytes that hold them,
  unsigned when not negative (as Fleece parses JSON integer literals), and go inline (widening the
  collection) when they fit in 4 bytes;
* floats stay floats, whatever their value (``2.0`` is not turned into ``2``): a 32-bit float
  marked as standing for a double when it converts exactly, else a 64-bit double.

Shared keys make the bytes depend on the database's history: each dict key of at most 16 ASCII
letters, digits, ``_`` or ``-`` is stored as a small integer, the next free one when the database's
encoder first meets the key, and a dict sorts its integer keys (by number) before its string keys.
:class:`SharedKeys` holds that state; keep one per database and feed it bodies in save order. A
fresh one encodes a body as the first document of a new database would be encoded, which is also
what any database gives a document once all its documents have the same set of keys, whatever the
order they were saved in.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable
from typing import Any

from couchlite.blip.varint import encode_varint  # Fleece counts are the same LEB128 varints
from couchlite.model.revid import check_rev_id, generation

__all__ = ["EMPTY_DICT", "SharedKeys", "cbl_rev_id", "revision_digest_body"]

#: Fleece's tags: the high nibble of a value's first byte.
_INT, _FLOAT, _STRING, _ARRAY, _DICT = 1, 2, 4, 6, 7

_NULL, _FALSE, _TRUE = b"\x30\x00", b"\x34\x00", b"\x38\x00"

#: What LiteCore digests (and stores) for a revision saved without a body.
EMPTY_DICT = b"\x70\x00"

#: How far back a pointer in a narrow (2-byte) slot reaches, in bytes.
_MAX_NARROW_OFFSET = 0x7FFE
#: Only strings of these lengths are written once and pointed to afterwards.
_MIN_SHARED_STRING, _MAX_SHARED_STRING = 2, 15
#: From this count on, a collection's count spills into a varint after its header.
_LONG_COUNT = 0x07FF

_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1
_FLT_MAX: float = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]

_KEY_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

#: A dict key's place in Fleece's order: (0, shared int) before (1, UTF-8 bytes).
_SortKey = tuple[int, int] | tuple[int, bytes]


class SharedKeys:
    """A database's table of dict keys abbreviated to small integers, grown by encoding.

    A key qualifies when it has at most ``max_key_length`` UTF-8 bytes, all of them ASCII letters,
    digits, ``_`` or ``-`` (the empty key qualifies too), and the table holds fewer than
    ``max_count`` keys. ``SharedKeys(max_count=0)`` never abbreviates anything, as an encoder
    without shared keys.
    """

    MAX_COUNT = 2048
    MAX_KEY_LENGTH = 16

    def __init__(
        self,
        keys: Iterable[str] = (),
        *,
        max_key_length: int = MAX_KEY_LENGTH,
        max_count: int = MAX_COUNT,
    ) -> None:
        self.max_key_length = max_key_length
        self.max_count = max_count
        self._ids: dict[bytes, int] = {}
        self._keys: list[str] = []
        for key in keys:
            if self.encode_and_add(key.encode()) is None:
                raise ValueError(f"key {key!r} cannot be a shared key")

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys in the order they were added: the one at index ``n`` stands for ``n``."""
        return tuple(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def copy(self) -> SharedKeys:
        other = SharedKeys(max_key_length=self.max_key_length, max_count=self.max_count)
        other._ids = dict(self._ids)
        other._keys = list(self._keys)
        return other

    def could_add(self, key: bytes) -> bool:
        return (
            len(self._keys) < self.max_count
            and len(key) <= self.max_key_length
            and all(byte in _KEY_CHARS for byte in key)
        )

    def encode_and_add(self, key: bytes) -> int | None:
        """The integer standing for ``key``, the next free one if it is new and qualifies."""
        known = self._ids.get(key)
        if known is not None or not self.could_add(key):
            return known
        known = self._ids[key] = len(self._keys)
        self._keys.append(key.decode())
        return known


def _int_bytes(n: int, unsigned: bool) -> bytes:
    """The fewest little-endian bytes that read back as ``n`` (sign-extended unless unsigned)."""
    raw = (n & _UINT64_MAX).to_bytes(8, "little")
    trim = 0xFF if n < 0 and not unsigned else 0x00
    size = 8
    while size > 1 and raw[size - 1] == trim:
        size -= 1
    if not unsigned and size < 8 and (raw[size - 1] ^ trim) & 0x80:
        size += 1  # the top bit must still tell the sign
    return raw[:size]


def _pointer(offset: int, wide: bool) -> bytes:
    # offsets count 2-byte units back from the pointer itself; the top bit marks a pointer
    if wide:
        return ((offset >> 1) | 0x8000_0000).to_bytes(4, "big")
    return ((offset >> 1) | 0x8000).to_bytes(2, "big")


class _Collection:
    """An array or dict being filled, or the root holder of the one top-level value."""

    __slots__ = ("is_dict", "slots", "sort_keys", "wide")

    def __init__(self, is_dict: bool) -> None:
        self.is_dict = is_dict
        # bytes: an inline value, 4 bytes of which a narrow slot keeps the first 2;
        # int: the output position a pointer in this slot refers to
        self.slots: list[bytes | int] = []
        self.sort_keys: list[_SortKey] = []
        self.wide = False


class _Encoder:
    """One run of the database's shared encoder: one body, one table of written strings."""

    def __init__(self, shared_keys: SharedKeys) -> None:
        self._keys = shared_keys
        self._out = bytearray()
        self._strings: dict[bytes, int] = {}
        self._stack = [_Collection(False)]

    def _next_write_pos(self) -> int:
        if len(self._out) & 1:
            self._out.append(0)
        return len(self._out)

    def _add_inline(self, value: bytes) -> None:
        top = self._stack[-1]
        if len(value) > 2:
            top.wide = True
        top.slots.append(value.ljust(4, b"\x00"))

    def _place(self, value: bytes, can_inline: bool) -> None:
        if can_inline and len(value) <= 4:
            self._add_inline(value)
            return
        self._stack[-1].slots.append(self._next_write_pos())
        self._out += value
        if len(value) & 1:
            self._out.append(0)

    def _write_slots(self, collection: _Collection) -> None:
        origin = self._next_write_pos()
        if not collection.wide:
            for index, slot in enumerate(collection.slots):
                if isinstance(slot, int) and origin + 2 * index - slot > _MAX_NARROW_OFFSET:
                    collection.wide = True
                    break
        width = 4 if collection.wide else 2
        for slot in collection.slots:
            if isinstance(slot, int):
                self._out += _pointer(len(self._out) - slot, collection.wide)
            else:
                self._out += slot[:width]

    # -- scalars -----------------------------------------------------------------------------

    def _write_int(self, n: int, unsigned: bool) -> None:
        if (n < 2048) if unsigned else (-2048 <= n < 2048):
            self._add_inline(bytes(((n >> 8) & 0x0F, n & 0xFF)))
            return
        body = _int_bytes(n, unsigned)
        head = (_INT << 4) | (len(body) - 1) | (0x08 if unsigned else 0)
        # a value copied from memory goes inline whenever it fits a wide slot
        self._place(bytes((head,)) + body, can_inline=True)

    def _write_float(self, x: float) -> None:
        if not math.isfinite(x):
            raise ValueError(f"Fleece cannot store {x!r} in a document")
        if abs(x) <= _FLT_MAX and struct.unpack("<f", struct.pack("<f", x))[0] == x:
            self._place(bytes(((_FLOAT << 4) | 0x04, 0)) + struct.pack("<f", x), can_inline=False)
        else:
            self._place(bytes(((_FLOAT << 4) | 0x08, 0)) + struct.pack("<d", x), can_inline=False)

    def _write_number(self, n: int) -> None:
        if 0 <= n <= _UINT64_MAX:
            self._write_int(n, unsigned=True)
        elif _INT64_MIN <= n < 0:
            self._write_int(n, unsigned=False)
        else:
            # beyond 64 bits Fleece's JSON parser falls back to a double
            try:
                self._write_float(float(n))
            except OverflowError:
                raise ValueError(f"integer {n} is out of Fleece's range") from None

    def _write_data(self, data: bytes) -> None:
        size = len(data)
        if size < 2:
            self._add_inline(bytes(((_STRING << 4) | size,)) + data)
        elif size < 0x0F:
            self._place(bytes(((_STRING << 4) | size,)) + data, can_inline=False)
        else:
            self._place(
                bytes(((_STRING << 4) | 0x0F,)) + encode_varint(size) + data, can_inline=False
            )

    def _write_string(self, data: bytes) -> None:
        if not _MIN_SHARED_STRING <= len(data) <= _MAX_SHARED_STRING:
            self._write_data(data)
            return
        earlier = self._strings.get(data)
        if earlier is not None and (
            self._stack[-1].wide or self._next_write_pos() - earlier <= _MAX_NARROW_OFFSET - 32
        ):
            self._stack[-1].slots.append(earlier)
            return
        # first sight, or too far back for a narrow pointer: write it anew and point here later
        self._strings[data] = self._next_write_pos()
        self._write_data(data)

    # -- collections -------------------------------------------------------------------------

    def _write_key(self, data: bytes) -> None:
        top = self._stack[-1]
        shared = self._keys.encode_and_add(data)
        if shared is None:
            self._write_string(data)
            top.sort_keys.append((1, data))
        else:
            self._add_inline(bytes(((shared >> 8) & 0x0F, shared & 0xFF)))
            top.sort_keys.append((0, shared))

    def _end_collection(self) -> None:
        collection = self._stack.pop()
        tag = _DICT if collection.is_dict else _ARRAY
        count = len(collection.sort_keys) if collection.is_dict else len(collection.slots)
        if count == 0:
            self._add_inline(bytes((tag << 4, 0)))
            return
        if collection.is_dict:
            order = sorted(range(count), key=collection.sort_keys.__getitem__)
            pairs = collection.slots
            collection.slots = [pairs[j] for i in order for j in (2 * i, 2 * i + 1)]
        short = min(count, _LONG_COUNT)
        header = bytes(((tag << 4) | (short >> 8), short & 0xFF))
        if count >= _LONG_COUNT:
            header += encode_varint(count - _LONG_COUNT)
        header_pos = self._next_write_pos()
        self._place(header, can_inline=False)
        self._write_slots(collection)
        if collection.wide:
            self._out[header_pos] |= 0x08

    def write(self, value: Any) -> None:
        if value is None:
            self._add_inline(_NULL)
        elif value is True or value is False:
            self._add_inline(_TRUE if value else _FALSE)
        elif isinstance(value, int):
            self._write_number(value)
        elif isinstance(value, float):
            self._write_float(value)
        elif isinstance(value, str):
            self._write_string(value.encode())
        elif isinstance(value, list | tuple):
            self._stack.append(_Collection(False))
            for item in value:
                self.write(item)
            self._end_collection()
        elif isinstance(value, dict):
            keys: list[tuple[bytes, str]] = []
            for key in value:
                if not isinstance(key, str):
                    raise TypeError(f"dict keys must be str, not {type(key).__name__}")
                keys.append((key.encode(), key))
            self._stack.append(_Collection(True))
            # the in-memory dict holds string keys, which it hands over in byte order
            for data, key in sorted(keys):
                self._write_key(data)
                self.write(value[key])
            self._end_collection()
        else:
            raise TypeError(f"Fleece cannot encode a {type(value).__name__}")

    def finish(self) -> bytes:
        root = self._stack[0]
        if len(self._stack) != 1 or len(root.slots) != 1:
            raise ValueError("exactly one top-level value must have been written")
        self._write_slots(root)
        if root.wide:
            # the last two bytes must be a narrow value: point back at the wide root
            self._out += _pointer(4, wide=False)
        return bytes(self._out)


def revision_digest_body(value: Any, shared_keys: SharedKeys | None = None) -> bytes:
    """The Fleece bytes Couchbase Lite stores, and digests, for ``value`` (decoded JSON).

    ``shared_keys`` is the database's key table, updated in place (a fresh one when None).
    """
    encoder = _Encoder(SharedKeys() if shared_keys is None else shared_keys)
    encoder.write(value)
    return encoder.finish()


def cbl_rev_id(
    parent: str | None,
    deleted: bool,
    body: dict[str, Any] | None,
    *,
    shared_keys: SharedKeys | None = None,
) -> str:
    """The revision ID Couchbase Lite gives a new revision of ``body`` with this parent.

    A None or empty body (what a deletion saves) digests as an empty dict. ``shared_keys`` is as
    for :func:`revision_digest_body`.
    """
    digest = hashlib.sha1(usedforsecurity=False)
    if parent:
        check_rev_id(parent)
        text = parent.encode("ascii")[:255]
        digest.update(bytes((len(text),)) + text)
    else:
        digest.update(b"\x00")
    digest.update(b"\x01" if deleted else b"\x00")
    digest.update(revision_digest_body(body, shared_keys) if body else EMPTY_DICT)
    return f"{generation(parent) + 1 if parent else 1}-{digest.hexdigest()}"
