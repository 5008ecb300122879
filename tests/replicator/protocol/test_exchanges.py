"""Whole exchanges driven by plain function calls: no event loop, no connection.

Both peers are real databases (real SQLite, through the replicator's store port); every
message goes through ``to_message`` and ``parse``, as it would over BLIP.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from couchlite import Database, DatabaseConfiguration, MutableDocument
from couchlite.database import replication_store
from couchlite.replicator.protocol.changes import (
    ChangeRow,
    Changes,
    ChangesReply,
    ProposalAnswer,
    ProposeChanges,
    ProposeChangesReply,
    ProposedChange,
    SubChanges,
)
from couchlite.replicator.protocol.pull import PullState
from couchlite.replicator.protocol.push import Decision, decide
from couchlite.replicator.protocol.revisions import RequestedRevisions
from couchlite.replicator.protocol.revs import Rev
from couchlite.replicator.protocol.sequences import SequenceTracker
from couchlite.replicator.store import CollectionStore, IncomingRevision

from .helpers import received, reply


def _open(tmp_path: Path, name: str) -> tuple[Database, CollectionStore]:
    db = Database(name, DatabaseConfiguration(directory=tmp_path / name))
    return db, replication_store(db).for_collection(db.default_collection())


def test_a_pull_of_n_documents(tmp_path: Path) -> None:
    n = 450  # three changes lists
    source_db, source = _open(tmp_path, "source")
    sink_db, sink = _open(tmp_path, "sink")
    try:
        with source_db.in_batch():
            for i in range(n):
                source_db.default_collection().save(MutableDocument(f"d{i:04d}", {"i": i}))
        state = PullState(None)
        # subChanges, as the passive peer reads it
        sub = SubChanges.parse(received(SubChanges(active_only=True).to_message({})))
        cursor, lists = sub.since_sequence, 0
        while True:
            feed = source.changes_since(cursor, sub.batch or 200)
            rows = tuple(ChangeRow(c.sequence, c.doc_id, c.rev_id, int(c.deleted)) for c in feed)
            announcement = state.announce(Changes.parse(received(Changes(rows).to_message({}))))
            if not rows:
                break
            lists += 1
            cursor = feed[-1].sequence
            answered = state.answer(announcement, sink.find_missing(announcement.lookups, 10))
            assert answered.requested == len(rows) and not answered.present
            props, body = state.reply(announcement, deltas=False).to_reply()
            answers = ChangesReply.parse(reply(props, body))
            revs: list[IncomingRevision] = []
            keys = []
            for i, change in enumerate(feed):
                known = answers.known(i)
                assert known == []  # wanted, no ancestors
                out = source.get_revision(change.doc_id, change.rev_id, known, answers.max_history)
                assert out is not None
                sent = Rev(
                    out.doc_id, out.rev_id, str(change.sequence), out.deleted, out.history, out.body
                )
                rev = Rev.parse(received(sent.to_message({})))
                key = state.requested_key(rev.doc_id, rev.announced)
                assert key is not None
                keys.append(key)
                revs.append(
                    IncomingRevision(rev.doc_id, rev.rev_id, rev.history, rev.body, rev.deleted)
                )
            before = state.checkpoint
            outcomes = sink.insert_revisions(revs)  # one transaction per list
            assert all(o.error is None for o in outcomes)
            assert state.checkpoint == before  # nothing done before it is durable
            for rev, key in zip(revs, keys, strict=True):
                assert state.forget_request(rev.doc_id, rev.rev_id)[0]
                state.done(key)
            assert state.checkpoint == cursor  # the whole list is done: the checkpoint moves
        assert lists == 3 and state.caught_up and state.finished
        assert state.checkpoint == source.last_sequence
        assert sink_db.default_collection().count == n
        # announced again: nothing is wanted any more
        again = PullState(None)
        feed = source.changes_since(0, 10)
        rows = tuple(ChangeRow(c.sequence, c.doc_id, c.rev_id) for c in feed)
        announcement = again.announce(Changes(rows))
        answered = again.answer(announcement, sink.find_missing(announcement.lookups, 10))
        assert len(answered.present) == 10 and again.checkpoint == feed[-1].sequence
        assert orjson.loads(again.reply(announcement, deltas=False).to_reply()[1]) == [0] * 10
    finally:
        source_db.close()
        sink_db.close()


def test_a_revision_not_requested_is_refused_and_a_forgotten_one_holds_the_checkpoint() -> None:
    state = PullState(None, requested=RequestedRevisions(limit=1))
    r = "1-" + "a" * 40
    announcement = state.announce(Changes((ChangeRow(1, "a", r), ChangeRow(2, "b", r))))
    state.answer(announcement, [[], []])  # both wanted; the bound forgets the first
    assert state.requested_key("a", r) is None and state.requested_key("x", r) is None
    key = state.requested_key("b", r)
    assert key is not None
    state.forget_request("b", r)
    state.done(key)
    assert state.checkpoint is None  # sequence 1 is stuck: retried by the next session
    assert state.tracker.outstanding == 0


def test_a_push_with_conflicts(tmp_path: Path) -> None:
    local_db, local = _open(tmp_path, "local")
    peer_db, peer = _open(tmp_path, "peer")
    try:
        for i in range(5):
            local_db.default_collection().save(MutableDocument(f"d{i}", {"side": "local"}))
        for i in (1, 3):  # the peer has its own d1 and d3: conflicts
            peer_db.default_collection().save(MutableDocument(f"d{i}", {"side": "peer"}))
        feed = local.changes_since(0, 200)
        tracker = SequenceTracker(0)
        for change in feed:
            tracker.add(change.sequence, change.sequence)
        out = ProposeChanges(
            tuple(ProposedChange(c.doc_id, c.rev_id, None, c.body_size) for c in feed)
        ).to_message({})
        proposal = ProposeChanges.parse(received(out))
        statuses = peer.check_proposed([(r.doc_id, r.rev_id, r.server_rev) for r in proposal.rows])
        props, body = ProposeChangesReply.from_statuses(statuses).to_reply(
            proposal.conflict_includes_rev
        )
        answers = ProposeChangesReply.parse(reply(props, body))
        sent, conflicts = [], []
        for i, change in enumerate(feed):
            answer = answers.answer(i)
            decision = decide(answer, change.rev_id, 0)
            if decision is Decision.REPROPOSE_IF_ANCESTOR:
                assert answer.server_rev is not None
                revision = local.get_revision(change.doc_id, change.rev_id, [answer.server_rev], 50)
                assert revision is not None and answer.server_rev not in revision.history
                decision = Decision.CONFLICT  # not an ancestor of ours
            if decision is Decision.SEND:
                revision = local.get_revision(change.doc_id, change.rev_id, [], answers.max_history)
                assert revision is not None
                rev = Rev.parse(
                    received(
                        Rev(
                            change.doc_id,
                            change.rev_id,
                            str(change.sequence),
                            body=revision.body,
                            no_conflicts=True,
                        ).to_message({})
                    )
                )
                outcome = peer.insert_revisions(
                    [
                        IncomingRevision(
                            rev.doc_id, rev.rev_id, rev.history, rev.body, rev.deleted, True
                        )
                    ]
                )[0]
                assert outcome.error is None
                sent.append(change.doc_id)
                tracker.done(change.sequence)
            else:
                assert decision is Decision.CONFLICT
                conflicts.append(change.doc_id)
                tracker.done(change.sequence)  # a document error, not retried: done
        assert sent == ["d0", "d2", "d4"] and conflicts == ["d1", "d3"]
        assert peer_db.default_collection().get("d1")["side"] == "peer"  # not overwritten
        assert peer_db.default_collection().count == 5
        assert tracker.checkpoint == feed[-1].sequence
        # the checkpoint rule: a transient refusal (503) keeps the checkpoint before it
        tracker = SequenceTracker(0)
        for change in feed:
            tracker.add(change.sequence, change.sequence)
        refused = ProposeChangesReply.parse(reply({}, b"[0, 503]"))
        assert decide(refused.answer(1), feed[1].rev_id, 0) is Decision.REFUSED
        tracker.done(feed[0].sequence)
        tracker.stuck(feed[1].sequence)
        for change in feed[2:]:
            tracker.done(change.sequence)
        assert tracker.checkpoint == feed[0].sequence
    finally:
        local_db.close()
        peer_db.close()


def _answer(body: bytes) -> ProposalAnswer:
    return ProposeChangesReply.parse(reply({}, body)).answer(0)


def test_a_409_naming_our_ancestor_is_proposed_again_then_our_own_revision_is_had() -> None:
    ours = "2-" + "b" * 40
    ancestor = "1-" + "a" * 40
    names_ancestor = orjson.dumps([{"status": 409, "rev": ancestor}])
    assert decide(_answer(names_ancestor), ours, 0) is Decision.REPROPOSE_IF_ANCESTOR
    assert decide(_answer(names_ancestor), ours, 2) is Decision.CONFLICT  # rounds are bounded
    names_ours = orjson.dumps([{"status": 409, "rev": ours}])
    assert decide(_answer(names_ours), ours, 0) is Decision.PEER_HAS_IT
    assert decide(_answer(b"[304]"), ours, 0) is Decision.PEER_HAS_IT
    assert decide(_answer(b"[]"), ours, 0) is Decision.SEND  # trailing zeros omitted
