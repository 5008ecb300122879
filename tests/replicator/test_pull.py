"""One-shot pull, filters, document IDs, activeOnly, and a named collection."""

from __future__ import annotations

from pathlib import Path

from couchlite.replicator.types import ReplicatorType

from .helpers import Events, history, open_db, put, replicate, run, snapshot


def test_pull_new_updated_deleted(tmp_path: Path) -> None:
    src, dst = open_db(tmp_path, "src"), open_db(tmp_path, "dst")
    try:
        remote = dst.default_collection()
        for i in range(50):
            put(remote, f"d{i}", {"i": i, "s": "é" * i})
        events = Events()
        session = run(replicate(src, dst, ReplicatorType.PULL, events=events))
        assert session.revs_received == 50
        assert events.errors() == []
        assert snapshot(src.default_collection()) == snapshot(remote)
        assert events.progress_calls[-1] == (50, 50)

        put(remote, "d1", {"i": "changed"})
        doc = remote.get("d2")
        assert doc is not None
        remote.delete(doc)
        session = run(replicate(src, dst, ReplicatorType.PULL))
        assert session.revs_received == 2
        assert snapshot(src.default_collection()) == snapshot(remote)
        assert history(src.default_collection(), "d1") == history(remote, "d1")
        assert history(src.default_collection(), "d2") == history(remote, "d2")
        assert run(replicate(src, dst, ReplicatorType.PULL)).revs_received == 0
    finally:
        src.close()
        dst.close()


def test_pull_filter_and_document_ids(tmp_path: Path) -> None:
    src, dst = open_db(tmp_path, "src"), open_db(tmp_path, "dst")
    try:
        remote = dst.default_collection()
        for i in range(10):
            put(remote, f"d{i}", {"i": i})
        run(
            replicate(
                src,
                dst,
                ReplicatorType.PULL,
                options={"pull_filter": lambda doc_id, rev, deleted, body: b'"i":3' not in body},
            )
        )
        assert set(snapshot(src.default_collection())) == {f"d{i}" for i in range(10)} - {"d3"}

        src2 = open_db(tmp_path, "src2")
        try:
            run(
                replicate(
                    src2,
                    dst,
                    ReplicatorType.PULL,
                    options={"document_ids": frozenset({"d1", "d7"})},
                )
            )
            assert set(snapshot(src2.default_collection())) == {"d1", "d7"}
        finally:
            src2.close()
    finally:
        src.close()
        dst.close()


def test_pull_named_collections(tmp_path: Path) -> None:
    src, dst = open_db(tmp_path, "src"), open_db(tmp_path, "dst")
    try:
        items = dst.create_collection("items", "store")
        notes = dst.create_collection("notes")
        put(items, "i1", {"k": "item"})
        put(notes, "n1", {"k": "note"})
        put(dst.default_collection(), "ignored", {"k": 0})
        mine = [src.create_collection("items", "store"), src.create_collection("notes")]
        run(replicate(src, dst, ReplicatorType.PULL, collections=mine))
        assert snapshot(mine[0]) == snapshot(items)
        assert snapshot(mine[1]) == snapshot(notes)
        assert snapshot(src.default_collection()) == {}
    finally:
        src.close()
        dst.close()
