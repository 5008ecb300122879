"""Batches against a model: random saves (new objects on taken or free IDs, edits of read
documents), deletions, purges, reads and failing inner batches, in random batches; after each
step the database holds what a plain dictionary says it should.

This exercises the guessed-new path of ``Collection.save`` (no look-up; the commit checks and
retries) in every interleaving with the paths that do look up.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from couchlite import Database, DatabaseConfiguration, MutableDocument
from couchlite.model.revid import parse_rev_id

IDS = ["a", "b", "c", "d"]

op = st.one_of(
    st.tuples(st.just("new"), st.sampled_from(IDS), st.integers(0, 99)),
    st.tuples(st.just("edit"), st.sampled_from(IDS), st.integers(0, 99)),
    st.tuples(st.just("delete"), st.sampled_from(IDS), st.just(0)),
    st.tuples(st.just("purge"), st.sampled_from(IDS), st.just(0)),
    st.tuples(st.just("read"), st.sampled_from(IDS), st.just(0)),
)
#: a batch: its operations, those of an inner batch that fails (or None), whether it is a batch
#: at all (else each operation is its own transaction), and whether to look at every document
#: before it commits (reading settles the guesses of new documents: half the time, none is read)
batch = st.tuples(
    st.lists(op, max_size=8),
    st.none() | st.lists(op, min_size=1, max_size=5),
    st.booleans(),
    st.booleans(),
)


class Boom(Exception):
    pass


#: the model: doc_id -> (generation, value, deleted); purged documents are absent
Model = dict[str, tuple[int, int, bool]]


def apply(
    db: Database,
    model: Model,
    ops: list[tuple[str, str, int]],
    saved: list[tuple[MutableDocument, int]],
) -> None:
    """Run ``ops``; new document objects go to ``saved`` with the generation they must get."""
    col = db.default_collection()
    for kind, doc_id, value in ops:
        current = model.get(doc_id)
        if kind == "new":  # a new object: last write wins over whatever is there
            doc = MutableDocument(doc_id, {"v": value})
            col.save(doc)
            model[doc_id] = ((current[0] if current else 0) + 1, value, False)
            saved.append((doc, model[doc_id][0]))
            if value % 2:  # half of them asked at once, the rest only after the commit
                assert parse_rev_id(doc.revision_id or "")[0] == model[doc_id][0]
        elif kind == "edit":
            found = col.get(doc_id)
            assert (found is None) == (current is None or current[2])
            if found is not None and current is not None:
                edited = found.to_mutable()
                edited["v"] = value
                col.save(edited)
                model[doc_id] = (current[0] + 1, value, False)
        elif kind == "delete":
            found = col.get(doc_id)
            if found is not None and current is not None:
                col.delete(found)
                model[doc_id] = (current[0] + 1, current[1], True)
        elif kind == "purge":
            if current is not None:
                col.purge(doc_id)
                del model[doc_id]
        else:
            check_one(db, model, doc_id)


def check_one(db: Database, model: Model, doc_id: str) -> None:
    found = db.default_collection().get(doc_id)
    expected = model.get(doc_id)
    if expected is None or expected[2]:
        assert found is None
    else:
        assert found is not None and found["v"] == expected[1]
        assert parse_rev_id(found.revision_id or "")[0] == expected[0]


def check_all(db: Database, model: Model, *, committed: bool = True) -> None:
    col = db.default_collection()
    for doc_id in IDS:
        check_one(db, model, doc_id)
    live = sorted(d for d, (_, _, deleted) in model.items() if not deleted)
    assert col.count == len(live)
    if not committed:
        return  # the feed and the ID listing show committed state only (as documented)
    assert sorted(col.document_ids()) == live
    feed = list(col.changes())
    assert sorted(c.doc_id for c in feed) == sorted(model)  # tombstones included, once each
    sequences = [c.sequence for c in feed]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(batch, min_size=1, max_size=5))
def test_batches_match_the_model(batches: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database("model", DatabaseConfiguration(directory=Path(tmp)))
        try:
            model: Model = {}
            for ops, failing, in_batch, look_inside in batches:
                saved: list[tuple[MutableDocument, int]] = []
                if not in_batch:  # each operation its own transaction
                    apply(db, model, ops, saved)
                else:
                    with db.in_batch():
                        apply(db, model, ops, saved)
                        if failing is not None:
                            before = dict(model)
                            undone: list[tuple[MutableDocument, int]] = []
                            try:
                                with db.in_batch():
                                    apply(db, model, failing, undone)
                                    raise Boom
                            except Boom:
                                model.clear()
                                model.update(before)
                            for doc, _ in undone:  # given back their state before the save
                                assert doc.revision_id is None and doc.sequence == 0
                        if look_inside:  # the batch sees its own writes
                            check_all(db, model, committed=False)
                check_all(db, model)
                for doc, generation in saved:
                    assert parse_rev_id(doc.revision_id or "")[0] == generation
        finally:
            db.close()
        # and all of it is on disk
        db = Database("model", DatabaseConfiguration(directory=Path(tmp)))
        try:
            check_all(db, model)
        finally:
            db.close()
