"""The active session's wire behaviour against a scripted peer: message order, exact
properties (interop facts 3-8, 16), revocations, and re-proposal after a 409."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from couchlite.blip import Message
from couchlite.database.replication_access import replication_store
from couchlite.replicator.types import DocumentFlags, ReplicatorType
from couchlite.transport.blip_connection import BlipConnection
from couchlite.transport.loopback import loopback_pair

from .helpers import Events, StubPassivePeer, default_session, open_db, put, replicate, run


class ScriptedPeer(StubPassivePeer):
    """A passive peer that records requests and serves a fixed changes feed."""

    def __init__(self, conn: BlipConnection, feed: list[list[Any]], revs: dict[str, Any]):
        self.feed = feed
        self.revs = revs
        self.changes_replies: list[Message] = []
        super().__init__(conn)

    async def _serve(self) -> None:
        reply = await self.conn.request(
            {"Profile": "changes"}, orjson.dumps(self.feed), urgent=True, compressed=True
        )
        self.changes_replies.append(reply)
        await self.conn.send_no_reply({"Profile": "changes"}, b"[]", urgent=True)
        for entry, answer in zip(self.feed, reply.json(), strict=False):
            if isinstance(answer, list):
                seq, doc_id, rev_id = entry[:3]
                props = {"Profile": "rev", "id": doc_id, "rev": rev_id, "sequence": str(seq)}
                await self.conn.request(props, orjson.dumps(self.revs[doc_id]), compressed=True)


def test_pull_properties_revocation_and_caught_up(tmp_path: Path) -> None:
    db = open_db(tmp_path, "a")
    put(db.default_collection(), "revoked", {"v": 0})
    put(db.default_collection(), "have", {"v": 1})
    have_rev = db.default_collection().get("have").revision_id
    feed = [
        [1, "new", "1-" + "aa" * 20, 0, 10],
        [2, "have", have_rev, 0, 10],
        [3, "revoked", "2-" + "bb" * 20, 2],
    ]

    async def main() -> tuple[ScriptedPeer, Events]:
        a, b = loopback_pair()
        active, passive = BlipConnection(a), BlipConnection(b)
        peer = ScriptedPeer(passive, feed, {"new": {"n": 1}})
        passive.start()
        active.start()
        events = Events()
        session = default_session(
            active,
            db,
            ReplicatorType.PULL,
            continuous=False,
            events=events,
        )
        async with asyncio.timeout(10):
            await session.run()
        await active.close()
        await passive.close()
        return peer, events

    try:
        peer, events = run(main())
        profiles = [m.profile for m in peer.requests]
        assert profiles == ["getCheckpoint", "subChanges", "setCheckpoint"]
        sub = peer.requests[1]
        assert list(sub.properties.items()) == [
            ("Profile", "subChanges"),
            ("batch", "200"),
            ("sendReplacementRevs", "1"),
            ("versioning", "rev-trees"),
            ("revocations", "true"),
        ]  # not activeOnly: the database was not empty
        reply = peer.changes_replies[0]
        assert reply.properties == {"maxHistory": "50", "blobs": "true"}
        assert reply.compressed and reply.urgent
        assert reply.json() == [[], 0, 0]
        assert db.default_collection().get("new")["n"] == 1
        assert db.default_collection().get("revoked") is None  # auto-purged
        flags = {d.id: d.flags for _, d in events.docs}
        assert flags["revoked"] == DocumentFlags.ACCESS_REMOVED
        checkpoint = peer.requests[2]
        assert checkpoint.properties["rev"] == ""  # first save: present but empty
        assert orjson.loads(checkpoint.body)["remote"] == 3
    finally:
        db.close()


def test_409_with_an_ancestor_is_reproposed_with_server_rev(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        first = put(a.default_collection(), "d", {"v": 1})
        run(replicate(a, b, ReplicatorType.PUSH))
        put(a.default_collection(), "d", {"v": 2})
        events = Events()
        # reset: no knowledge of what the peer has -> 409 {"rev": first} -> again with first
        session = run(replicate(a, b, ReplicatorType.PUSH, reset=True, events=events))
        assert events.errors() == []
        assert session.revs_sent == 1
        doc = b.default_collection().get("d")
        assert doc["v"] == 2
        assert first in [r for r in _history(b, "d")]
    finally:
        a.close()
        b.close()


def _history(db, doc_id):
    store = replication_store(db).for_collection(db.default_collection())
    current = store.current_revision(doc_id)
    return store.get_revision(doc_id, current[0], [], 50).history
