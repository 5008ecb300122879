"""One-shot push: new documents, updates, deletions, purges, unicode and nested bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from couchlite import (
    Blob,  # noqa: F401  (kept for symmetry with the blob tests)
    MutableDocument,
)
from couchlite._tuning import (
    CHANGES_BATCH_SIZE,
    MAX_CHANGE_LISTS_IN_FLIGHT,
    MAX_REVS_IN_FLIGHT,
)
from couchlite.replicator.protocol.sequences import SequenceTracker
from couchlite.replicator.types import DocumentFlags, ReplicatorType

from .helpers import Events, history, open_db, put, replicate, run, snapshot

BODIES = {
    "flat": {"a": 1, "b": "two", "c": True, "d": None},
    "nested": {"o": {"x": [1, 2, {"y": "z"}], "e": {}}, "arr": [[], [1.5, -2]]},
    "unicode": {"name": "Zoë ✓ 日本語 \U0001f600", "esc": 'quote " back \\ nl \n tab \t'},
}


def test_push_new_updated_deleted_and_purged(tmp_path: Path) -> None:
    src, dst = open_db(tmp_path, "src"), open_db(tmp_path, "dst")
    try:
        col = src.default_collection()
        for doc_id, body in BODIES.items():
            put(col, doc_id, body)
        put(col, "gone", {"x": 1})
        col.purge("gone")
        events = Events()
        session = run(replicate(src, dst, ReplicatorType.PUSH, events=events))
        assert session.revs_sent == 3
        assert events.errors() == []
        assert snapshot(dst.default_collection()) == snapshot(col)
        assert "gone" not in snapshot(dst.default_collection())
        assert {d.id for push, d in events.docs if push} == set(BODIES)
        assert events.busy[0] is True and events.busy[-1] is False
        assert events.progress_calls[-1] == (3, 3)

        # updates and a deletion, pushed by a second session
        put(col, "flat", {"a": 2})
        put(col, "flat", {"a": 3})
        doc = col.get("nested")
        assert doc is not None
        col.delete(doc)
        events = Events()
        session = run(replicate(src, dst, ReplicatorType.PUSH, events=events))
        assert session.revs_sent == 2
        assert snapshot(dst.default_collection()) == snapshot(col)
        assert history(dst.default_collection(), "flat") == history(col, "flat")
        assert len(history(col, "flat")) == 3
        assert history(dst.default_collection(), "nested") == history(col, "nested")
        deleted = [d for _, d in events.docs if d.id == "nested"]
        assert deleted and deleted[0].flags & DocumentFlags.DELETED
    finally:
        src.close()
        dst.close()


def test_second_push_sends_nothing_and_reset_starts_over(tmp_path: Path) -> None:
    src, dst = open_db(tmp_path, "src"), open_db(tmp_path, "dst")
    try:
        for i in range(30):
            put(src.default_collection(), f"d{i}", {"i": i})
        assert run(replicate(src, dst, ReplicatorType.PUSH)).revs_sent == 30
        assert run(replicate(src, dst, ReplicatorType.PUSH)).revs_sent == 0
        # reset: everything is proposed again; the peer has it all, so still no rev is sent
        events = Events()
        assert (
            run(replicate(src, dst, ReplicatorType.PUSH, reset=True, events=events)).revs_sent == 0
        )
        assert events.errors() == []
    finally:
        src.close()
        dst.close()


def test_large_documents_push_and_pull(tmp_path: Path) -> None:
    src, dst = open_db(tmp_path, "src"), open_db(tmp_path, "dst")
    try:
        big = {"rows": [{"i": i, "text": "x" * 90} for i in range(12_000)]}  # ~1.3 MB
        for i in range(3):
            put(src.default_collection(), f"big{i}", {**big, "n": i})
            put(dst.default_collection(), f"remote{i}", {**big, "n": -i})
        run(replicate(src, dst))
        assert snapshot(src.default_collection()) == snapshot(dst.default_collection())
    finally:
        src.close()
        dst.close()


def test_a_large_push_never_reads_far_ahead_of_the_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes read from the feed but not yet acknowledged stay bounded (memory flat in N)."""
    peak = 0
    original = SequenceTracker.add

    def add(self: SequenceTracker, key: Any, value: Any) -> None:
        nonlocal peak
        original(self, key, value)
        peak = max(peak, self.outstanding)

    monkeypatch.setattr(SequenceTracker, "add", add)
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        col = a.default_collection()
        for start in range(0, 5000, 1000):
            with a.in_batch():
                for i in range(start, start + 1000):
                    col.save(MutableDocument(f"d{i:05d}", {"i": i, "pad": "x" * 100}))
        session = run(replicate(a, b, ReplicatorType.PUSH))
        assert session.revs_sent == 5000 and b.default_collection().count == 5000
        # the lists in flight, the batch waiting for a slot, the revisions awaiting replies
        bound = (MAX_CHANGE_LISTS_IN_FLIGHT + 1) * CHANGES_BATCH_SIZE + MAX_REVS_IN_FLIGHT
        assert 0 < peak <= bound, peak
    finally:
        a.close()
        b.close()
