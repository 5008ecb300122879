"""The value every message builder returns, and the checks every received JSON body passes.

Every JSON body a peer sends is checked (:func:`~couchlite.model.canonical.check_json_text`:
nesting and integers as the local API accepts them) before it is parsed; a
``changes``/``proposeChanges`` list is bounded by ``MAX_CHANGES_PER_MESSAGE``. Property dicts
are built in the order LiteCore writes them (``Profile``, then ``collection``, then the rest):
BLIP encodes properties in dict order, so that order is the wire's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from couchlite._tuning import MAX_CHANGES_PER_MESSAGE, MAX_HISTORY
from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import CouchliteError, InvalidArgumentError
from couchlite.model.canonical import check_json_text

__all__ = [
    "MAX_HISTORY",
    "Outgoing",
    "checked_json",
    "http_reply",
    "json_list_body",
    "lenient_json_list",
    "start_properties",
]


@dataclass(frozen=True, slots=True, eq=False)
class Outgoing:
    """One message to send: properties in wire order, body, and the BLIP flags it goes with."""

    properties: dict[str, str]
    body: bytes = b""
    urgent: bool = False
    compressed: bool = False
    no_reply: bool = False


def start_properties(profile: str, address: Mapping[str, str]) -> dict[str, str]:
    """A fresh property dict starting with ``Profile`` then the collection address."""
    props = {"Profile": profile}
    props.update(address)
    return props


def http_reply(code: int, text: str) -> BlipErrorReply:
    """An ``HTTP``-domain ERR answer."""
    return BlipErrorReply("HTTP", code, text)


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
    """The JSON array body of a ``changes``/``proposeChanges`` message, or BLIP/400 (BLIP/413
    when it has more than ``MAX_CHANGES_PER_MESSAGE`` entries)."""
    entries = checked_json(message)
    if not isinstance(entries, list):
        raise BlipErrorReply("BLIP", 400, "Invalid JSON body")
    if len(entries) > MAX_CHANGES_PER_MESSAGE:
        raise BlipErrorReply(
            "BLIP", 413, f"Too many entries: {len(entries)} (at most {MAX_CHANGES_PER_MESSAGE})"
        )
    return entries


def lenient_json_list(body: bytes) -> list[Any]:
    """A reply's JSON array body; anything else (empty, malformed, not a list) is ``[]``, which
    every reader treats as "no answers" (each entry then takes its default)."""
    if not body:
        return []
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    return value if isinstance(value, list) else []
