"""Blobs: content-addressed, streamed, shared, garbage-collected."""

from __future__ import annotations

import base64
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
