"""Small helpers for reading replication messages."""

from __future__ import annotations

from typing import Any

from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import CouchliteError


def json_list_body(message: Message) -> list[Any]:
    """The JSON array body of a ``changes``/``proposeChanges`` message, or BLIP/400."""
    try:
        entries = message.json()
    except CouchliteError:
        raise BlipErrorReply("BLIP", 400, "Invalid JSON body") from None
    if not isinstance(entries, list):
        raise BlipErrorReply("BLIP", 400, "Invalid JSON body")
    return entries
