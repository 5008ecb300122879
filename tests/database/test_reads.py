"""Reads by ID: the narrow read outside a transaction always sees the latest commit, and a
thread's own batch keeps seeing its own writes."""

from __future__ import annotations

import threading

from couchlite import Database, MutableDocument


def test_reads_see_every_commit_of_another_thread(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d", {"v": 0}))
    assert col.get("d") is not None
    for v in range(1, 30):
        # a write from another thread, then a read here: no snapshot is held between reads
        writer = threading.Thread(target=_bump, args=(db, v))
        writer.start()
        writer.join(10)
        doc = col.get("d")
        assert doc is not None and doc["v"] == v
        assert doc.sequence == col.last_sequence
        assert doc.revision_id is not None and doc.revision_id.startswith(f"{v + 1}-")
    assert col.get("missing") is None
    assert col.get("missing", "fallback") == "fallback"


def _bump(db: Database, v: int) -> None:
    col = db.default_collection()
    doc = col.get("d")
    assert doc is not None
    mutable = doc.to_mutable()
    mutable["v"] = v
    col.save(mutable)


def test_a_batch_reads_its_own_writes_and_other_threads_do_not(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d", {"v": 1}))
    seen: list[object] = []

    def outside() -> None:
        doc = col.get("d")
        seen.append(None if doc is None else doc["v"])
        seen.append(col.get("new"))

    with db.in_batch():
        doc = col.get("d")
        assert doc is not None
        mutable = doc.to_mutable()
        mutable["v"] = 2
        col.save(mutable)
        col.save(MutableDocument("new", {"v": 3}))
        assert col.get("d")["v"] == 2  # type: ignore[index]
        assert col.get("new")["v"] == 3  # type: ignore[index]
        reader = threading.Thread(target=outside)
        reader.start()
        reader.join(10)
    assert seen == [1, None]
    assert col.get("d")["v"] == 2  # type: ignore[index]
    assert col.get("new")["v"] == 3  # type: ignore[index]
