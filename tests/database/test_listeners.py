"""Change listeners: called after commit, once per transaction, removable."""

from __future__ import annotations

import pytest

from couchlite import CollectionChange, Database, DocumentChange, MutableDocument


def test_collection_listener_after_commit(db: Database) -> None:
    col = db.default_collection()
    events: list[CollectionChange] = []
    token = col.add_change_listener(events.append)
    col.save(MutableDocument("a"))
    assert len(events) == 1
    assert events[0].collection is col and events[0].document_ids == ["a"]
    with db.in_batch():
        col.save(MutableDocument("b"))
        col.save(MutableDocument("c"))
        assert len(events) == 1  # nothing before the commit
    assert events[-1].document_ids == ["b", "c"]
    token.remove()
    col.save(MutableDocument("d"))
    assert len(events) == 2


def test_listener_sees_committed_state(db: Database) -> None:
    col = db.default_collection()
    seen = []
    col.add_change_listener(lambda ch: seen.append(ch.collection.get("a") is not None))
    col.save(MutableDocument("a"))
    assert seen == [True]


def test_document_listener(db: Database) -> None:
    col = db.default_collection()
    events: list[DocumentChange] = []
    col.add_document_change_listener("watched", events.append)
    col.save(MutableDocument("other"))
    assert events == []
    doc = MutableDocument("watched")
    col.save(doc)
    col.delete(doc)
    col.purge("watched")
    assert [e.document_id for e in events] == ["watched"] * 3
    assert events[0].collection is col


def test_no_notification_for_a_failed_batch(db: Database) -> None:
    col = db.default_collection()
    events: list[CollectionChange] = []
    col.add_change_listener(events.append)
    with pytest.raises(RuntimeError), db.in_batch():
        col.save(MutableDocument("a"))
        raise RuntimeError
    assert events == []


def test_listeners_are_per_collection(db: Database) -> None:
    a = db.create_collection("a")
    b = db.create_collection("b")
    events: list[CollectionChange] = []
    a.add_change_listener(events.append)
    b.save(MutableDocument("x"))
    assert events == []
    with db.in_batch():
        a.save(MutableDocument("1"))
        b.save(MutableDocument("2"))
    assert [e.document_ids for e in events] == [["1"]]


def test_a_failing_listener_does_not_break_saves(db: Database) -> None:
    col = db.default_collection()
    events: list[CollectionChange] = []

    def bad(change: CollectionChange) -> None:
        raise ValueError("listener bug")

    col.add_change_listener(bad)
    col.add_change_listener(events.append)
    col.save(MutableDocument("a"))
    assert col.get("a") is not None and len(events) == 1


def test_listeners_removed_on_close(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from couchlite import DatabaseConfiguration

    config = DatabaseConfiguration(directory=tmp_path)
    first = Database("db", config)
    second = Database("db", config)  # same files, same engine
    events: list[CollectionChange] = []
    first.default_collection().add_change_listener(events.append)
    second.default_collection().save(MutableDocument("a"))
    assert [e.document_ids for e in events] == [["a"]]  # notified across instances
    first.close()
    second.default_collection().save(MutableDocument("b"))
    assert len(events) == 1
    second.close()
