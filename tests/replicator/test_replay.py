"""Replay the active side of real Couchbase Lite sessions against our passive session and
compare our answers with the recorded LiteCore passive's: same profiles, statuses, property
names (and values where they are not digests or times), and flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from couchlite.blip import BlipErrorReply, BlipProtocol, Message, MessageType
from couchlite.transport.blip_connection import Reply
from tests.data import INTEROP

from .helpers import connected, open_db, run


def _messages(path: Path) -> dict[str, list[Message]]:
    decoders = {d: BlipProtocol(strict_numbering=False) for d in ("c2s", "s2c")}
    out: dict[str, list[Message]] = {"c2s": [], "s2c": []}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        record = json.loads(line)
        if "hex" not in record:
            continue
        out[record["dir"]].extend(
            decoders[record["dir"]].receive_frame(bytes.fromhex(record["hex"]))
        )
    return out


def _shape(message: Message) -> dict[str, Any]:
    props = dict(message.properties)
    for volatile in ("rev",):  # checkpoint revisions are compared separately
        props.pop(volatile, None)
    return {
        "type": message.type,
        "error": (message.error_domain, message.error_code) if message.is_error else None,
        "props": props,
        "compressed": message.compressed and bool(message.body),
        "urgent": message.urgent,
    }


@pytest.mark.parametrize("name", ["01-push-basic", "07-named-collection"])
def test_replay_recorded_client_against_passive(tmp_path: Path, name: str) -> None:
    path = INTEROP / f"{name}.jsonl"
    recorded = _messages(path)
    requests = [m for m in recorded["c2s"] if m.type is MessageType.REQUEST]
    replies = {
        m.number: m for m in recorded["s2c"] if m.type in (MessageType.RESPONSE, MessageType.ERROR)
    }
    db = open_db(tmp_path, "passive")
    collections = [db.create_collection("items", "store")] if "named" in name else None

    async def main() -> None:
        async with connected(db, collections) as pair:

            async def changes(message: Message) -> Reply | None:
                return None if message.no_reply else Reply(body=b"[]")

            pair.active.register_handler("changes", changes)
            for request in requests:
                props = list(request.properties.items())
                if request.no_reply:
                    await pair.active.send_no_reply(
                        props, request.body, urgent=request.urgent, compressed=request.compressed
                    )
                    continue
                try:
                    ours = await pair.active.request(
                        props, request.body, urgent=request.urgent, compressed=request.compressed
                    )
                except BlipErrorReply as exc:
                    assert replies[request.number].is_error, (request.profile, exc)
                    theirs = replies[request.number]
                    assert (exc.error_domain, exc.code) == (
                        theirs.error_domain,
                        theirs.error_code,
                    )
                    continue
                theirs = replies[request.number]
                assert _shape(ours) == _shape(theirs), request.profile
                if request.profile == "setCheckpoint":
                    assert ours.properties["rev"] == theirs.properties["rev"]
                if request.profile in ("proposeChanges", "getCollections"):
                    assert ours.json() == theirs.json()

    try:
        run(main())
    finally:
        db.close()
