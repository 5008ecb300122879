"""Blobs: content-addressed, streamed, shared, garbage-collected."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
from pathlib import Path

import pytest

from couchlite import Blob, Database, DatabaseConfiguration, InvalidArgumentError, MutableDocument


def blob_files(db: Database) -> list[Path]:
    return sorted((db.path / "Attachments").glob("*.blob"))


def sha1_digest(data: bytes) -> str:
    return "sha1-" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def test_blob_round_trip(db: Database) -> None:
    col = db.default_collection()
    data = b"hello blob" * 100
    col.save(MutableDocument("d", {"title": "x", "files": [{"img": Blob("image/png", data)}]}))
    doc = col.get("d")
    assert doc is not None
    blob = doc["files"][0]["img"]
    assert isinstance(blob, Blob)
    assert blob.content == data
    assert blob.digest == sha1_digest(data)
    assert blob.length == len(data)
    assert blob.content_type == "image/png"
    with blob.open() as stream:
        assert stream.read() == data
    assert blob.properties == {
        "@type": "blob",
        "content_type": "image/png",
        "digest": sha1_digest(data),
        "length": len(data),
    }
    stored = doc.to_json()
    assert '"@type":"blob"' in stored and "hello" not in stored
    assert isinstance(doc.to_dict()["files"][0]["img"], Blob)


def test_streamed_blob(db: Database) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, larger than one read chunk
    blob = Blob("application/octet-stream", io.BytesIO(data))
    assert blob.digest is None
    db.default_collection().save(MutableDocument("d", {"data": blob}))
    assert blob.digest == sha1_digest(data) and blob.length == len(data)
    stored = db.default_collection().get("d")["data"]  # type: ignore[index]
    assert stored.content == data
    assert len(blob_files(db)) == 1
    assert not list((db.path / "Attachments").glob("tmp-*"))


def test_identical_content_is_stored_once_and_shared(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("a", {"f": Blob("text/plain", b"same")}))
    col.save(MutableDocument("b", {"f": Blob("text/plain", b"same")}))
    assert len(blob_files(db)) == 1
    col.purge("a")
    assert len(blob_files(db)) == 1  # still referenced by b
    assert col.get("b")["f"].content == b"same"  # type: ignore[index]
    col.purge("b")
    assert blob_files(db) == []


def test_blob_removed_when_the_document_is_deleted_or_changed(db: Database) -> None:
    col = db.default_collection()
    doc = MutableDocument("d", {"f": Blob("text/plain", b"v1")})
    col.save(doc)
    doc["f"] = Blob("text/plain", b"v2")
    col.save(doc)
    # v1 stays while it is the body of the current revision's parent (a delta base)
    doc["other"] = 1
    col.save(doc)
    assert [p.name for p in blob_files(db)] == [hashlib.sha1(b"v2").hexdigest() + ".blob"]
    col.delete(col.get("d"))  # type: ignore[arg-type]
    assert blob_files(db) == []


def test_blob_written_for_a_failed_batch_is_removed(db: Database) -> None:
    col = db.default_collection()
    with pytest.raises(RuntimeError), db.in_batch():
        col.save(MutableDocument("d", {"f": Blob("text/plain", b"temporary")}))
        assert len(blob_files(db)) == 1
        raise RuntimeError
    assert blob_files(db) == []


def test_blob_copied_between_databases(tmp_path: Path) -> None:
    config = DatabaseConfiguration(directory=tmp_path)
    with Database("one", config) as one, Database("two", config) as two:
        one.default_collection().save(MutableDocument("d", {"f": Blob("text/plain", b"abc")}))
        blob = one.default_collection().get("d")["f"]  # type: ignore[index]
        two.default_collection().save(MutableDocument("d", {"f": blob}))
        assert len(blob_files(two)) == 1
        assert two.default_collection().get("d")["f"].content == b"abc"  # type: ignore[index]


def test_invalid_blob_content() -> None:
    with pytest.raises(InvalidArgumentError):
        Blob("text/plain", 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        _ = Blob("text/plain", io.BytesIO(b"x")).properties


def test_compact_removes_orphans(db: Database) -> None:
    orphan = db._engine_or_raise().blobs.put(b"nobody refers to me")[0]
    db.default_collection().save(MutableDocument("d", {"f": Blob("text/plain", b"kept")}))
    db.compact()
    names = [p.name for p in blob_files(db)]
    assert names == [hashlib.sha1(b"kept").hexdigest() + ".blob"]
    assert orphan


# --- references and garbage collection: legacy attachments, pins, leases -------------------


def _store(db: Database):  # type: ignore[no-untyped-def]
    from couchlite.database.replication_access import replication_store

    store = replication_store(db)
    return store, store.for_collection(db.default_collection())


def _incoming(doc_id: str, body: dict[str, object], history: list[str] | None = None):  # type: ignore[no-untyped-def]
    import orjson

    from couchlite.model.revid import new_rev_id
    from couchlite.replicator.store import IncomingRevision

    raw = orjson.dumps(body)
    parent = history[0] if history else None
    return IncomingRevision(doc_id, new_rev_id(parent, False, raw), history or [], raw, False)


def _blob_dict(data: bytes) -> dict[str, object]:
    return {"@type": "blob", "digest": sha1_digest(data), "length": len(data)}


def test_compact_keeps_blobs_of_legacy_attachments(db: Database) -> None:
    store, coll = _store(db)
    data = b"a legacy attachment"
    store.store_blob(sha1_digest(data), data)
    legacy = {"_attachments": {"a.txt": {"digest": sha1_digest(data), "stub": True, "revpos": 1}}}
    (outcome,) = coll.insert_revisions([_incoming("legacy", legacy)])
    assert outcome.error is None
    db.compact()
    assert store.has_blob(sha1_digest(data))
    # and the reference is counted like any other: purging the document frees the blob (a
    # delete would keep the received revision's body, a delta base, and so the blob)
    db.default_collection().purge("legacy")
    assert blob_files(db) == []


def test_local_document_with_legacy_attachments_keeps_its_blob(db: Database) -> None:
    data = b"attached the old way"
    digest = db._engine_or_raise().blobs.put(data)[0]
    col = db.default_collection()
    col.save(MutableDocument("d", {"_attachments": {"x": {"digest": digest, "stub": True}}}))
    db.compact()
    col.save(MutableDocument("other", {"n": 1}))
    assert len(blob_files(db)) == 1
    col.purge("d")
    assert blob_files(db) == []


def test_compact_skips_pinned_blobs_and_collects_them_once_unpinned(db: Database) -> None:
    engine = db._engine_or_raise()
    digest = engine.blobs.put(b"fetched, not inserted yet")[0]
    engine.blobs.pin([digest])
    assert db._engine_or_raise().collect_all_garbage() == 0
    assert engine.blobs.has(digest)
    engine.blobs.unpin([digest])
    # the next collection of any kind looks at it again
    db.default_collection().save(MutableDocument("unrelated", {"n": 1}))
    assert not engine.blobs.has(digest)


def test_compact_inside_a_batch_keeps_the_blobs_the_batch_wrote(db: Database) -> None:
    col = db.default_collection()
    with db.in_batch():
        col.save(MutableDocument("d", {"f": Blob("text/plain", b"not committed yet")}))
        db.compact()
    assert col.get("d")["f"].content == b"not committed yet"  # type: ignore[index]


def test_saving_a_blob_whose_content_is_gone_is_refused(db: Database) -> None:
    from couchlite import NotFoundError

    col = db.default_collection()
    col.save(MutableDocument("d", {"f": Blob("text/plain", b"short-lived")}))
    blob = col.get("d")["f"]  # type: ignore[index]
    col.purge("d")
    assert blob_files(db) == []
    with pytest.raises(NotFoundError):
        col.save(MutableDocument("e", {"f": blob}))
    assert col.get("e") is None


def test_insert_of_a_revision_whose_blob_is_missing_is_refused(db: Database) -> None:
    from couchlite import NotFoundError

    _, coll = _store(db)
    (outcome,) = coll.insert_revisions([_incoming("d", {"f": _blob_dict(b"never stored")})])
    assert isinstance(outcome.error, NotFoundError)
    assert db.default_collection().get("d") is None


def test_lease_keeps_a_present_blob_through_a_local_delete(db: Database) -> None:
    store, coll = _store(db)
    col = db.default_collection()
    data = b"shared by a local and a received document"
    col.save(MutableDocument("local", {"f": Blob("text/plain", data)}))
    incoming = _incoming("remote", {"f": _blob_dict(data)})
    lease = store.lease_blobs(coll, "remote", [sha1_digest(data)])
    assert store.has_blob(sha1_digest(data))  # present: the receiver does not fetch it
    col.delete(col.get("local"))  # type: ignore[arg-type]
    assert store.has_blob(sha1_digest(data))  # pinned: not collected
    (outcome,) = coll.insert_revisions([incoming])
    assert outcome.error is None
    assert col.get("remote")["f"].content == data  # type: ignore[index]
    assert not db._engine_or_raise().blobs.is_pinned(sha1_digest(data))  # the insert released it
    lease.release()  # (already released: a no-op)
    col.purge("remote")
    assert blob_files(db) == []


def test_blob_fetched_for_a_failed_insert_is_collected(db: Database) -> None:
    store, coll = _store(db)
    col = db.default_collection()
    col.save(MutableDocument("d", {"n": 1}))
    data = b"fetched for a revision that conflicts"
    lease = store.lease_blobs(coll, "d", [sha1_digest(data)])
    store.store_blob(sha1_digest(data), data)
    lease.fetched(sha1_digest(data))
    conflicting = dataclasses.replace(_incoming("d", {"f": _blob_dict(data)}), no_conflicts=True)
    (outcome,) = coll.insert_revisions([conflicting])
    assert outcome.error is not None
    assert blob_files(db) == []  # nothing references it and nobody pins it any more


def test_lease_released_without_insert_lets_the_blob_go(db: Database) -> None:
    store, coll = _store(db)
    data = b"the peer failed before the insert"
    lease = store.lease_blobs(coll, "d", [sha1_digest(data)])
    store.store_blob(sha1_digest(data), data)
    lease.fetched(sha1_digest(data))
    db.compact()
    assert len(blob_files(db)) == 1  # still pinned
    lease.release()
    db.compact()
    assert blob_files(db) == []
    assert len(db._engine_or_raise().blob_leases) == 0


def test_waiting_leases_are_bounded(db: Database) -> None:
    from couchlite.database.blob import BlobLeases

    engine = db._engine_or_raise()
    leases = BlobLeases(engine.blobs, limit=3)
    digests = [sha1_digest(bytes([i])) for i in range(5)]
    taken = [leases.take(1, f"d{i}", [digests[i]]) for i in range(5)]
    assert len(leases) == 3
    assert [engine.blobs.is_pinned(d) for d in digests] == [False, False, True, True, True]
    assert leases.claim(1, "d0", [digests[0]]) is None  # evicted (and released)
    assert leases.claim(1, "d4", [digests[4]]) is taken[4]
    assert leases.claim(1, "d4", [digests[4]]) is None
    for lease in taken:
        lease.release()
    assert engine.blobs.pinned_count() == 0 and len(leases) == 0


def test_opening_an_older_database_counts_its_legacy_attachments(tmp_path: Path) -> None:
    import sqlite3

    config = DatabaseConfiguration(directory=tmp_path)
    data = b"attached before legacy attachments were counted"
    with Database("old", config) as db:
        digest = db._engine_or_raise().blobs.put(data)[0]
        col = db.default_collection()
        col.save(MutableDocument("d", {"_attachments": {"x": {"digest": digest, "stub": True}}}))
        doc = col.get("d").to_mutable()  # type: ignore[union-attr]
        doc["edited"] = True
        col.save(doc)  # (a tree now: one body kept in it, one current)
        path = db.path / "db.sqlite3"
    # what a database written before looked like: no references, no flag, no version
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM blob_refs")
        conn.execute("UPDATE kv_1 SET flags = flags & ~4")
        conn.execute("DELETE FROM info WHERE key = 'blob_refs_version'")
    conn.close()
    with Database("old", config) as db:
        db.compact()
        assert len(blob_files(db)) == 1
        db.default_collection().purge("d")
        assert blob_files(db) == []


def test_conflict_resolution_naming_a_missing_blob_is_refused(db: Database) -> None:
    import orjson

    from couchlite import NotFoundError

    _, coll = _store(db)
    col = db.default_collection()
    col.save(MutableDocument("d", {"side": "local"}))
    (outcome,) = coll.insert_revisions([_incoming("d", {"side": "remote"})])
    assert outcome.conflicted
    ((doc_id, remote_rev),) = coll.conflicted_documents()
    conflict = coll.conflicting_revisions(doc_id, remote_rev)
    assert conflict is not None
    body = orjson.dumps({"f": _blob_dict(b"collected before the resolution was saved")})
    with pytest.raises(NotFoundError):
        coll.resolve_conflict(doc_id, conflict.local_rev, conflict.remote_rev, body)
    assert coll.conflicted_documents() == [(doc_id, remote_rev)]  # still to be resolved
