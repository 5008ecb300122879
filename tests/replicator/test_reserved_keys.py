"""Reserved top-level properties arriving from a peer are handled as LiteCore handles them
(``model.legacy``): ``_``-properties are stripped, a ``_deleted`` key deletes nothing, real
legacy ``_attachments`` keep their entries and have their blobs fetched and verified, blob
stand-ins go; a blob that cannot be obtained fails its document, reported in the document
event. Through the sink with real SQLite (a stub peer over the in-memory loopback), then end
to end with a real listener and replicator on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from couchlite import (
    AsyncReplicator,
    AsyncUrlEndpointListener,
    Blob,
    Database,
    DocumentReplication,
    MutableDocument,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    ReplicatorType,
    UrlEndpoint,
    UrlEndpointListenerConfiguration,
)
from couchlite.blip import BlipErrorReply, Message
from couchlite.database.records import first_revision
from couchlite.storage.blobstore import digest_of
from couchlite.transport.blip_connection import BlipConnection, Reply
from couchlite.transport.loopback import loopback_pair

from .helpers import Events, StubPassivePeer, default_session, open_db, run

R1 = "1-" + "a1" * 20
R2 = "2-" + "a2" * 20
DATA = b"legacy attachment content " * 40
DIGEST = digest_of(DATA)


class Peer(StubPassivePeer):
    """Announces ``feed``, sends ``revs`` and serves ``blobs`` (digest -> bytes) to
    ``getAttachment``; records each rev's outcome (``None`` or the error code)."""

    def __init__(
        self,
        conn: BlipConnection,
        feed: list[list[Any]],
        revs: list[tuple[dict[str, str], Any]],
        blobs: dict[str, bytes],
    ) -> None:
        self.feed = feed
        self.revs = revs
        self.blobs = blobs
        self.attachments_asked: list[str] = []
        self.results: list[tuple[str, int | None]] = []
        super().__init__(conn)
        conn.register_handler("getAttachment", self._get_attachment)

    async def _get_attachment(self, message: Message) -> Reply:
        digest = message.properties.get("digest", "")
        self.attachments_asked.append(digest)
        if digest not in self.blobs:
            raise BlipErrorReply("HTTP", 404, "No such blob")
        return Reply({}, self.blobs[digest])

    async def _serve(self) -> None:
        await self.conn.request({"Profile": "changes"}, orjson.dumps(self.feed))
        for props, body in self.revs:
            try:
                await self.conn.request({"Profile": "rev", **props}, orjson.dumps(body))
                self.results.append((props["id"], None))
            except BlipErrorReply as exc:
                self.results.append((props["id"], exc.code))
        await self.conn.send_no_reply({"Profile": "changes"}, b"[]", urgent=True)


def _pull(
    db: Database,
    feed: list[list[Any]],
    revs: list[tuple[dict[str, str], Any]],
    blobs: dict[str, bytes] | None = None,
) -> tuple[Peer, Events]:
    async def main() -> tuple[Peer, Events]:
        a, b = loopback_pair()
        active, passive = BlipConnection(a), BlipConnection(b)
        peer = Peer(passive, feed, revs, blobs or {})
        passive.start()
        active.start()
        events = Events()
        session = default_session(active, db, ReplicatorType.PULL, continuous=False, events=events)
        async with asyncio.timeout(15):
            await session.run()
        await active.close()
        await passive.close()
        return peer, events

    result: tuple[Peer, Events] = run(main())
    return result


def _rev(doc_id: str, rev_id: str, seq: int, **extra: str) -> dict[str, str]:
    return {"id": doc_id, "rev": rev_id, "sequence": str(seq), **extra}


def test_old_meta_properties_are_stripped_and_deleted_in_a_body_deletes_nothing(
    tmp_path: Path,
) -> None:
    db = open_db(tmp_path, "a")
    body = {"_deleted": True, "_id": "other", "_rev": "9-ff", "_exp": 5, "_revisions": {}, "a": 1}
    try:
        peer, events = _pull(db, [[1, "d", R1]], [(_rev("d", R1, 1), body)])
        assert peer.results == [("d", None)]
        doc = db.default_collection()["d"]
        assert doc.to_dict() == {"a": 1}
        assert doc.revision_id == R1 and not doc.deleted
        assert events.errors() == []
    finally:
        db.close()


def test_a_delta_that_adds_old_meta_properties_is_stripped_after_it_is_applied(
    tmp_path: Path,
) -> None:
    db = open_db(tmp_path, "a")
    try:
        _pull(db, [[1, "d", R1]], [(_rev("d", R1, 1), {"a": 1})])
        delta = {"_deleted": True, "_id": "x", "b": 2}
        rev = _rev("d", R2, 2, deltaSrc=R1, history=R1)
        peer, _ = _pull(db, [[2, "d", R2]], [(rev, delta)])
        assert peer.results == [("d", None)]
        doc = db.default_collection()["d"]
        assert doc.to_dict() == {"a": 1, "b": 2} and doc.revision_id == R2
    finally:
        db.close()


def test_legacy_attachment_blob_is_fetched_verified_and_stored(tmp_path: Path) -> None:
    db = open_db(tmp_path, "a")
    entry = {"digest": DIGEST, "length": len(DATA), "content_type": "text/plain", "stub": True}
    body = {"title": "t", "_attachments": {"notes.txt": entry}}
    try:
        peer, events = _pull(db, [[1, "d", R1]], [(_rev("d", R1, 1), body)], {DIGEST: DATA})
        assert peer.results == [("d", None)] and peer.attachments_asked == [DIGEST]
        assert events.errors() == []
        doc = db.default_collection()["d"]
        assert doc.to_dict() == body  # the real attachment stays, as LiteCore keeps it
        store = db._engine_or_raise().blobs
        assert store.has(DIGEST)
        with store.open(DIGEST) as f:
            assert f.read() == DATA
        db.compact()  # the entry references the blob: it is kept
        assert store.has(DIGEST)
    finally:
        db.close()


def test_blob_stand_ins_in_attachments_are_dropped(tmp_path: Path) -> None:
    db = open_db(tmp_path, "a")
    blob = {"@type": "blob", "digest": DIGEST, "length": len(DATA), "content_type": "text/plain"}
    stand_in = {"digest": DIGEST, "length": len(DATA), "stub": True, "revpos": 1}
    body = {
        "file": blob,
        "_attachments": {"blob_/file": stand_in, "blob_1": stand_in},
    }
    try:
        peer, _ = _pull(db, [[1, "d", R1]], [(_rev("d", R1, 1), body)], {DIGEST: DATA})
        assert peer.results == [("d", None)]
        doc = db.default_collection()["d"]
        assert set(doc) == {"file"}
        assert isinstance(doc["file"], Blob) and doc["file"].content == DATA
    finally:
        db.close()


def test_stand_in_with_a_newer_digest_updates_the_blob(tmp_path: Path) -> None:
    db = open_db(tmp_path, "a")
    old = digest_of(b"old content")
    blob = {"@type": "blob", "digest": old, "length": 11, "content_type": "text/plain"}
    stand_in = {"digest": DIGEST, "length": len(DATA), "stub": True}
    body = {"file": blob, "_attachments": {"blob_/file": stand_in}}
    try:
        peer, _ = _pull(db, [[1, "d", R1]], [(_rev("d", R1, 1), body)], {DIGEST: DATA})
        assert peer.results == [("d", None)] and peer.attachments_asked == [DIGEST]
        stored = orjson.loads(db.default_collection()["d"].to_json())
        # the attachment has no content_type: the blob's old one does not describe it
        assert stored == {"file": {"@type": "blob", "digest": DIGEST, "length": len(DATA)}}
    finally:
        db.close()


def test_legacy_attachment_with_wrong_content_fails_the_document(tmp_path: Path) -> None:
    db = open_db(tmp_path, "a")
    body = {"_attachments": {"a.bin": {"digest": DIGEST, "length": len(DATA), "stub": True}}}
    try:
        peer, events = _pull(
            db, [[1, "d", R1]], [(_rev("d", R1, 1), body)], {DIGEST: b"something else"}
        )
        assert peer.results[0][1] is not None
        assert db.default_collection().get("d") is None
        assert not db._engine_or_raise().blobs.has(DIGEST)
        [failed] = events.errors()
        assert failed.id == "d" and "digest" in str(failed.error)
    finally:
        db.close()


def test_legacy_attachment_the_peer_cannot_serve_fails_the_document(tmp_path: Path) -> None:
    db = open_db(tmp_path, "a")
    body = {"_attachments": {"a.bin": {"digest": DIGEST, "length": len(DATA), "stub": True}}}
    try:
        peer, events = _pull(
            db, [[1, "d", R1], [2, "e", R1]], [(_rev("d", R1, 1), body), (_rev("e", R1, 2), {})]
        )
        assert peer.results[0][1] is not None and peer.results[1] == ("e", None)
        assert db.default_collection().get("d") is None
        assert "e" in db.default_collection()
        [failed] = events.errors()
        assert failed.id == "d" and "No such blob" in str(failed.error)
    finally:
        db.close()


# --- end to end: a real listener and a real replicator ----------------------------------------


def _store_unchecked(db: Database, doc_id: str, body: dict[str, Any]) -> None:
    """Store a body as a database written before saves refused reserved keys holds it."""
    engine = db._engine_or_raise()
    state = db.default_collection()._state
    with engine.transaction() as txn:
        record = first_revision(state.next_sequence(), doc_id, orjson.dumps(body))
        engine.put_record(txn, state, record)


async def _replicate(
    local: Database, remote: Database, kind: ReplicatorType
) -> tuple[Any, list[DocumentReplication]]:
    listener_config = UrlEndpointListenerConfiguration(
        collections=[remote.default_collection()],
        network_interface="127.0.0.1",
        disable_tls=True,
    )
    async with AsyncUrlEndpointListener(listener_config) as listener:
        config = ReplicatorConfiguration(
            UrlEndpoint(f"ws://127.0.0.1:{listener.port}/{remote.name}"), replicator_type=kind
        )
        config.add_collection(local.default_collection())
        replicator = AsyncReplicator(config)
        events: list[DocumentReplication] = []
        replicator.add_document_replication_listener(events.append)
        await replicator.start()
        status = await replicator.wait_for(ReplicatorActivityLevel.STOPPED)
        for _ in range(50):  # listener calls are dispatched: let them run
            await asyncio.sleep(0)
        return status, events


def test_end_to_end_legacy_attachment_pulled_and_missing_blob_reported(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        b_docs = b.default_collection()
        # a blob in b's store, then a document naming it only as a legacy attachment
        b_docs.save(MutableDocument("holder", {"f": Blob("text/plain", DATA)}))
        legacy = {"_attachments": {"n.txt": {"digest": DIGEST, "length": len(DATA), "stub": True}}}
        b_docs.save(MutableDocument("legacy", legacy))
        b_docs.purge("holder")  # the legacy entry alone keeps the blob in b
        assert b._engine_or_raise().blobs.has(DIGEST)

        missing = digest_of(b"nowhere")
        broken = {"_attachments": {"x.bin": {"digest": missing, "length": 7, "stub": True}}}
        a.default_collection().save(MutableDocument("broken", broken))

        _store_unchecked(b, "gone-b", {"_deleted": True, "_rev": "7-ff", "v": "b"})
        _store_unchecked(a, "gone-a", {"_deleted": True, "_id": "elsewhere", "v": "a"})

        status, events = run(_replicate(a, b, ReplicatorType.PUSH_AND_PULL))
        assert status.error is None  # a document's failure is the document's (as in CBL)
        assert a.default_collection()["gone-b"].to_dict() == {"v": "b"}
        assert b_docs["gone-a"].to_dict() == {"v": "a"}
        pulled = a.default_collection()["legacy"]
        assert pulled.to_dict() == legacy
        with a._engine_or_raise().blobs.open(DIGEST) as f:
            assert f.read() == DATA
        failures = [(e.is_push, d) for e in events for d in e.documents if d.error is not None]
        assert [(push, d.id) for push, d in failures] == [(True, "broken")]
        assert "No such blob" in str(failures[0][1].error)
        assert b_docs.get("broken") is None
    finally:
        a.close()
        b.close()
