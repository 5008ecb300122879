"""The one pusher in both of its dialects, against a scripted peer: what goes on the wire, what
the peer's answers lead to, and the bound on lists awaiting answers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from couchlite._tuning import (
    BLIP_MAX_CONCURRENT_HANDLERS,
    MAX_CHANGE_LISTS_IN_FLIGHT,
    MAX_REVS_IN_FLIGHT,
)
from couchlite.blip import Message
from couchlite.database.replication_access import replication_store
from couchlite.replicator import push_dialects, rev_sender
from couchlite.replicator import pusher as pusher_module
from couchlite.replicator.collection_context import CollectionContext
from couchlite.replicator.options import SessionCollectionOptions
from couchlite.replicator.protocol.revisions import PeerRevisions
from couchlite.replicator.push_dialects import Announcing, Proposing
from couchlite.replicator.pusher import PushDialect, Pusher
from couchlite.replicator.remote_revs import RemoteRevisions
from couchlite.replicator.reporter import Reporter
from couchlite.replicator.rev_sender import RevSender
from couchlite.replicator.store_worker import StoreWorker
from couchlite.transport.blip_connection import BlipConnection, Reply
from couchlite.transport.loopback import loopback_pair

from .helpers import Events, open_db, put, run


class ListPeer:
    """Answers ``proposeChanges``/``changes`` lists and records them and the ``rev``s; lists
    are held unanswered while ``hold`` is clear."""

    def __init__(self, conn: BlipConnection, answer: Any) -> None:
        self.answer = answer
        self.lists: list[list[Any]] = []
        self.caught_up = 0
        self.caught_up_after_lists: list[int] = []
        self.revs: list[Message] = []
        self.outstanding = 0
        self.max_outstanding = 0
        self.hold = asyncio.Event()
        self.hold.set()
        for profile in ("proposeChanges", "changes"):
            conn.register_handler(profile, self._on_list)
        conn.register_handler("rev", self._on_rev)

    async def _on_list(self, message: Message) -> Reply | None:
        entries = orjson.loads(message.body)
        if not entries:
            self.caught_up += 1
            self.caught_up_after_lists.append(len(self.lists))
            return None
        self.lists.append(entries)
        self.outstanding += 1
        self.max_outstanding = max(self.max_outstanding, self.outstanding)
        try:
            async with asyncio.timeout(10):
                await self.hold.wait()
        finally:
            self.outstanding -= 1
        return Reply({}, orjson.dumps(self.answer(message.profile, entries)))

    async def _on_rev(self, message: Message) -> Reply:
        self.revs.append(message)
        return Reply()


def _ask_for_all(profile: str, entries: list[Any]) -> list[Any]:
    return [] if profile == "proposeChanges" else [[] for _ in entries]


async def _push(
    tmp_path: Path, dialect_of: Any, answer: Any, *, hold: bool = False
) -> tuple[ListPeer, Pusher, Events]:
    db = open_db(tmp_path, "db")
    try:
        store = replication_store(db)
        coll = store.for_collection(db.default_collection())
        for i in range(40):
            put(db.default_collection(), f"doc-{i:02}", {"i": i})
        a, b = loopback_pair()
        ours, theirs = BlipConnection(a), BlipConnection(b)
        peer = ListPeer(theirs, answer)
        if hold:
            peer.hold.clear()
        ours.start()
        theirs.start()
        calls = StoreWorker(store.private_uuid)
        events = Events()
        dialect: PushDialect = dialect_of(coll, calls)
        pusher = Pusher(
            ours,
            CollectionContext(0, coll),
            calls,
            dialect,
            sender=RevSender(ours, store, calls),
            reporter=Reporter(events),
            since=0,
            continuous=False,
        )
        task = asyncio.create_task(pusher.run())
        if hold:
            async with asyncio.timeout(10):
                while peer.outstanding < MAX_CHANGE_LISTS_IN_FLIGHT:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # room for a list beyond the bound, were there one
            peer.hold.set()
        async with asyncio.timeout(20):
            await task
        await ours.close()
        await theirs.close()
        return peer, pusher, events
    finally:
        db.close()


def _proposing(coll: Any, calls: StoreWorker) -> Proposing:
    return Proposing(SessionCollectionOptions(coll), RemoteRevisions(coll, "peer", calls), None)


def _announcing(coll: Any, calls: StoreWorker) -> Announcing:
    return Announcing(PeerRevisions(), active_only=False, document_ids=None, replacements=False)


def test_both_dialects_send_every_revision_with_their_own_wording(tmp_path: Path) -> None:
    proposed, proposer, _ = run(_push(tmp_path / "p", _proposing, _ask_for_all))
    announced, announcer, _ = run(_push(tmp_path / "a", _announcing, _ask_for_all))

    # proposing: [docID, revID, serverRev, bodySize]; revs say noconflicts
    assert [e[0] for lst in proposed.lists for e in lst] == [f"doc-{i:02}" for i in range(40)]
    assert all(m.bool_property("noconflicts") for m in proposed.revs)
    assert proposed.caught_up == 0
    assert proposer.checkpoint == 40 and proposer.revs_sent == 40
    # announcing: [seq, docID, revID, deleted, bodySize], then one empty "caught up" list
    # after every list was sent; revs carry no noconflicts
    assert [e[:2] for lst in announced.lists for e in lst] == [
        [i + 1, f"doc-{i:02}"] for i in range(40)
    ]
    assert announced.caught_up == 1
    assert announced.caught_up_after_lists == [len(announced.lists)]
    assert all("noconflicts" not in m.properties for m in announced.revs)
    assert announcer.revs_sent == 40
    # the same revisions with the same bodies either way
    bodies = {m.properties["id"]: (m.properties["rev"], m.body) for m in proposed.revs}
    assert bodies == {m.properties["id"]: (m.properties["rev"], m.body) for m in announced.revs}


def test_answers_that_want_nothing_settle_the_changes(tmp_path: Path) -> None:
    def have_all(profile: str, entries: list[Any]) -> list[Any]:
        return [304] * len(entries) if profile == "proposeChanges" else [None] * len(entries)

    proposed, proposer, p_events = run(_push(tmp_path / "p", _proposing, have_all))
    announced, announcer, a_events = run(_push(tmp_path / "a", _announcing, have_all))
    assert proposed.revs == [] and announced.revs == []
    assert proposer.checkpoint == 40 and announcer.checkpoint == 40
    # a 304 is a document the peer has (reported); a null answer needs no report
    assert len([d for _, d in p_events.docs if d.error is None]) == 40
    assert a_events.docs == []
    for pusher in (proposer, announcer):
        assert (pusher.reporter.completed, pusher.reporter.total) == (40, 40)


@pytest.mark.parametrize("dialect_of", [_proposing, _announcing], ids=["proposing", "announcing"])
def test_lists_awaiting_answers_stay_within_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dialect_of: Any
) -> None:
    monkeypatch.setattr(push_dialects, "CHANGES_BATCH_SIZE", 2)  # 20 lists of 2
    peer, pusher, _ = run(_push(tmp_path, dialect_of, _ask_for_all, hold=True))
    assert peer.max_outstanding == MAX_CHANGE_LISTS_IN_FLIGHT
    assert len(peer.lists) == 20 and pusher.revs_sent == 40


@pytest.mark.parametrize("dialect_of", [_proposing, _announcing], ids=["proposing", "announcing"])
@pytest.mark.parametrize("budget", [1024 * 1024, 30, 0], ids=["all", "some", "none"])
def test_the_revisions_of_a_list_are_read_in_one_store_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dialect_of: Any, budget: int
) -> None:
    batches: list[int] = []
    read_many = rev_sender._read_many

    def counted_many(store: Any, wanted: list[Any], *args: Any) -> Any:
        batches.append(len(wanted))
        return read_many(store, wanted, *args)

    monkeypatch.setattr(rev_sender, "_read_many", counted_many)
    monkeypatch.setattr(pusher_module, "REV_READ_AHEAD_BYTES", budget)
    peer, pusher, _ = run(_push(tmp_path, dialect_of, _ask_for_all))
    # each body is {"i":N}, 7 bytes for the first ten: a budget of 30 takes the first 4
    ahead = {1024 * 1024: 40, 30: 4, 0: 0}[budget]
    # the list's read-ahead in one call, then the rest one by one as they get sender slots
    assert batches == ([ahead] if ahead else []) + [1] * (40 - ahead)
    assert pusher.revs_sent == 40
    sent = {m.properties["id"]: orjson.loads(m.body) for m in peer.revs}
    assert sent == {f"doc-{i:02}": {"i": i} for i in range(40)}


def test_revisions_in_flight_leave_the_peers_handler_slots_for_its_other_work() -> None:
    """A couchlite peer's rev handlers may wait for our getAttachment replies, which its
    reader reads only once it has a free handler slot: ours in flight, with our changes
    lists, must never fill all of its slots."""
    assert MAX_REVS_IN_FLIGHT + MAX_CHANGE_LISTS_IN_FLIGHT < BLIP_MAX_CONCURRENT_HANDLERS
