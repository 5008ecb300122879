"""Small helpers for reading replication messages: every JSON body a peer sends is checked
(:func:`~couchlite.model.canonical.check_json_text`: nesting and integers as the local API
accepts them) before it is parsed, and every row of a ``changes``/``proposeChanges`` list is
validated (document ID present, revision IDs well formed) before any of it is acted on."""

from __future__ import annotations

from typing import Any

from couchlite._tuning import MAX_CHANGES_PER_MESSAGE
from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import CouchliteError, InvalidArgumentError
from couchlite.model.canonical import check_json_text
from couchlite.model.revid import is_valid_rev_id


def checked_json(message: Message) -> Any:
    """The JSON body of a message from the peer; ``BLIP``/400 when it is malformed, nested too
    deeply or holds an integer beyond 64 bits."""
    try:
        check_json_text(message.body)
        return message.json()
    except InvalidArgumentError as exc:
        raise BlipErrorReply("BLIP", 400, f"Invalid JSON body: {exc.message}") from None
    except CouchliteError:
        raise BlipErrorReply("BLIP", 400, "Invalid JSON body") from None


def json_list_body(message: Message) -> list[Any]:
    """The JSON array body of a ``changes``/``proposeChanges`` message, or BLIP/400 (also when
    it has more than ``MAX_CHANGES_PER_MESSAGE`` entries)."""
    entries = checked_json(message)
    if not isinstance(entries, list):
        raise BlipErrorReply("BLIP", 400, "Invalid JSON body")
    if len(entries) > MAX_CHANGES_PER_MESSAGE:
        raise BlipErrorReply(
            "BLIP", 413, f"Too many entries: {len(entries)} (at most {MAX_CHANGES_PER_MESSAGE})"
        )
    return entries


def _invalid(what: str, index: int) -> BlipErrorReply:
    return BlipErrorReply("HTTP", 400, f"Invalid entry {index} in '{what}' message")


def changes_rows(entries: list[Any]) -> list[tuple[Any, str, str, int]]:
    """``changes`` entries ``[sequence, docID, revID, deleted?, bodySize?]`` as
    ``(sequence, doc_id, rev_id, deleted_bits)``; ``HTTP``/400 for the whole message if any entry
    lacks a document ID or has a malformed revision ID (nothing is acted on)."""
    rows: list[tuple[Any, str, str, int]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, list) or len(entry) < 3:
            raise _invalid("changes", i)
        seq, doc_id, rev_id = entry[0], entry[1], entry[2]
        if not isinstance(doc_id, str) or not doc_id or not is_valid_rev_id(rev_id):
            raise _invalid("changes", i)
        deleted = entry[3] if len(entry) > 3 else 0
        rows.append((seq, doc_id, rev_id, int(deleted) if isinstance(deleted, bool | int) else 0))
    return rows


def proposal_rows(entries: list[Any]) -> list[tuple[str, str, str | None]]:
    """``proposeChanges`` entries ``[docID, revID, serverRevID?, bodySize?]`` as
    ``(doc_id, rev_id, server_rev_id or None)``; ``HTTP``/400 for the whole message if any is
    invalid."""
    rows: list[tuple[str, str, str | None]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, list) or len(entry) < 2:
            raise _invalid("proposeChanges", i)
        doc_id, rev_id = entry[0], entry[1]
        if not isinstance(doc_id, str) or not doc_id or not is_valid_rev_id(rev_id):
            raise _invalid("proposeChanges", i)
        server_rev = entry[2] if len(entry) > 2 and isinstance(entry[2], str) else None
        if server_rev and not is_valid_rev_id(server_rev):
            raise _invalid("proposeChanges", i)
        rows.append((doc_id, rev_id, server_rev or None))
    return rows
