"""The ``DocumentStore`` contract (``couchlite.storage.document_store``), checked through the
interface alone so that any implementation can be added to ``IMPLEMENTATIONS`` and run it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from couchlite import _tuning
from couchlite.errors import ConflictError, DatabaseClosedError
from couchlite.storage.document_store import DocumentStore
from couchlite.storage.records import (
    DOC_CONFLICTED,
    DOC_DELETED,
    DOC_HAS_BLOBS,
    ChangeRecord,
    CommitBatch,
    DocRecord,
    GuessedWrong,
)
from couchlite.storage.sqlite_store import SQLiteStore

pytestmark = pytest.mark.timeout(60)

#: how to open (or reopen) each implementation's store in a folder
IMPLEMENTATIONS: dict[str, Callable[[Path], DocumentStore]] = {
    "sqlite": SQLiteStore.open_folder,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def opener(request: pytest.FixtureRequest) -> Callable[[Path], DocumentStore]:
    return IMPLEMENTATIONS[request.param]


@pytest.fixture
def store(opener: Callable[[Path], DocumentStore], tmp_path: Path) -> Iterator[DocumentStore]:
    s = opener(tmp_path)
    yield s
    s.close()


def changes(store: DocumentStore, coll_id: int, **kw: int) -> list[ChangeRecord]:
    """The store's changes feed as one list (its batches joined)."""
    return [row for batch in store.change_batches(coll_id, **kw) for row in batch]


def rec(
    seq: int, doc_id: str, flags: int = 0, body: bytes = b"{}", expiration: float | None = None
) -> DocRecord:
    return DocRecord(seq, doc_id, f"1-{seq:040x}", flags, body, None, expiration)


def insert(store: DocumentStore, coll_id: int, records: list[DocRecord], **kw: object) -> None:
    live = sum(1 for r in records if not r.flags & DOC_DELETED)
    batch = CommitBatch(
        inserts={coll_id: records},
        count_deltas={coll_id: live},
        last_seqs={coll_id: max(r.seq for r in records)},
    )
    for name, value in kw.items():
        setattr(batch, name, value)
    store.commit(batch)


def test_uuids_are_hex_distinct_and_stable(
    opener: Callable[[Path], DocumentStore], tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = opener(tmp_path / "a")
    b = opener(tmp_path / "b")
    try:
        ids = (a.public_uuid, a.private_uuid)
        assert len({*ids, b.public_uuid, b.private_uuid}) == 4
        assert all(len(x) == 32 and int(x, 16) >= 0 for x in ids)
    finally:
        a.close()
        b.close()
    again = opener(tmp_path / "a")
    try:
        assert (again.public_uuid, again.private_uuid) == ids
    finally:
        again.close()


def test_collections_are_created_once_listed_and_dropped(store: DocumentStore) -> None:
    a = store.create_collection("s", "a")
    assert store.create_collection("s", "a").id == a.id
    b = store.create_collection("s", "b")
    assert [(c.scope, c.name, c.last_seq, c.doc_count) for c in store.collections()] == [
        ("s", "a", 0, 0),
        ("s", "b", 0, 0),
    ]
    insert(store, b.id, [rec(1, "d", DOC_HAS_BLOBS)], blob_refs=[(b.id, "d", {"sha1-x"})])
    assert store.drop_collection(b.id) == ["sha1-x"]
    assert [c.id for c in store.collections()] == [a.id]
    assert store.all_referenced_digests() == set()


def test_a_commit_is_read_back_and_counted(
    opener: Callable[[Path], DocumentStore], tmp_path: Path
) -> None:
    store = opener(tmp_path)
    coll = store.create_collection("_default", "_default")
    insert(store, coll.id, [rec(1, "a"), rec(2, "b", DOC_DELETED), rec(3, "c", expiration=5.0)])
    assert store.get_record(coll.id, "a") == rec(1, "a")
    assert store.get_record(coll.id, "zz") is None
    assert set(store.get_records(coll.id, ["a", "b", "zz"])) == {"a", "b"}
    store.close()
    store = opener(tmp_path)  # durable
    try:
        (row,) = store.collections()
        assert (row.last_seq, row.doc_count) == (3, 2)
        assert store.get_record(coll.id, "c") == rec(3, "c", expiration=5.0)
    finally:
        store.close()


def test_changes_ids_and_conflicts(store: DocumentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tuning, "CHANGES_FETCH_SIZE", 2)  # several batches
    coll = store.create_collection("_default", "_default")
    insert(
        store,
        coll.id,
        [rec(4, "b"), rec(2, "d", DOC_DELETED), rec(7, "a", DOC_CONFLICTED), rec(5, "c")],
    )
    assert list(changes(store, coll.id)) == [
        (2, "d", rec(2, "d").rev, DOC_DELETED, 2),
        (4, "b", rec(4, "b").rev, 0, 2),
        (5, "c", rec(5, "c").rev, 0, 2),
        (7, "a", rec(7, "a").rev, DOC_CONFLICTED, 2),
    ]
    assert [c[0] for c in changes(store, coll.id, since=2, limit=2)] == [4, 5]
    assert list(store.live_doc_ids(coll.id)) == ["b", "c", "a"]
    assert list(store.doc_ids(coll.id)) == ["a", "b", "c"]
    assert list(store.doc_ids(coll.id, include_deleted=True)) == ["a", "b", "c", "d"]
    assert store.conflicted_doc_ids(coll.id) == ["a"]


def test_upserts_purges_and_expirations(store: DocumentStore) -> None:
    coll = store.create_collection("_default", "_default")
    insert(store, coll.id, [rec(1, "a"), rec(2, "b"), rec(3, "c")])
    store.set_remote_revisions("ws://peer", coll.id, [("b", "1-x")])
    store.commit(
        CommitBatch(
            upserts={coll.id: [rec(4, "a", body=b'{"v":2}')]},
            purges={coll.id: [("b",)]},
            expirations={coll.id: [(10.0, "c")]},
            count_deltas={coll.id: -1},
            last_seqs={coll.id: 4},
        )
    )
    assert store.get_record(coll.id, "a") == rec(4, "a", body=b'{"v":2}')
    assert store.get_record(coll.id, "b") is None
    assert store.remote_revisions("ws://peer", coll.id, ["b"]) == {}  # purged with it
    assert store.collections()[0].doc_count == 2
    assert store.next_expiration() == 10.0
    assert store.expired_doc_ids(coll.id, 9.0) == []
    assert store.expired_doc_ids(coll.id, 10.0) == ["c"]


def test_a_taken_guessed_id_writes_nothing(store: DocumentStore) -> None:
    coll = store.create_collection("_default", "_default")
    insert(store, coll.id, [rec(1, "taken")])
    with pytest.raises(GuessedWrong):
        store.commit(
            CommitBatch(
                guessed={coll.id: [rec(2, "free"), rec(3, "taken")]},
                inserts={coll.id: [rec(4, "other")]},
                count_deltas={coll.id: 3},
                last_seqs={coll.id: 4},
            )
        )
    assert store.get_record(coll.id, "taken") == rec(1, "taken")
    assert store.get_records(coll.id, ["free", "other"]) == {}
    assert (store.collections()[0].last_seq, store.collections()[0].doc_count) == (1, 1)
    store.commit(CommitBatch(guessed={coll.id: [rec(2, "free")]}, last_seqs={coll.id: 2}))
    assert store.get_record(coll.id, "free") == rec(2, "free")


def test_blob_references(store: DocumentStore) -> None:
    coll = store.create_collection("_default", "_default")
    body = b'{"b":{"digest":"sha1-x"}}'
    insert(
        store,
        coll.id,
        [rec(1, "a", DOC_HAS_BLOBS, body), rec(2, "b")],
        blob_refs=[(coll.id, "a", {"sha1-x", "sha1-y"})],
    )
    assert store.referenced_digests(["sha1-x", "sha1-z"]) == {"sha1-x"}
    assert store.all_referenced_digests() == {"sha1-x", "sha1-y"}
    assert [r.doc_id for r in store.records_containing(coll.id, b'"digest"')] == ["a"]
    store.commit(CommitBatch(blob_refs=[(coll.id, "a", {"sha1-y"})]))
    assert store.all_referenced_digests() == {"sha1-y"}
    assert store.blob_refs_version() >= 1
    store.rebuild_blob_refs([(coll.id, "b", {"sha1-w"})], 7)
    assert store.blob_refs_version() == 7
    assert store.all_referenced_digests() == {"sha1-y", "sha1-w"}
    record = store.get_record(coll.id, "b")
    assert record is not None and record.flags & DOC_HAS_BLOBS


def test_remote_revisions_by_peer(store: DocumentStore) -> None:
    coll = store.create_collection("_default", "_default")
    store.set_remote_revisions("ws://a", coll.id, [("d1", "1-a"), ("d2", "2-b")])
    store.set_remote_revisions("ws://a", coll.id, [("d1", "3-c")])
    store.set_remote_revisions("ws://b", coll.id, [])
    assert store.remote_revisions("ws://a", coll.id, ["d1", "d2", "d3"]) == {
        "d1": "3-c",
        "d2": "2-b",
    }
    assert store.remote_revisions("ws://b", coll.id, ["d1"]) == {}


def test_checkpoints(store: DocumentStore) -> None:
    assert store.get_checkpoint("cp") is None
    store.set_checkpoint("cp", b"1")
    store.set_checkpoint("cp", b"2")
    assert store.get_checkpoint("cp") == b"2"
    store.delete_checkpoint("cp")
    assert store.get_checkpoint("cp") is None
    assert store.set_peer_checkpoint("p", b"a", None) == "1-cc"
    with pytest.raises(ConflictError):
        store.set_peer_checkpoint("p", b"b", None)
    assert store.set_peer_checkpoint("p", b"b", "1-cc") == "2-cc"
    assert store.get_peer_checkpoint("p") == ("2-cc", b"b")
    store.set_peer_checkpoint("q", b"c", None, keep=1)
    assert store.get_peer_checkpoint("p") is None
    assert store.get_peer_checkpoint("q") == ("1-cc", b"c")


def test_readers_on_other_threads_see_whole_commits(store: DocumentStore) -> None:
    coll = store.create_collection("_default", "_default")
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(len(list(changes(store, coll.id))))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for n in range(20):
            insert(store, coll.id, [rec(10 * n + i + 1, f"d{n}-{i}") for i in range(10)])
    finally:
        stop.set()
        for thread in readers:
            thread.join(10)
    assert seen and all(count % 10 == 0 for count in seen)
    assert len(list(changes(store, coll.id))) == 200


def test_every_operation_fails_once_closed(
    opener: Callable[[Path], DocumentStore], tmp_path: Path
) -> None:
    store = opener(tmp_path)
    coll = store.create_collection("_default", "_default")
    store.close()
    store.close()  # idempotent
    assert store.closed
    calls: list[Callable[[], object]] = [
        store.collections,
        lambda: store.get_record(coll.id, "d"),
        lambda: list(changes(store, coll.id)),
        lambda: store.commit(CommitBatch(inserts={coll.id: [rec(1, "d")]})),
        lambda: store.get_checkpoint("cp"),
        lambda: store.set_checkpoint("cp", b""),
    ]
    for call in calls:
        with pytest.raises(DatabaseClosedError):
            call()
