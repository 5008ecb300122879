"""Blobs are never lost, and never kept for nobody: random interleavings of local saves,
deletes and purges of documents sharing blobs, revisions being received (the receiver's
steps: pin the blobs, fetch the missing ones, insert in a batch -- or give up), and compaction,
on a real database.

After every step, every blob that any kept revision of any document references is in the
store, and so is every blob a revision in flight relies on. Whenever nothing is in flight,
compaction leaves exactly the referenced blobs; at the end, purging everything leaves none.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from couchlite import Blob, Database, DatabaseConfiguration, MutableDocument
from couchlite.database.records import tree_of
from couchlite.database.replication_access import replication_store
from couchlite.model.revid import new_rev_id
from couchlite.replicator.store import IncomingRevision
from couchlite.storage.blobstore import digest_of

CONTENTS = [f"content {i} ".encode() * (i + 1) for i in range(4)]
DIGESTS = [digest_of(c) for c in CONTENTS]
IDS = ["a", "b", "c"]

blob_choice = st.none() | st.integers(0, len(CONTENTS) - 1)
step = st.one_of(
    st.tuples(st.just("save"), st.sampled_from(IDS), blob_choice, blob_choice),
    st.tuples(st.just("delete"), st.sampled_from(IDS)),
    st.tuples(st.just("purge"), st.sampled_from(IDS)),
    # a revision arrives: its blobs are pinned, missing ones fetched (it may target a local ID)
    st.tuples(
        st.just("receive"),
        st.sampled_from([*IDS, "r1", "r2"]),
        st.lists(st.integers(0, len(CONTENTS) - 1), min_size=1, max_size=2, unique=True),
        st.booleans(),  # legacy ``_attachments`` form
    ),
    # the insert batch commits the oldest revisions in flight (how many)
    st.tuples(st.just("insert"), st.integers(1, 3)),
    # the receiver gives up on the oldest revision in flight (fetch failed, connection lost)
    st.tuples(st.just("abandon"), st.just(0)),
    st.tuples(st.just("compact"), st.just(0)),
    # a batch deleting everything local that uses a blob (the worst case for shared blobs)
    st.tuples(st.just("delete_all"), st.just(0)),
)


def _body(blobs: list[int], legacy: bool) -> bytes:
    if legacy:
        entries = {f"f{k}": {"digest": DIGESTS[k], "stub": True, "revpos": 1} for k in blobs}
        return orjson.dumps({"_attachments": entries})
    return orjson.dumps(
        {f"f{k}": {"@type": "blob", "digest": DIGESTS[k], "length": 1} for k in blobs}
    )


def _walk(value: Any, found: set[str], top: bool = False) -> None:
    """Blob references, found independently of the scanner under test (bodies are shallow)."""
    if isinstance(value, dict):
        if value.get("@type") == "blob":
            found.add(value["digest"])
            return
        for key, child in value.items():
            if top and key == "_attachments":
                found.update(entry["digest"] for entry in child.values())
            else:
                _walk(child, found)
    elif isinstance(value, list):
        for child in value:
            _walk(child, found)


class Harness:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.col = db.default_collection()
        self.store = replication_store(db)
        self.coll = self.store.for_collection(self.col)
        self.engine = db._engine_or_raise()
        #: revisions being received: (revision, its lease)
        self.in_flight: list[tuple[IncomingRevision, Any]] = []
        self.counter = 0

    def run(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "save":
            _, doc_id, first, second = op
            props: dict[str, Any] = {"n": self.counter}
            for k in (first, second):
                if k is not None:
                    props[f"f{k}"] = Blob("application/octet-stream", CONTENTS[k])
            self.counter += 1
            doc = self.col.get(doc_id)
            mutable = doc.to_mutable() if doc is not None else MutableDocument(doc_id)
            mutable.set_data(props)
            self.col.save(mutable)
        elif kind == "delete":
            doc = self.col.get(op[1])
            if doc is not None:
                self.col.delete(doc)
        elif kind == "purge":
            if self.engine.store.get_record(self.col._state.id, op[1]) is not None:
                self.col.purge(op[1])
        elif kind == "receive":
            _, doc_id, blobs, legacy = op
            self.counter += 1
            body = _body(blobs, legacy)[:-1] + b',"n":%d}' % self.counter
            revision = IncomingRevision(doc_id, new_rev_id(None, False, body), [], body, False)
            digests = [DIGESTS[k] for k in blobs]
            # the receiver's order (sink.BlobFetcher): pin first, then look, then fetch
            lease = self.store.lease_blobs(self.coll, doc_id, digests)
            for k, digest in zip(blobs, digests, strict=True):
                if not self.store.has_blob(digest):
                    self.store.store_blob(digest, CONTENTS[k])
                    lease.fetched(digest)
            self.in_flight.append((revision, lease))
        elif kind == "insert":
            batch, self.in_flight = self.in_flight[: op[1]], self.in_flight[op[1] :]
            if batch:
                outcomes = self.coll.insert_revisions([revision for revision, _ in batch])
                for outcome in outcomes:
                    assert outcome.error is None, outcome.error
        elif kind == "abandon":
            if self.in_flight:
                _, lease = self.in_flight.pop(0)
                lease.release()
        elif kind == "compact":
            self.db.compact()
            if not self.in_flight:
                assert self.files() == self.referenced()
        elif kind == "delete_all":
            with self.db.in_batch():
                for doc_id in IDS:
                    doc = self.col.get(doc_id)
                    if doc is not None:
                        self.col.delete(doc)

    def files(self) -> set[str]:
        return set(self.engine.blobs.digests())

    def referenced(self) -> set[str]:
        found: set[str] = set()
        for doc_id in [*IDS, "r1", "r2"]:
            record = self.engine.store.get_record(self.col._state.id, doc_id)
            if record is not None:
                bodies = (
                    [record.body] if record.tree is None else [r.body for r in tree_of(record).revs]
                )
                for body in bodies:
                    if body is not None:
                        _walk(orjson.loads(body), found, top=True)
        return found

    def check(self) -> None:
        files = self.files()
        missing = self.referenced() - files
        assert not missing, f"documents point at missing blobs {missing}"
        for revision, lease in self.in_flight:
            assert set(lease.digests) <= files, "a blob in flight was collected"
            assert revision.doc_id


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(step, min_size=1, max_size=30))
def test_blobs_are_never_lost_and_eventually_collected(steps: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = Database("p", DatabaseConfiguration(directory=Path(folder)))
        try:
            harness = Harness(db)
            for op in steps:
                harness.run(op)
                harness.check()
            # the rest arrives; then nothing is in flight and nothing unreferenced may stay
            harness.run(("insert", len(harness.in_flight)))
            harness.check()
            db.compact()
            assert harness.files() == harness.referenced()
            assert harness.engine.blobs.pinned_count() == 0
            with db.in_batch():
                for doc_id in [*IDS, "r1", "r2"]:  # tombstones too: they may keep bodies
                    if harness.engine.store.get_record(harness.col._state.id, doc_id):
                        harness.col.purge(doc_id)
            assert harness.files() == set()  # collected by the purge's own commit
        finally:
            db.close()
