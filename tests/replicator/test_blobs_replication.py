"""Blobs travel with their documents: fetched with getAttachment, only when missing."""

from __future__ import annotations

from pathlib import Path

from couchlite import Blob, MutableDocument
from couchlite.replicator.types import ReplicatorType

from .helpers import connected, count_profile, open_db, replicate, run, snapshot  # noqa: F401

DATA = bytes(range(256)) * 12


def _with_blob(coll, doc_id: str, data: bytes = DATA) -> None:
    coll.save(
        MutableDocument(doc_id, {"title": doc_id, "file": Blob("application/octet-stream", data)})
    )


def test_blob_pushed_then_not_fetched_again(tmp_path: Path, monkeypatch) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        _with_blob(a.default_collection(), "one")
        fetches = _count_fetches(monkeypatch)
        run(replicate(a, b, ReplicatorType.PUSH))
        assert fetches() == 1
        doc = b.default_collection().get("one")
        assert doc["file"].content == DATA
        _with_blob(a.default_collection(), "two")  # same content
        run(replicate(a, b, ReplicatorType.PUSH))
        assert fetches() == 1
        assert b.default_collection().get("two")["file"].content == DATA
        assert snapshot(a.default_collection()) == snapshot(b.default_collection())
    finally:
        a.close()
        b.close()


def test_blob_pulled(tmp_path: Path, monkeypatch) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        _with_blob(b.default_collection(), "one", b"text blob " * 500)
        _with_blob(b.default_collection(), "two", b"text blob " * 500)
        fetches = _count_fetches(monkeypatch)
        run(replicate(a, b, ReplicatorType.PULL))
        assert fetches() == 1  # two documents, one blob: fetched once
        assert a.default_collection().get("one")["file"].content == b"text blob " * 500
        assert a.default_collection().get("two")["file"].content == b"text blob " * 500
    finally:
        a.close()
        b.close()


def _count_fetches(monkeypatch):
    from couchlite.replicator import blob_fetcher

    calls = [0]
    original = blob_fetcher.BlobFetcher._fetch

    async def counting(self, context, doc_id, digest):
        calls[0] += 1
        await original(self, context, doc_id, digest)

    monkeypatch.setattr(blob_fetcher.BlobFetcher, "_fetch", counting)
    return lambda: calls[0]


# --- the receiver's blobs survive local deletes racing the insert --------------------------

RACE_DOCS = 300


def _delete_locals_before_inserting(monkeypatch, db, deleted: list[str]) -> None:
    """Open the window of the race deterministically: each insert batch on ``db`` first deletes
    (or purges) the local documents sharing blobs with the revisions it is about to insert --
    after the receiver decided their blobs were present, before the insert commits."""
    from couchlite.database.replication_access import ReplicationCollection

    original = ReplicationCollection.insert_revisions

    def insert_revisions(self, revisions):
        if self.collection.database is db:
            col = db.default_collection()
            for revision in revisions:
                local = "local-" + revision.doc_id.removeprefix("remote-")
                doc = col.get(local)
                if doc is not None:
                    col.purge(local) if len(deleted) % 2 else col.delete(doc)
                    deleted.append(local)
        return original(self, revisions)

    monkeypatch.setattr(ReplicationCollection, "insert_revisions", insert_revisions)


def _content(i: int) -> bytes:
    return f"blob number {i} ".encode() * 20


def test_pushed_blobs_survive_a_local_delete_before_the_insert(tmp_path: Path, monkeypatch) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        for i in range(RACE_DOCS):
            _with_blob(b.default_collection(), f"local-{i}", _content(i))
            _with_blob(a.default_collection(), f"remote-{i}", _content(i))
        fetches = _count_fetches(monkeypatch)
        deleted: list[str] = []
        _delete_locals_before_inserting(monkeypatch, b, deleted)
        run(replicate(a, b, ReplicatorType.PUSH))
        assert fetches() == 0  # every blob was present on b: none fetched
        assert len(deleted) == RACE_DOCS  # every window was exercised
        col = b.default_collection()
        for i in range(RACE_DOCS):
            doc = col.get(f"remote-{i}")
            assert doc is not None, f"remote-{i} was not stored"
            assert doc["file"].content == _content(i)
        engine = b._engine_or_raise()
        assert engine.blobs.pinned_count() == 0 and len(engine.blob_leases) == 0
        assert len(list((b.path / "Attachments").glob("*.blob"))) == RACE_DOCS
        # nothing else holds the blobs: deleting the received documents frees them all
        with b.in_batch():
            for i in range(RACE_DOCS):
                col.purge(f"remote-{i}")
        assert list((b.path / "Attachments").glob("*.blob")) == []
    finally:
        a.close()
        b.close()


def test_large_blob_is_served_from_a_map_of_its_file(tmp_path: Path) -> None:
    import os

    from couchlite._tuning import BLOB_LARGE_SIZE
    from couchlite.database.replication_access import replication_store
    from couchlite.replicator.rev_sender import blob_body

    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        large = os.urandom(BLOB_LARGE_SIZE * 3 + 17)
        _with_blob(b.default_collection(), "large", large)
        _with_blob(b.default_collection(), "small", b"small")
        store = replication_store(b)
        digest = b.default_collection().get("large")["file"].digest
        with store.open_blob(digest) as stream:
            body = blob_body(stream)
        assert isinstance(body, memoryview) and body == large
        body.release()
        with store.open_blob(b.default_collection().get("small")["file"].digest) as stream:
            assert blob_body(stream) == b"small"
        run(replicate(a, b, ReplicatorType.PULL))
        assert a.default_collection().get("large")["file"].content == large
        assert a.default_collection().get("small")["file"].content == b"small"
    finally:
        a.close()
        b.close()


def test_pulled_blob_over_the_attachment_cap_fails_the_session(tmp_path: Path) -> None:
    import asyncio
    import os

    import pytest

    from couchlite.blip import BlipLimitExceeded
    from couchlite.database.replication_access import replication_store
    from couchlite.replicator.active import ActiveSession
    from couchlite.replicator.options import SessionCollectionOptions

    from .helpers import REMOTE_URL

    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        _with_blob(b.default_collection(), "big", os.urandom(300_000))

        async def main() -> None:
            store = replication_store(a)
            async with connected(b) as pair:
                pair.active.max_attachment_size = 100_000
                session = ActiveSession(
                    pair.active,
                    store,
                    [SessionCollectionOptions(store.for_collection(a.default_collection()))],
                    replicator_type=ReplicatorType.PULL,
                    continuous=False,
                    remote_url=REMOTE_URL,
                )
                async with asyncio.timeout(20):
                    with pytest.raises(BlipLimitExceeded) as failure:
                        await session.run()
                assert failure.value.close_code == 1009
                assert pair.active.close_code == 1009

        run(main())
        assert a.default_collection().get("big") is None
        assert list((a.path / "Attachments").iterdir()) == []  # no blob, no spool file
    finally:
        a.close()
        b.close()


def test_blob_fetches_in_flight_are_bounded(tmp_path: Path, monkeypatch) -> None:
    from couchlite import _tuning
    from couchlite.replicator import blob_fetcher

    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        for i in range(12):
            _with_blob(b.default_collection(), f"doc-{i}", f"distinct blob {i} ".encode() * 99)
        in_flight = [0, 0]  # now, most seen
        original = blob_fetcher.BlobFetcher._fetch

        async def watched(self, context, doc_id, digest):
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
            try:
                await original(self, context, doc_id, digest)
            finally:
                in_flight[0] -= 1

        monkeypatch.setattr(blob_fetcher.BlobFetcher, "_fetch", watched)
        run(replicate(a, b, ReplicatorType.PULL))
        assert 1 <= in_flight[1] <= _tuning.MAX_BLOB_FETCHES_IN_FLIGHT
        for i in range(12):
            content = a.default_collection().get(f"doc-{i}")["file"].content
            assert content == f"distinct blob {i} ".encode() * 99
    finally:
        a.close()
        b.close()
