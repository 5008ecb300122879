"""Checkpoint IDs, bodies, reconciliation, saving on the peer, and their effect on re-runs."""

from __future__ import annotations

from pathlib import Path

import orjson

from couchlite.database.replication_access import replication_store
from couchlite.replicator.options import SessionCollectionOptions
from couchlite.replicator.pending import pending_document_ids
from couchlite.replicator.protocol.checkpoints import CheckpointState, checkpoint_id, reconcile
from couchlite.replicator.types import ReplicatorType

from .helpers import REMOTE_URL, open_db, put, replicate, run


def test_checkpoint_ids() -> None:
    base = checkpoint_id(
        "u", "ws://x/db", "_default", "_default", pull=True, push=True, document_ids=None
    )
    assert base.startswith("cp-") and len(base) == 3 + 28  # base64 of a SHA-1
    # the default collection's ID does not depend on the direction
    assert base == checkpoint_id(
        "u", "ws://x/db", "_default", "_default", pull=False, push=True, document_ids=None
    )
    named = checkpoint_id("u", "ws://x/db", "s", "c", pull=True, push=True, document_ids=None)
    assert len(named) == 3 + 44  # SHA-256
    assert named != checkpoint_id(
        "u", "ws://x/db", "s", "c", pull=True, push=False, document_ids=None
    )
    assert base != checkpoint_id(
        "u", "ws://y/db", "_default", "_default", pull=True, push=True, document_ids=None
    )
    filtered = checkpoint_id(
        "u", "ws://x/db", "_default", "_default", pull=True, push=True, document_ids=["b", "a"]
    )
    assert filtered == checkpoint_id(
        "u", "ws://x/db", "_default", "_default", pull=True, push=True, document_ids=["a", "b"]
    )
    assert filtered != base


def test_bodies_and_reconcile() -> None:
    assert orjson.loads(CheckpointState().encode()).keys() == {"time"}
    body = orjson.loads(CheckpointState(4, 7).encode())
    assert body["local"] == 4 and body["remote"] == 7
    assert reconcile(None, CheckpointState(3, 3)) == CheckpointState()
    assert reconcile(CheckpointState(5, 9), CheckpointState(3, 12)) == CheckpointState(3, 9)
    assert reconcile(CheckpointState(5, "a"), CheckpointState(5, "b")) == CheckpointState(5, None)
    assert CheckpointState.parse(b'{"local": 3, "remote": "1:2"}') == CheckpointState(3, "1:2")
    assert CheckpointState.parse(b"[]") is None


def test_checkpoint_saved_on_both_sides(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        for i in range(5):
            put(a.default_collection(), f"a{i}", {"i": i})
            put(b.default_collection(), f"b{i}", {"i": i})
        run(replicate(a, b))
        store = replication_store(a)
        cp_id = checkpoint_id(
            store.private_uuid,
            REMOTE_URL,
            "_default",
            "_default",
            pull=True,
            push=True,
            document_ids=None,
        )
        local = orjson.loads(store.get_local_checkpoint(cp_id))
        # pulled documents got local sequences 6-10 and were skipped (no echo)
        assert local["local"] == 10 and local["remote"] == 5
        peer = replication_store(b).get_peer_checkpoint(cp_id)
        assert peer is not None and peer[0] == "1-cc"
        assert orjson.loads(peer[1])["local"] == 10
        run(replicate(a, b))  # nothing new: no save needed, still consistent
        # a lost peer checkpoint means starting over (and the peer answers 304s)
        session = run(replicate(a, b, reset=True))
        assert session.revs_sent == 0 and session.revs_received == 0
    finally:
        a.close()
        b.close()


def test_reset_resends_what_the_peer_purged(tmp_path: Path) -> None:
    """The peer's recorded revisions are trusted only with a valid checkpoint (as LiteCore)."""
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        put(a.default_collection(), "d0", {"v": 0})
        put(a.default_collection(), "d0", {"v": 1})
        run(replicate(a, b))
        rev = a.default_collection()["d0"].revision_id
        b.default_collection().purge("d0")
        # the checkpoint says d0 was sent: purges are local and nothing comes back by itself
        run(replicate(a, b))
        assert b.default_collection().get("d0") is None
        # a reset starts over, and the record of what the peer had is not trusted either
        session = run(replicate(a, b, reset=True))
        assert session.revs_sent == 1
        doc = b.default_collection().get("d0")
        assert doc is not None and doc.revision_id == rev and doc["v"] == 1
        # the next session (valid checkpoint again) trusts the record, sends nothing
        session = run(replicate(a, b))
        assert session.revs_sent == 0
    finally:
        a.close()
        b.close()


def test_pending_document_ids(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        for i in range(3):
            put(a.default_collection(), f"d{i}", {"i": i})
        store = replication_store(a)
        opts = SessionCollectionOptions(store.for_collection(a.default_collection()))
        pending = pending_document_ids(store, opts, REMOTE_URL, ReplicatorType.PUSH)
        assert pending == {"d0", "d1", "d2"}
        run(replicate(a, b, ReplicatorType.PUSH))
        assert pending_document_ids(store, opts, REMOTE_URL, ReplicatorType.PUSH) == set()
        put(a.default_collection(), "d1", {"i": "new"})
        assert pending_document_ids(store, opts, REMOTE_URL, ReplicatorType.PUSH) == {"d1"}
    finally:
        a.close()
        b.close()


def test_pulled_documents_are_not_pending(tmp_path: Path) -> None:
    """From the saved state too (no session running): a document whose current revision is the
    one the peer is known to have -- it came from the peer -- is not pending."""
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        for i in range(3):
            put(b.default_collection(), f"b{i}", {"i": i})
        put(a.default_collection(), "local", {"i": 0})
        run(replicate(a, b, ReplicatorType.PULL))
        store = replication_store(a)
        opts = SessionCollectionOptions(store.for_collection(a.default_collection()))
        assert pending_document_ids(store, opts, REMOTE_URL, ReplicatorType.PUSH) == {"local"}
        put(a.default_collection(), "b1", {"i": "edited"})
        assert pending_document_ids(store, opts, REMOTE_URL, ReplicatorType.PUSH) == {
            "local",
            "b1",
        }
    finally:
        a.close()
        b.close()
