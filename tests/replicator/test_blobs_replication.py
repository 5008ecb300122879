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
    from couchlite.replicator import sink

    calls = [0]
    original = sink.BlobFetcher._fetch

    async def counting(self, context, doc_id, digest):
        calls[0] += 1
        await original(self, context, doc_id, digest)

    monkeypatch.setattr(sink.BlobFetcher, "_fetch", counting)
    return lambda: calls[0]
