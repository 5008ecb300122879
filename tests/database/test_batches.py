"""in_batch: one transaction, nesting, all-or-nothing, isolation from other threads."""

from __future__ import annotations

import threading

import pytest

from couchlite import ConcurrencyControl, ConflictError, Database, MutableDocument
from couchlite.model.revid import parse_rev_id


class Boom(Exception):
    pass


def test_batch_commits_everything(db: Database) -> None:
    col = db.default_collection()
    with db.in_batch():
        for i in range(100):
            col.save(MutableDocument(f"d{i}", {"i": i}))
        assert col.count == 100  # the batch sees its own writes
    assert col.count == 100
    assert [c.doc_id for c in col.changes()] == [f"d{i}" for i in range(100)]


def test_failed_batch_writes_nothing(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("keep", {"v": 1}))
    with pytest.raises(Boom), db.in_batch():
        col.save(MutableDocument("new", {"v": 1}))
        doc = col.get("keep").to_mutable()  # type: ignore[union-attr]
        doc["v"] = 2
        col.save(doc)
        col.purge("keep")
        raise Boom
    assert col.get("new") is None
    assert col.get("keep")["v"] == 1  # type: ignore[index]
    assert col.count == 1
    assert [c.doc_id for c in col.changes()] == ["keep"]


def test_nested_batch_failure_rolls_back_only_the_inner_writes(db: Database) -> None:
    col = db.default_collection()
    with db.in_batch():
        col.save(MutableDocument("outer-1"))
        try:
            with db.in_batch():
                col.save(MutableDocument("inner"))
                doc = col.get("outer-1").to_mutable()  # type: ignore[union-attr]
                doc["changed"] = True
                col.save(doc)
                raise Boom
        except Boom:
            pass
        assert col.get("inner") is None
        assert "changed" not in col.get("outer-1")  # type: ignore[operator]
        col.save(MutableDocument("outer-2"))
    assert sorted(col.document_ids()) == ["outer-1", "outer-2"]
    assert "changed" not in col.get("outer-1")  # type: ignore[operator]


def test_outer_failure_discards_committed_looking_inner_batches(db: Database) -> None:
    col = db.default_collection()
    with pytest.raises(Boom), db.in_batch():
        with db.in_batch():
            col.save(MutableDocument("inner"))
        raise Boom
    assert col.get("inner") is None and col.count == 0


def test_batch_is_invisible_to_other_threads_until_commit(db: Database) -> None:
    col = db.default_collection()
    seen: list[object] = []
    inside = threading.Event()
    checked = threading.Event()

    def reader() -> None:
        inside.wait(10)
        seen.append(col.get("d"))
        seen.append(col.count)
        checked.set()

    t = threading.Thread(target=reader)
    t.start()
    with db.in_batch():
        col.save(MutableDocument("d"))
        inside.set()
        assert checked.wait(10)
    t.join(10)
    assert seen == [None, 0]
    assert col.get("d") is not None


def test_other_threads_writes_wait_for_the_batch(db: Database) -> None:
    col = db.default_collection()
    order: list[str] = []
    started = threading.Event()

    def writer() -> None:
        started.set()
        col.save(MutableDocument("other"))
        order.append("other saved")

    with db.in_batch():
        col.save(MutableDocument("mine"))
        t = threading.Thread(target=writer)
        t.start()
        started.wait(10)
        t.join(0.2)  # it cannot finish while the batch holds the write lock
        order.append("batch ending")
    t.join(10)
    assert order == ["batch ending", "other saved"]
    assert col.count == 2


def test_new_documents_in_a_batch_overwriting_existing_ones(db: Database) -> None:
    # new documents in a batch are checked against the store in bulk before the commit
    col = db.default_collection()
    col.save(MutableDocument("a", {"v": 1}))
    col.save(MutableDocument("b", {"v": 1}))
    docs = [MutableDocument(i, {"v": 2}) for i in ("a", "b", "c")]
    with db.in_batch():
        for doc in docs:
            col.save(doc)
    assert [parse_rev_id(d.revision_id or "")[0] for d in docs] == [2, 2, 1]
    assert [col.get(i).revision_id for i in "abc"] == [d.revision_id for d in docs]  # type: ignore[union-attr]
    assert col.count == 3


def test_large_batch_of_new_documents_some_of_which_exist(db: Database) -> None:
    # new documents are inserted without a look-up; when some IDs turn out to be taken, the
    # commit is rolled back and redone with those rebased on their stored revisions
    col = db.default_collection()
    taken = {3, 128, 200, 299}
    for i in sorted(taken):
        col.save(MutableDocument(f"d{i}", {"v": "old"}))
    changed: list[str] = []
    token = col.add_change_listener(lambda change: changed.extend(change.document_ids))
    docs = [MutableDocument(f"d{i}", {"v": i}) for i in range(300)]
    with db.in_batch():
        for doc in docs:
            col.save(doc)
    token.remove()
    assert col.count == 300
    for i, doc in enumerate(docs):
        stored = col.get(f"d{i}")
        assert stored is not None and stored["v"] == i
        assert stored.revision_id == doc.revision_id and stored.sequence == doc.sequence
        assert parse_rev_id(doc.revision_id or "")[0] == (2 if i in taken else 1)
    assert sorted(changed) == sorted(f"d{i}" for i in range(300))
    feed = list(col.changes())
    assert len(feed) == 300 and [c.sequence for c in feed] == sorted(c.sequence for c in feed)
    # the history of a taken document was kept (its old revision is the parent)
    with db.in_batch():
        docs[3]["v"] = "again"
        col.save(docs[3], ConcurrencyControl.FAIL_ON_CONFLICT)
    assert parse_rev_id(col.get("d3").revision_id or "")[0] == 3  # type: ignore[union-attr]


def test_the_revision_of_a_new_document_over_a_taken_id_is_exact_inside_the_batch(
    db: Database,
) -> None:
    col = db.default_collection()
    col.save(MutableDocument("a", {"v": 1}))
    with db.in_batch():
        doc = MutableDocument("a", {"v": 2})
        col.save(doc)  # written without a look-up; asking for the revision settles it
        assert parse_rev_id(doc.revision_id or "")[0] == 2
        copy = doc.to_mutable()
        copy["v"] = 3
        col.save(copy, ConcurrencyControl.FAIL_ON_CONFLICT)
    assert col.get("a")["v"] == 3  # type: ignore[index]
    assert parse_rev_id(col.get("a").revision_id or "")[0] == 3  # type: ignore[union-attr]


def test_guessed_new_documents_rolled_back_by_an_inner_batch(db: Database) -> None:
    col = db.default_collection()
    kept, dropped = MutableDocument("kept"), MutableDocument("dropped", {"x": 1})
    with db.in_batch():
        col.save(kept)
        with pytest.raises(Boom), db.in_batch():
            col.save(dropped)
            assert dropped.revision_id is not None
            raise Boom
        assert dropped.revision_id is None and dropped.sequence == 0
        assert dropped.collection is None and col.get("dropped") is None
    assert sorted(col.document_ids()) == ["kept"] and col.count == 1
    col.save(dropped, ConcurrencyControl.FAIL_ON_CONFLICT)
    assert col.count == 2


def test_guessed_new_documents_then_purged_or_given_an_expiration(db: Database) -> None:
    import datetime as dt

    col = db.default_collection()
    col.save(MutableDocument("old", {"v": 1}))
    when = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    with db.in_batch():
        col.save(MutableDocument("old", {"v": 2}))  # guessed new, but it exists
        col.save(MutableDocument("fresh", {"v": 1}))
        col.save(MutableDocument("gone", {"v": 1}))
        col.set_document_expiration("old", when)
        col.purge("gone")
    assert sorted(col.document_ids()) == ["fresh", "old"] and col.count == 2
    old = col.get("old")
    assert old is not None and old["v"] == 2 and parse_rev_id(old.revision_id or "")[0] == 2
    assert col.get_document_expiration("old") == when


def test_reading_a_guessed_new_document_inside_the_batch(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("a", {"v": 1}))
    with db.in_batch():
        doc = MutableDocument("a", {"v": 2})
        col.save(doc)
        got = col.get("a")
        assert got is not None and got["v"] == 2
        assert parse_rev_id(got.revision_id or "")[0] == 2
        assert doc.revision_id == got.revision_id
        doc["v"] = 3
        col.save(doc, ConcurrencyControl.FAIL_ON_CONFLICT)
    assert col.get("a")["v"] == 3  # type: ignore[index]
    assert parse_rev_id(col.get("a").revision_id or "")[0] == 3  # type: ignore[union-attr]


def test_conflict_inside_a_batch_leaves_the_rest(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("x", {"v": 1}))
    with db.in_batch():
        col.save(MutableDocument("y"))
        with pytest.raises(ConflictError):
            col.save(MutableDocument("x", {"v": 2}), ConcurrencyControl.FAIL_ON_CONFLICT)
        col.save(MutableDocument("z"))
    assert sorted(col.document_ids()) == ["x", "y", "z"]
    assert col.get("x")["v"] == 1  # type: ignore[index]


def test_batch_across_collections(db: Database) -> None:
    a = db.create_collection("a", "s")
    b = db.create_collection("b", "s")
    with pytest.raises(Boom), db.in_batch():
        a.save(MutableDocument("1"))
        b.save(MutableDocument("1"))
        raise Boom
    assert a.count == 0 and b.count == 0
    with db.in_batch():
        a.save(MutableDocument("1"))
        b.save(MutableDocument("1"))
    assert a.count == 1 and b.count == 1


def test_closing_inside_a_batch_is_refused(db: Database) -> None:
    from couchlite import DatabaseError

    with db.in_batch():
        with pytest.raises(DatabaseError):
            db.close()
        db.default_collection().save(MutableDocument("d"))
    assert db.default_collection().count == 1


def test_documents_get_their_old_revision_back_when_the_batch_fails(db: Database) -> None:
    col = db.default_collection()
    existing = MutableDocument("e", {"v": 1})
    col.save(existing)
    before = existing.revision_id
    new = MutableDocument("n", {"x": 1})
    with pytest.raises(Boom), db.in_batch():
        col.save(new)
        existing["v"] = 2
        col.save(existing)
        assert new.revision_id is not None and existing.revision_id != before
        raise Boom
    assert new.revision_id is None and new.sequence == 0
    assert existing.revision_id == before
    col.save(new, ConcurrencyControl.FAIL_ON_CONFLICT)
    col.save(existing, ConcurrencyControl.FAIL_ON_CONFLICT)
    assert col.get("e")["v"] == 2  # type: ignore[index]


def test_deleting_a_collection_inside_a_batch_is_refused(db: Database) -> None:
    from couchlite import DatabaseError

    db.create_collection("c")
    with db.in_batch(), pytest.raises(DatabaseError) as info:
        db.delete_collection("c")
    assert info.value.code == 16  # BUSY
    assert db.collection("c") is not None
