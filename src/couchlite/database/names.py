"""Couchbase Lite's naming rules for databases, scopes, collections and document IDs."""

from __future__ import annotations

import re

from couchlite.errors import InvalidArgumentError, LiteCoreCode

DEFAULT_NAME = "_default"

# Scope and collection names: 1-251 characters from A-Z a-z 0-9 - _ %, not starting with _ or %
# (except the "_default" names themselves).
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9-][A-Za-z0-9_%-]{0,250}\Z")

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

#: LiteCore's limit on document IDs, in UTF-8 bytes.
MAX_DOC_ID_BYTES = 240


def check_collection_name(name: str, what: str = "collection") -> str:
    if not isinstance(name, str):
        raise InvalidArgumentError(f"{what} name must be a string, not {type(name).__name__}")
    if name == DEFAULT_NAME or _COLLECTION_NAME.match(name):
        return name
    raise InvalidArgumentError(
        f"invalid {what} name {name!r}: 1-251 characters from A-Z, a-z, 0-9, '-', '_' and '%', "
        "not starting with '_' or '%'"
    )


def check_doc_id(doc_id: str) -> str:
    # the common case first: a short ASCII ID (its length in UTF-8 bytes is its length)
    if (
        type(doc_id) is str
        and 0 < len(doc_id) <= MAX_DOC_ID_BYTES
        and doc_id.isascii()
        and doc_id.isprintable()  # for ASCII: no control characters
        and doc_id[0] != "_"
    ):
        return doc_id
    if not isinstance(doc_id, str):
        raise InvalidArgumentError(
            f"document ID must be a string, not {type(doc_id).__name__}",
            code=LiteCoreCode.BAD_DOC_ID,
        )
    try:
        size = len(doc_id.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(
            f"invalid document ID {doc_id!r}: not valid Unicode", code=LiteCoreCode.BAD_DOC_ID
        ) from exc
    if not 1 <= size <= MAX_DOC_ID_BYTES:
        raise InvalidArgumentError(
            f"invalid document ID {doc_id[:40]!r}: must be 1 to {MAX_DOC_ID_BYTES} UTF-8 bytes",
            code=LiteCoreCode.BAD_DOC_ID,
        )
    if doc_id[0] == "_" or _CONTROL_CHARS.search(doc_id):
        raise InvalidArgumentError(
            f"invalid document ID {doc_id!r}: may not start with '_' or contain control characters",
            code=LiteCoreCode.BAD_DOC_ID,
        )
    return doc_id


_DB_NAME_FORBIDDEN = re.compile(r"[/\\:\x00-\x1f]")


def check_database_name(name: str) -> str:
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 240
        or name.startswith(".")
        or _DB_NAME_FORBIDDEN.search(name)
    ):
        raise InvalidArgumentError(
            f"invalid database name {name!r}: non-empty, not starting with '.', without path "
            "separators or control characters"
        )
    return name
