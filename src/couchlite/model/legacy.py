"""Top-level properties whose names start with ``_``: reserved by Couchbase Lite.

Couchbase Lite 1.x and CouchDB kept a document's metadata in its body (``_id``, ``_rev``,
``_deleted``, ``_attachments``, ``_revisions``, ``_exp``, ...). Couchbase Lite 2.0+ keeps it
beside the body, and holds both sources of such keys to the rules LiteCore applies:

* a local save refuses a body with a top-level ``_id``, ``_rev`` or ``_deleted``
  (:func:`check_local_properties`), exactly the keys LiteCore's revision-body validation
  refuses: a body claiming another ID, revision or deletion state than its own would lie to
  whoever reads it. Other ``_`` keys, ``_attachments`` included, are saved as data, as there;
* a revision received from a peer loses every top-level ``_`` property
  (:func:`strip_old_meta_properties`; LiteCore's ``encodeStrippingOldMetaProperties``), except
  the entries of ``_attachments`` that are real legacy attachments: those stay, and their
  blobs are fetched and verified like any other blob reference (``model.blobrefs`` counts
  them). The entries a 2.x peer adds as stand-ins for the blobs elsewhere in the body
  (``blob_1``, ``blob_/path/to/blob``) go, any newer digest they carry being copied onto the
  blob they stand for. Whether a revision is a deletion comes only from the ``deleted``
  property of its ``rev`` message, never from a ``_deleted`` key in its body.
"""

from __future__ import annotations

from typing import Any

import orjson

from couchlite.errors import InvalidArgumentError, LiteCoreCode
from couchlite.model.blobrefs import BLOB_TYPE, LEGACY_ATTACHMENTS, is_valid_digest

#: The top-level keys a local save refuses (LiteCore: "Illegal top-level key")
RESERVED_KEYS = ("_id", "_rev", "_deleted")
_HINTS = {
    "_id": "the document ID is given to MutableDocument(id) instead",
    "_rev": "the revision ID is kept by the database (Document.revision_id)",
    "_deleted": "delete a document with Collection.delete() instead",
}
#: bytes every JSON body holding a top-level ``_`` key contains (unless escaped)
_UNDERSCORE_KEY = b'"_'
_ESCAPE = b"\\u"
_DIGITS = "0123456789"


def check_local_properties(props: dict[str, Any], doc_id: str) -> None:
    """Raise ``InvalidArgumentError`` (code ``CORRUPT_REVISION_DATA``, as LiteCore) naming the
    first reserved top-level key of ``props`` (see the module docstring)."""
    for key in RESERVED_KEYS:
        if key in props:
            raise InvalidArgumentError(
                f"document {doc_id!r} has the top-level key {key!r}, which Couchbase Lite "
                f"reserves: {_HINTS[key]}",
                code=LiteCoreCode.CORRUPT_REVISION_DATA,
            )


def has_old_meta_properties(props: dict[str, Any]) -> bool:
    """Whether ``props`` has a top-level key starting with ``_``."""
    return any(key.startswith("_") for key in props)


def may_have_old_meta_properties(body: bytes) -> bool:
    """``False`` when JSON text certainly has no key starting with ``_`` (the cheap check)."""
    return _UNDERSCORE_KEY in body or _ESCAPE in body


def strip_old_meta_body(body: bytes) -> bytes:
    """:func:`strip_old_meta_properties` of a JSON object body received from a peer: ``body``
    itself when there is nothing to strip (or it is not a JSON object: whoever stores it
    refuses that), otherwise the stripped object as JSON text."""
    if not may_have_old_meta_properties(body):
        return body
    try:
        props = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(props, dict) or not has_old_meta_properties(props):
        return body
    return orjson.dumps(strip_old_meta_properties(props))


def strip_old_meta_properties(props: dict[str, Any]) -> dict[str, Any]:
    """``props`` without its top-level ``_`` properties, keeping the real legacy attachments
    (see the module docstring). ``props`` itself is left as it is."""
    stripped = {key: value for key, value in props.items() if not key.startswith("_")}
    attachments = props.get(LEGACY_ATTACHMENTS)
    if not isinstance(attachments, dict):
        return stripped
    kept: dict[str, Any] = {}
    for name, attachment in attachments.items():
        if not isinstance(attachment, dict):
            continue  # no attachment at all
        if name.startswith("blob_"):
            pointer = name[len("blob_") :]
            if pointer[:1] and pointer[0] in _DIGITS:  # "blob_1": a 2.0 stand-in, redundant
                continue
            if "digest" in attachment:
                target = _blob_at(stripped, pointer)
                if target is not None:  # "blob_/a/b": a 2.1+ stand-in for the blob at /a/b
                    if target.get("digest") != attachment["digest"]:
                        _refresh_blob(stripped, pointer, attachment)
                    continue
        kept[name] = attachment
    if kept:
        stripped[LEGACY_ATTACHMENTS] = kept
    return stripped


def _parse_pointer(pointer: str) -> list[str] | None:
    """The reference tokens of a JSON pointer (RFC 6901), or ``None`` if it is not one."""
    if not pointer.startswith("/"):
        return None
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _resolve(root: Any, tokens: list[str]) -> Any:
    value = root
    for token in tokens:
        if isinstance(value, dict):
            if token not in value:
                return None
            value = value[token]
        elif isinstance(value, list):
            if not token or token.strip(_DIGITS) or int(token) >= len(value):
                return None
            value = value[int(token)]
        else:
            return None
    return value


def _is_blob(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("@type") == BLOB_TYPE
        and is_valid_digest(value.get("digest"))
    )


def _blob_at(root: dict[str, Any], pointer: str) -> dict[str, Any] | None:
    tokens = _parse_pointer(pointer)
    if tokens is None:
        return None
    value = _resolve(root, tokens)
    return value if _is_blob(value) else None


def _refresh_blob(root: dict[str, Any], pointer: str, attachment: dict[str, Any]) -> None:
    """Replace the blob at ``pointer`` by a copy that takes the attachment's values (its
    ``length`` and ``content_type`` even when the attachment lacks them: they describe the
    attachment's content, not the old one's). Copies down the path, so that no value shared
    with the caller's ``props`` is modified."""
    tokens = _parse_pointer(pointer)
    assert tokens is not None  # (checked by _blob_at)
    parent: Any = root
    for token in tokens[:-1]:
        key: Any = int(token) if isinstance(parent, list) else token
        child = parent[key]
        child = dict(child) if isinstance(child, dict) else list(child)
        parent[key] = child
        parent = child
    last: Any = int(tokens[-1]) if isinstance(parent, list) else tokens[-1]
    blob: dict[str, Any] = {}
    for name, value in parent[last].items():
        if name in attachment:
            blob[name] = attachment[name]
        elif name not in ("length", "content_type"):
            blob[name] = value
    parent[last] = blob


__all__ = [
    "RESERVED_KEYS",
    "check_local_properties",
    "has_old_meta_properties",
    "may_have_old_meta_properties",
    "strip_old_meta_body",
    "strip_old_meta_properties",
]
