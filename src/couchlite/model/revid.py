"""Revision IDs of Couchbase Lite 3.x revision trees (notes §5.1).

A revision ID is ``<generation>-<hex digest>``: a decimal generation >= 1 and 32 to 40 lowercase
hex digits, an even number of them (16 to 20 bytes). New IDs are ``<parent generation + 1>-<SHA-1>``
where the digest covers, as LiteCore does: one byte with the length of the parent's compact binary
form (varint generation followed by the raw digest bytes), that binary form, one byte for the
deleted flag, then the canonical JSON body. Peers never recompute digests, so this only needs to
be deterministic and collision-free.

Ordering (LiteCore's, used to pick a winner): higher generation first, then the digest compared
as text, which for equal-length lowercase hex is byte order.
"""

from __future__ import annotations

import hashlib
import re

from couchlite.errors import InvalidArgumentError, LiteCoreCode

_REV_RE = re.compile(r"([1-9][0-9]{0,15})-((?:[0-9a-f]{2}){16,20})\Z")


def parse_rev_id(rev_id: str) -> tuple[int, str]:
    """Split a tree revision ID into (generation, digest); raise on a malformed one."""
    match = _REV_RE.match(rev_id) if isinstance(rev_id, str) else None
    if match is None:
        raise InvalidArgumentError(
            f"invalid revision ID {rev_id!r}", code=LiteCoreCode.BAD_REVISION_ID
        )
    return int(match.group(1)), match.group(2)


#: The same language as ``_REV_RE``, but twice as fast to match: the digest's even length is
#: checked apart (this runs for every revision ID a peer sends)
_VALID_RE = re.compile(r"[1-9][0-9]{0,15}-[0-9a-f]{32,40}")


def is_valid_rev_id(rev_id: str) -> bool:
    return (
        isinstance(rev_id, str)
        and _VALID_RE.fullmatch(rev_id) is not None
        and (len(rev_id) - rev_id.find("-")) % 2 == 1
    )


def check_rev_id(rev_id: str) -> None:
    """Raise as :func:`parse_rev_id` does on a malformed revision ID (twice as fast when it is
    well formed: nothing is split out)."""
    if not is_valid_rev_id(rev_id):
        parse_rev_id(rev_id)


def generation(rev_id: str) -> int:
    """The generation of a revision ID (no full validation: the fast path of hot loops)."""
    dash = rev_id.find("-")
    try:
        return int(rev_id[:dash]) if dash > 0 else parse_rev_id(rev_id)[0]
    except ValueError:
        return parse_rev_id(rev_id)[0]


def _compact(rev_id: str) -> bytes:
    gen, digest = parse_rev_id(rev_id)
    out = bytearray()
    while True:
        byte = gen & 0x7F
        gen >>= 7
        if gen:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            break
    out += bytes.fromhex(digest)
    return bytes(out)


#: The digests of first revisions start alike (no parent: an empty length prefix, then the deleted
#: flag); copying a hash object that has already taken them is cheaper than starting anew.
_FIRST_LIVE = hashlib.sha1(b"\x00\x00", usedforsecurity=False)
_FIRST_DELETED = hashlib.sha1(b"\x00\x01", usedforsecurity=False)


def new_rev_id(parent: str | None, deleted: bool, canonical_body: bytes) -> str:
    """The ID of a new revision with this parent, deleted flag and canonical body."""
    if not parent:  # the common case
        digest = (_FIRST_DELETED if deleted else _FIRST_LIVE).copy()
        digest.update(canonical_body)
        return "1-" + digest.hexdigest()
    parent_bin = _compact(parent)
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(bytes((min(len(parent_bin), 255),)))
    digest.update(parent_bin)
    digest.update(b"\x01" if deleted else b"\x00")
    digest.update(canonical_body)
    gen = generation(parent) + 1 if parent else 1
    return f"{gen}-{digest.hexdigest()}"


def rev_sort_key(rev_id: str) -> tuple[int, str]:
    """Key that orders revision IDs as LiteCore does (higher sorts later)."""
    dash = rev_id.find("-")
    return int(rev_id[:dash]), rev_id[dash + 1 :]


def compare_rev_ids(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, equal to or newer than ``b`` by LiteCore's order."""
    ka, kb = rev_sort_key(a), rev_sort_key(b)
    return (ka > kb) - (ka < kb)
