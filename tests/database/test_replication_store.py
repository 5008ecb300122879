"""The database as the replicator sees it (couchlite.database.replication_access)."""

from __future__ import annotations

import pytest

from couchlite import Blob, Database, InvalidArgumentError, MutableDocument, NotFoundError
from couchlite.database.replication_access import replication_store
from couchlite.model.revid import new_rev_id
from couchlite.replicator.store import IncomingRevision


def rev(gen: int, tag: str) -> str:
    return f"{gen}-" + new_rev_id(None, False, tag.encode()).split("-")[1]


@pytest.fixture
def store(db: Database):  # type: ignore[no-untyped-def]
    return replication_store(db)


def test_changes_and_revisions(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    col = db.default_collection()
    doc = MutableDocument("d", {"v": 1})
    col.save(doc)
    first = doc.revision_id
    doc["v"] = 2
    col.save(doc)
    rc = store.collection("_default", "_default")
    assert rc is not None and rc.name == "_default" and rc.scope_name == "_default"
    changes = rc.changes_since(0, 10)
    assert [(c.doc_id, c.rev_id, c.deleted) for c in changes] == [("d", doc.revision_id, False)]
    out = rc.get_revision("d", doc.revision_id, [], 50)
    assert out is not None and out.history == [first] and out.body == b'{"v":2}'
    assert out.sequence == 2
    assert rc.get_revision("d", "9-" + "0" * 40, [], 50) is None
    assert rc.current_revision("d") == (doc.revision_id, False)
    assert rc.document_body("d", first) == b'{"v":1}'  # the parent body is kept
    assert not rc.is_empty and rc.last_sequence == 2


def test_history_is_cut_at_a_known_revision_and_max_history(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    col = db.default_collection()
    doc = MutableDocument("d")
    revs = []
    for i in range(6):
        doc["i"] = i
        col.save(doc)
        revs.append(doc.revision_id)
    rc = store.collection("_default", "_default")
    full = rc.get_revision("d", revs[-1], [], 50)
    assert full.history == revs[-2::-1]
    cut = rc.get_revision("d", revs[-1], [revs[2]], 50)
    assert cut.history == [revs[4], revs[3], revs[2]]
    short = rc.get_revision("d", revs[-1], [], 2)
    assert short.history == [revs[4], revs[3]]


def test_check_proposed(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    col = db.default_collection()
    doc = MutableDocument("d", {"v": 1})
    col.save(doc)
    gone = MutableDocument("gone")
    col.save(gone)
    col.delete(gone)
    rc = store.collection("_default", "_default")
    answers = rc.check_proposed(
        [
            ("new", rev(1, "a"), None),  # unknown document: send it
            ("d", doc.revision_id, None),  # we have it
            ("d", rev(2, "b"), doc.revision_id),  # extends our current revision
            ("d", rev(2, "c"), None),  # does not: conflict, with our revision
            ("gone", rev(1, "z"), None),  # our document is deleted: accepted
        ]
    )
    assert answers == [0, 304, 0, (409, doc.revision_id), 0]


def test_find_missing(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    col = db.default_collection()
    doc = MutableDocument("d", {"v": 1})
    col.save(doc)
    rc = store.collection("_default", "_default")
    answers = rc.find_missing([("d", doc.revision_id), ("d", rev(2, "x")), ("new", rev(1, "n"))])
    assert answers == [None, [doc.revision_id], []]


def test_insert_revisions_with_history(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    rc = store.collection("_default", "_default")
    r1, r2, r3 = rev(1, "a"), rev(2, "b"), rev(3, "c")
    outcomes = rc.insert_revisions(
        [
            IncomingRevision("d", r3, [r2, r1], b'{"b": 2, "a": 1}', False),
            IncomingRevision("t", r1, [], b"{}", True),
        ]
    )
    assert [o.error for o in outcomes] == [None, None]
    got = db.default_collection().get("d")
    assert got is not None and got.revision_id == r3 and got.to_json() == '{"a":1,"b":2}'
    assert db.default_collection().get("t") is None  # a tombstone
    again = rc.insert_revisions([IncomingRevision("d", r3, [r2, r1], b"{}", False)])
    assert again[0].already_present
    out = rc.get_revision("d", r3, [], 50)
    assert out.history == [r2, r1]


def test_insert_with_no_conflicts_refuses_a_conflict(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    col = db.default_collection()
    doc = MutableDocument("d", {"v": 1})
    col.save(doc)
    rc = store.collection("_default", "_default")
    stray = IncomingRevision("d", rev(2, "x"), [rev(1, "other")], b'{"v":9}', False, True)
    good = IncomingRevision("d", rev(2, "y"), [doc.revision_id], b'{"v":2}', False, True)
    outcomes = rc.insert_revisions([stray, good])
    assert outcomes[0].error is not None and outcomes[0].error.code == 409
    assert outcomes[1].error is None
    assert col.get("d")["v"] == 2  # type: ignore[index]


def test_insert_rejects_bad_input_without_touching_the_rest(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    rc = store.collection("_default", "_default")
    outcomes = rc.insert_revisions(
        [
            IncomingRevision("ok", rev(1, "a"), [], b'{"x":1}', False),
            IncomingRevision("_bad", rev(1, "b"), [], b"{}", False),
            IncomingRevision("json", rev(1, "c"), [], b"{not json", False),
            IncomingRevision("array", rev(1, "d"), [], b"[1,2]", False),
            IncomingRevision("revid", "bogus", [], b"{}", False),
            IncomingRevision("gap", rev(3, "e"), [rev(1, "f")], b"{}", False),
        ]
    )
    assert outcomes[0].error is None
    assert all(isinstance(o.error, InvalidArgumentError) for o in outcomes[1:])
    assert sorted(db.default_collection().document_ids()) == ["ok"]


def test_conflicts_and_resolution(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    col = db.default_collection()
    doc = MutableDocument("d", {"v": 0})
    col.save(doc)
    base = doc.revision_id
    doc["v"] = "local"
    col.save(doc)
    local = doc.revision_id
    rc = store.collection("_default", "_default")
    remote = rev(2, "remote")
    outcome = rc.insert_revisions([IncomingRevision("d", remote, [base], b'{"v":"remote"}', False)])
    assert outcome[0].conflicted
    conflict = rc.conflicting_revisions("d", remote)
    assert conflict is not None
    assert (conflict.local_rev, conflict.remote_rev) == (local, remote)
    assert conflict.local_body == b'{"v":"local"}' and conflict.remote_body == b'{"v":"remote"}'
    merged = rc.resolve_conflict("d", local, remote, b'{"v":"merged"}')
    assert merged.startswith("3-")
    current = col.get("d")
    assert current is not None and current.revision_id == merged and current["v"] == "merged"
    assert rc.conflicting_revisions("d", remote) is None
    out = rc.get_revision("d", merged, [], 50)
    assert out.history == [remote, base]


def test_resolution_to_the_remote_revision_adds_nothing(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    col = db.default_collection()
    doc = MutableDocument("d", {"v": 0})
    col.save(doc)
    base = doc.revision_id
    doc["v"] = "local"
    col.save(doc)
    rc = store.collection("_default", "_default")
    remote = rev(2, "zz")
    rc.insert_revisions([IncomingRevision("d", remote, [base], b'{"v":"remote"}', False)])
    winner = rc.resolve_conflict("d", doc.revision_id, remote, b'{"v": "remote"}')
    assert winner == remote
    assert col.get("d").revision_id == remote  # type: ignore[union-attr]


def test_checkpoints_and_blobs(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    assert store.get_local_checkpoint("cp-1") is None
    store.set_local_checkpoint("cp-1", b'{"local":3}')
    assert store.get_local_checkpoint("cp-1") == b'{"local":3}'
    assert store.set_peer_checkpoint("client", b"{}", None) == "1-cc"
    assert store.get_peer_checkpoint("client") == ("1-cc", b"{}")
    blob = Blob("text/plain", b"content")
    assert not store.has_blob(blob.digest)
    store.store_blob(blob.digest, b"content")
    assert store.has_blob(blob.digest) and store.blob_length(blob.digest) == 7
    with store.open_blob(blob.digest) as fh:
        assert fh.read() == b"content"
    with pytest.raises(InvalidArgumentError):
        store.store_blob(blob.digest, b"tampered")
    with pytest.raises(NotFoundError):
        store.open_blob("sha1-" + "A" * 27 + "=")
    assert not store.has_blob("garbage")
    assert len(store.public_uuid) == 32 and store.public_uuid != store.private_uuid


def test_mark_remote_revision_keeps_an_old_body(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    col = db.default_collection()
    doc = MutableDocument("d", {"v": 1})
    col.save(doc)
    pushed = doc.revision_id
    for i in (2, 3):
        doc["v"] = i
        col.save(doc)
    rc = store.collection("_default", "_default")
    assert rc.document_body("d", pushed) is None  # dropped: not the current's parent
    doc["v"] = 4
    col.save(doc)
    third = col.get("d")
    assert third is not None
    parent = rc.get_revision("d", third.revision_id, [], 50).history[0]
    rc.mark_remote_revision("d", parent)
    for i in (5, 6):
        doc["v"] = i
        col.save(doc)
    assert rc.document_body("d", parent) == b'{"v":3}'


def test_purge(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    col = db.default_collection()
    col.save(MutableDocument("d"))
    rc = store.collection("_default", "_default")
    assert rc.purge("d") and not rc.purge("d")
    assert col.get("d") is None


def test_received_bodies_are_held_to_the_local_api_rules(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    rc = store.collection("_default", "_default")
    outcomes = rc.insert_revisions(
        [
            IncomingRevision("big", rev(1, "a"), [], b'{"n":18446744073709551616}', False),
            IncomingRevision("deep", rev(1, "b"), [], b'{"a":' * 255 + b"1" + b"}" * 255, False),
            IncomingRevision("max", rev(1, "c"), [], b'{"n":18446744073709551615}', False),
            IncomingRevision("min", rev(1, "d"), [], b'{"n":-9223372036854775808}', False),
        ]
    )
    assert [type(o.error) for o in outcomes[:2]] == [InvalidArgumentError] * 2
    assert [o.error for o in outcomes[2:]] == [None, None]
    # stored exactly: integers stay integers (orjson alone would have made a float of 2**64)
    assert db.default_collection().get("max")["n"] == 2**64 - 1
    assert db.default_collection().get("min")["n"] == -(2**63)
    assert sorted(db.default_collection().document_ids()) == ["max", "min"]


def test_peer_checkpoints_are_bounded_oldest_update_evicted(
    db: Database,
    store,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("couchlite.database.replication_access.MAX_PEER_CHECKPOINTS", 3)
    revs = {c: store.set_peer_checkpoint(c, b"{}", None) for c in ("a", "b", "c")}
    store.set_peer_checkpoint("a", b'{"n":2}', revs["a"])  # a is now the most recent
    store.set_peer_checkpoint("d", b"{}", None)
    assert store.get_peer_checkpoint("b") is None  # updated longest ago
    assert store.get_peer_checkpoint("a") == ("2-cc", b'{"n":2}')
    assert all(store.get_peer_checkpoint(c) is not None for c in ("c", "d"))
    for i in range(20):
        store.set_peer_checkpoint(f"x{i}", b"{}", None)
    kept = [
        c for c in ["a", "c", "d"] + [f"x{i}" for i in range(20)] if store.get_peer_checkpoint(c)
    ]
    assert kept == ["x17", "x18", "x19"]


def test_calls_from_worker_threads_while_a_user_thread_writes(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    """The store holds no thread- or loop-bound state: inserts and reads from several worker
    threads interleave with a user's batches, each call seeing committed state."""
    import threading

    rc = store.collection("_default", "_default")
    col = db.default_collection()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                doc_id = f"w{n}-{i}"
                incoming = IncomingRevision(doc_id, rev(1, doc_id), [], b'{"n":1}', False)
                (outcome,) = rc.insert_revisions([incoming])
                assert outcome.error is None
                assert rc.current_revision(doc_id) == (rev(1, doc_id), False)
                assert store.get_local_checkpoint(f"cp{n}") in (None, str(i - 1).encode())
                store.set_local_checkpoint(f"cp{n}", str(i).encode())
        except BaseException as exc:
            errors.append(exc)

    def user() -> None:
        for i in range(10):
            with db.in_batch():
                for j in range(5):
                    col.save(MutableDocument(f"u{i}-{j}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=user))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert col.count == 3 * 20 + 10 * 5
    assert len(rc.changes_since(0, 1000)) == col.count
    assert rc.last_sequence == col.last_sequence == col.count


def test_a_closed_database_or_deleted_collection_is_refused(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    from couchlite import DatabaseClosedError

    other = db.create_collection("other")
    rc = store.for_collection(other)
    assert rc.changes_since(0, 10) == []
    db.delete_collection("other")
    with pytest.raises(DatabaseClosedError):
        rc.changes_since(0, 10)
    with pytest.raises(DatabaseClosedError):
        store.for_collection(other)
    db.close()
    with pytest.raises(DatabaseClosedError):
        store.get_local_checkpoint("cp")


@pytest.mark.parametrize(
    ("body", "deleted"),
    [(b'{"v":1}', False), (b"{}", True)],
    ids=["live", "tombstone"],
)
def test_a_first_revision_is_stored_as_its_one_revision_tree_would_be(
    db: Database,
    store,  # type: ignore[no-untyped-def]
    body: bytes,
    deleted: bool,
) -> None:
    from couchlite.database.records import record_from_tree
    from couchlite.model.revtree import KEEP_BODY, RevTree

    rc = store.collection("_default", "_default")
    engine = db._engine  # the stored row, not the public view of it
    first = rev(3, "peer")  # a first revision need not be generation 1
    [outcome] = rc.insert_revisions([IncomingRevision("d", first, [], body, deleted)])
    assert outcome.error is None and not outcome.conflicted and not outcome.already_present
    stored = engine.store.get_record(rc._state.id, "d")
    tree = RevTree()
    tree.insert_history(
        [first], body, deleted=deleted, sequence=stored.seq
    ).revision.flags |= KEEP_BODY
    assert stored == record_from_tree("d", tree, stored.seq, None)
    # the peer's revision stays a delta base, and is found again as present
    if not deleted:
        assert rc.document_body("d", first) == body
    [again] = rc.insert_revisions([IncomingRevision("d", first, [], body, deleted)])
    assert again.already_present


def test_get_revisions_reads_many_as_get_revision_reads_each(db: Database, store) -> None:  # type: ignore[no-untyped-def]
    col = db.default_collection()
    edited = MutableDocument("edited", {"v": 0})
    revs = []
    for i in range(4):
        edited["v"] = i
        col.save(edited)
        revs.append(edited.revision_id)
    for i in range(5):
        col.save(MutableDocument(f"single-{i}", {"i": i}))
    gone = MutableDocument("gone", {"x": 1})
    col.save(gone)
    col.delete(gone)
    rc = store.collection("_default", "_default")
    single = col.get("single-3")
    assert single is not None
    tombstone = rc.current_revision("gone")
    assert tombstone is not None and tombstone[1]
    wanted = [
        ("edited", revs[-1], [revs[0]]),  # history cut at a known revision
        ("edited", revs[-1], []),
        ("edited", revs[0], []),  # an old revision whose body is gone
        ("single-3", single.revision_id, []),
        ("single-4", rev(1, "other"), []),  # not its revision
        ("nobody", rev(1, "x"), []),
        ("gone", tombstone[0], []),
    ]
    many = rc.get_revisions(wanted, 50)
    assert many == [rc.get_revision(*one, 50) for one in wanted]
    short = rc.get_revisions(wanted, 2)  # and at maxHistory
    assert short == [rc.get_revision(*one, 2) for one in wanted]
    assert many[0] is not None and many[0].history == [revs[2], revs[1], revs[0]]
    assert many[1] is not None and many[1].history == [revs[2], revs[1], revs[0]]
    assert short[1] is not None and short[1].history == [revs[2], revs[1]]
    assert many[3] is not None and many[3].body == b'{"i":3}'
    assert many[2] is None and many[4] is None and many[5] is None
    assert many[6] is not None and many[6].deleted
    assert rc.get_revisions([], 50) == []
