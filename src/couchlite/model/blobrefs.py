"""Which blobs a JSON document body references: the one scanner behind garbage collection and
replication.

A body references a blob through (notes §7):

* a blob dictionary anywhere in the tree, ``{"@type": "blob", "digest": "sha1-...", ...}``
  (Couchbase Lite 2.0+), not looked into further;
* an entry of a legacy top-level ``_attachments`` dictionary, ``{"digest": "sha1-...", ...}``
  (CouchDB / Sync Gateway form).

Only well-formed digests count (``"sha1-"`` + base64 of 20 bytes): anything else names no blob
the store could hold. Whoever keeps blobs (the database, deciding what may be deleted) and
whoever moves them (the replicator, deciding what to fetch and what to serve) must agree on
this, so both call :func:`blob_digests`.

Cheap where it matters: every blob reference contains the key ``"digest"``, so a body without
those bytes (and without JSON escapes, which could spell them differently) is not parsed at all
(most bodies). The walk is iterative: a deeply nested body
costs memory for its own size, never the interpreter's recursion limit.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any, TypeGuard

import orjson

DIGEST_PREFIX = "sha1-"
#: bytes present in every canonical body that references a blob (both forms need the key)
DIGEST_KEY = b'"digest"'
#: a JSON escape: what a body from elsewhere could spell the key with instead
_ESCAPE = b"\\u"
BLOB_TYPE = "blob"
LEGACY_ATTACHMENTS = "_attachments"


def raw_digest(digest: object) -> bytes | None:
    """The 20 SHA-1 bytes a digest string names, or ``None`` if it is not a valid digest."""
    if not isinstance(digest, str) or not digest.startswith(DIGEST_PREFIX) or len(digest) != 33:
        return None
    text = digest[len(DIGEST_PREFIX) :]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # One spelling per content: base64 ignores the unused low bits of the last character, and
    # two strings naming one file would let references counted by string miss each other.
    if len(raw) != 20 or base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def is_valid_digest(digest: object) -> TypeGuard[str]:
    return raw_digest(digest) is not None


def may_reference_blobs(body: bytes | bytearray | memoryview) -> bool:
    """``False`` when ``body`` certainly references no blob (the cheap pre-check). Canonical
    bodies (as stored) only need ``DIGEST_KEY in body``; JSON from a peer may spell the key
    with escapes (``"\\u0064igest"``), so such bodies are decoded too."""
    return DIGEST_KEY in body or _ESCAPE in body


def blob_digests(body: bytes | None) -> list[str]:
    """The distinct blob digests a JSON body references, in the order met (see the module
    docstring). Not JSON, or no JSON object: none."""
    if body is None or not may_reference_blobs(body):
        return []
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:  # also orjson's own nesting limit: such a body is refused
        return []
    return digests_in_value(value)


def digests_in_value(value: Any) -> list[str]:
    """:func:`blob_digests` of an already decoded body."""
    found: dict[str, None] = {}
    if isinstance(value, dict):
        legacy = value.get(LEGACY_ATTACHMENTS)
        if isinstance(legacy, dict):
            for entry in legacy.values():
                if isinstance(entry, dict) and is_valid_digest(digest := entry.get("digest")):
                    found[digest] = None
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("@type") == BLOB_TYPE and is_valid_digest(digest := item.get("digest")):
                found[digest] = None
                continue
            stack.extend(v for v in reversed(item.values()) if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in reversed(item) if isinstance(v, (dict, list)))
    return list(found)


def blob_digests_of(bodies: Iterable[bytes | None]) -> set[str]:
    """Every blob digest referenced by any of ``bodies`` (e.g. all kept revisions of a
    document)."""
    found: set[str] = set()
    for body in bodies:
        if body is not None:
            found.update(blob_digests(body))
    return found


__all__ = [
    "BLOB_TYPE",
    "DIGEST_KEY",
    "DIGEST_PREFIX",
    "blob_digests",
    "blob_digests_of",
    "digests_in_value",
    "is_valid_digest",
    "may_reference_blobs",
    "raw_digest",
]
