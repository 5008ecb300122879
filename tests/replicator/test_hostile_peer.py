"""What a hostile peer can no longer do to either side of a replication, over the in-memory
loopback with real databases: store what was not asked for, start a task per ``subChanges``,
fill the disk with checkpoints, or get a 501 out of a deep body, a big integer or a malformed
revision ID."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from couchlite.blip import BlipErrorReply, Message
from couchlite.database.replication_access import replication_store
from couchlite.replicator.change_feed import Quiet
from couchlite.replicator.protocol.revisions import RequestedRevisions
from couchlite.replicator.protocol.sequences import SequenceTracker
from couchlite.replicator.types import ReplicatorType
from couchlite.transport.blip_connection import BlipConnection, Reply
from couchlite.transport.loopback import loopback_pair

from .helpers import StubPassivePeer, connected, default_session, open_db, put, run, snapshot

R1 = "1-" + "a1" * 20
R1B = "1-" + "b1" * 20
R2 = "2-" + "a2" * 20


async def _refused(
    conn: BlipConnection, props: dict[str, str], body: bytes = b""
) -> BlipErrorReply:
    with pytest.raises(BlipErrorReply) as info:
        await conn.request(props, body)
    return info.value


def _rev(doc_id: str, rev_id: str, **extra: str) -> dict[str, str]:
    return {"Profile": "rev", "id": doc_id, "rev": rev_id, **extra}


# --- the passive side ----------------------------------------------------------------------


def test_a_second_live_sub_changes_is_refused_without_a_task(tmp_path: Path) -> None:
    b = open_db(tmp_path, "b")

    async def main() -> None:
        async with connected(b) as pair:
            pair.active.register_handler("changes", _answer_nothing)
            sub = {"Profile": "subChanges", "continuous": "true"}
            await pair.active.request(sub)
            tasks = len(pair.passive_session._pushers)
            for _ in range(50):
                err = await _refused(pair.active, sub)
                assert (err.error_domain, err.code) == ("HTTP", 409)
            assert len(pair.passive_session._pushers) == tasks == 1
        # a one-shot subscription that has ended may be followed by another
        async with connected(b) as pair:
            pair.active.register_handler("changes", _answer_nothing)
            await pair.active.request({"Profile": "subChanges"})
            task = pair.passive_session._live[0]
            async with asyncio.timeout(10):
                await asyncio.wait({task})
            await pair.active.request({"Profile": "subChanges"})

    try:
        run(main())
    finally:
        b.close()


async def _answer_nothing(message: Message) -> Reply | None:
    return None if message.no_reply else Reply(body=b"[]")


def test_only_accepted_proposals_are_stored(tmp_path: Path) -> None:
    b = open_db(tmp_path, "b")
    local = put(b.default_collection(), "local", {"v": "mine"})

    async def main() -> None:
        async with connected(b) as pair:
            conn = pair.active
            # never proposed
            err = await _refused(conn, _rev("never", R1), b'{"v": 1}')
            assert (err.error_domain, err.code) == ("HTTP", 400)
            # proposed but refused (conflict): its rev is refused too
            reply = await conn.request(
                {"Profile": "proposeChanges"},
                orjson.dumps([["ok", R1], ["local", R2, R1]]),
            )
            assert reply.json()[1] == 409
            err = await _refused(conn, _rev("local", R2, history=R1), b'{"v": "forged"}')
            assert err.code == 400
            # proposed and accepted, but a different revision is sent
            err = await _refused(conn, _rev("ok", R1B), b'{"v": 1}')
            assert err.code == 400
            # the accepted one is stored, once
            await conn.request(_rev("ok", R1, noconflicts="1"), b'{"v": 1}')
            err = await _refused(conn, _rev("ok", R1, noconflicts="1"), b'{"v": 1}')
            assert err.code == 400
            # legacy "changes" (no proposal): what was answered wanted may come
            reply = await conn.request(
                {"Profile": "changes"}, orjson.dumps([[1, "legacy", R1], [2, "ok", R1]])
            )
            assert reply.json() == [[]]
            await conn.request(_rev("legacy", R1), b'{"v": 2}')

    try:
        run(main())
        docs = snapshot(b.default_collection())
        assert set(docs) == {"local", "ok", "legacy"}
        assert docs["local"][0] == local and docs["local"][2] == {"v": "mine"}
        assert docs["ok"][2] == {"v": 1}
    finally:
        b.close()


@pytest.mark.parametrize(
    ("props", "body"),
    [
        (_rev("d", R1), b'{"a":' * 1000 + b"1" + b"}" * 1000),  # deeper than anything local
        (_rev("d", R1), b'{"a":' * 255 + b"1" + b"}" * 255),  # one level too deep
        (_rev("d", R1), b'{"n": 123456789012345678901234567890}'),  # beyond 64 bits
        (_rev("d", R1), b'{"n": -9223372036854775809}'),
        (_rev("d", R1), b"{not json"),
        (_rev("d", "1-zz"), b"{}"),  # malformed revision ID
        (_rev("d", R2, history="junk"), b"{}"),
        (_rev("d", R2, history=R2), b"{}"),  # history not consecutive
        (_rev("d", R1, deltaSrc="nope"), b"{}"),
    ],
)
def test_bad_revs_are_400_and_store_nothing(
    tmp_path: Path, props: dict[str, str], body: bytes
) -> None:
    b = open_db(tmp_path, "b")

    async def main() -> None:
        async with connected(b) as pair:
            conn = pair.active
            rev_id = props["rev"]
            proposal = [["d", rev_id]] if rev_id != "1-zz" else [["d", R1]]
            await conn.request({"Profile": "proposeChanges"}, orjson.dumps(proposal))
            err = await _refused(conn, props, body)
            assert (err.error_domain, err.code) == ("HTTP", 400), err
            assert len(err.message) < 1000
            # the connection still serves a good push
            await conn.request({"Profile": "proposeChanges"}, orjson.dumps([["good", R1]]))
            await conn.request(_rev("good", R1, noconflicts="1"), b'{"n": 18446744073709551615}')

    try:
        run(main())
        docs = snapshot(b.default_collection())
        assert set(docs) == {"good"}
        assert docs["good"][2] == {"n": 18446744073709551615}  # still an integer
    finally:
        b.close()


@pytest.mark.parametrize(
    ("profile", "body", "code"),
    [
        ("changes", orjson.dumps([[1, "d", "bad-rev"]]), 400),
        ("changes", orjson.dumps([[1, "", R1]]), 400),
        ("changes", orjson.dumps([[1, "d"]]), 400),
        ("proposeChanges", orjson.dumps([["d", "bad"]]), 400),
        ("proposeChanges", orjson.dumps([["d", R2, "zz"]]), 400),
        ("proposeChanges", b"[" * 300 + b"]" * 300, 400),
        ("proposeChanges", b'[["d", "' + R1.encode() + b'", "", 99999999999999999999999]]', 400),
        ("changes", orjson.dumps([[i, f"d{i}", R1] for i in range(5001)]), 413),
    ],
)
def test_bad_change_lists_are_4xx(tmp_path: Path, profile: str, body: bytes, code: int) -> None:
    b = open_db(tmp_path, "b")

    async def main() -> None:
        async with connected(b) as pair:
            err = await _refused(pair.active, {"Profile": profile}, body)
            assert err.code == code, err
            reply = await pair.active.request(
                {"Profile": "proposeChanges"}, orjson.dumps([["d", R1]])
            )
            assert reply.json() == []

    try:
        run(main())
    finally:
        b.close()


def test_checkpoints_are_bounded_on_a_read_only_listener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("couchlite.database.replication_access.MAX_PEER_CHECKPOINTS", 5)
    b = open_db(tmp_path, "b")

    async def main() -> None:
        async with connected(b, allow_push=False) as pair:
            conn = pair.active
            revs: dict[str, str] = {}
            for i in range(8):
                reply = await conn.request(
                    {"Profile": "setCheckpoint", "client": f"c{i}"}, b'{"local": %d}' % i
                )
                revs[f"c{i}"] = reply.properties["rev"]
                if i == 3:  # c0 updated again: the most recent, kept
                    reply = await conn.request(
                        {"Profile": "setCheckpoint", "client": "c0", "rev": revs["c0"]},
                        b'{"local": 100}',
                    )
                    assert reply.properties["rev"] == "2-cc"
            for gone in ("c1", "c2", "c3"):
                err = await _refused(conn, {"Profile": "getCheckpoint", "client": gone})
                assert err.code == 404
            reply = await conn.request({"Profile": "getCheckpoint", "client": "c0"})
            assert reply.json() == {"local": 100}
            for client in ("c4", "c5", "c6", "c7"):
                await conn.request({"Profile": "getCheckpoint", "client": client})
            # size, ID length, body and revision format
            big = b'{"x": "' + b"x" * (64 * 1024) + b'"}'
            err = await _refused(conn, {"Profile": "setCheckpoint", "client": "c9"}, big)
            assert err.code == 413
            err = await _refused(conn, {"Profile": "setCheckpoint", "client": "c" * 257}, b"{}")
            assert err.code == 400
            err = await _refused(conn, {"Profile": "getCheckpoint", "client": "c" * 257})
            assert err.code == 400
            for body in (b"[1]", b"not json", b'{"a":' * 300 + b"1" + b"}" * 300):
                err = await _refused(conn, {"Profile": "setCheckpoint", "client": "c9"}, body)
                assert err.code == 400
            err = await _refused(
                conn, {"Profile": "setCheckpoint", "client": "c4", "rev": "x-y"}, b"{}"
            )
            assert err.code == 400

    try:
        run(main())
        store = replication_store(b)
        assert sum(store.get_peer_checkpoint(f"c{i}") is not None for i in range(10)) == 5
    finally:
        b.close()


# --- the active puller ---------------------------------------------------------------------


class HostilePeer(StubPassivePeer):
    """A passive peer that announces a feed, then sends whatever revs it likes."""

    def __init__(self, conn: BlipConnection, feed: list[list[Any]], revs: list[Any]) -> None:
        self.feed = feed
        self.revs = revs
        self.answers: list[Any] = []
        self.results: list[tuple[str, int | None]] = []
        super().__init__(conn)

    async def _serve(self) -> None:
        reply = await self.conn.request({"Profile": "changes"}, orjson.dumps(self.feed))
        self.answers = reply.json()
        for props, body in self.revs:
            try:
                await self.conn.request({"Profile": "rev", **props}, orjson.dumps(body))
                self.results.append((props["id"], None))
            except BlipErrorReply as exc:
                self.results.append((props["id"], exc.code))
        await self.conn.send_no_reply({"Profile": "changes"}, b"[]", urgent=True)


def _pull_from(
    db: Any,
    feed: list[list[Any]],
    revs: list[Any],
    peer_class: type[HostilePeer] = HostilePeer,
    **options: Any,
) -> HostilePeer:
    """Pull once from a ``peer_class`` peer; ``options`` are set on every collection's
    options."""

    async def main() -> HostilePeer:
        a, b = loopback_pair()
        active, passive = BlipConnection(a), BlipConnection(b)
        peer = peer_class(passive, feed, revs)
        passive.start()
        active.start()
        session = default_session(active, db, ReplicatorType.PULL, continuous=False)
        for unit in session._units:
            for key, value in options.items():
                setattr(unit.options, key, value)
        async with asyncio.timeout(10):
            await session.run()
        await active.close()
        await passive.close()
        return peer

    return run(main())


def test_puller_stores_only_what_it_asked_for(tmp_path: Path) -> None:
    db = open_db(tmp_path, "a")
    coll = db.default_collection()
    local = put(coll, "local", {"v": "mine"})
    forged_history = ",".join(f"{g}-" + f"{g:02x}" * 20 for g in range(59, 0, -1))
    feed = [
        [1, "public", R1],
        [2, "secret", R1],  # outside document_ids: answered 0
        [3, "local", "60-" + "ee" * 20, 2],  # a revocation outside document_ids: ignored
    ]
    revs = [
        ({"id": "secret", "rev": R1, "sequence": "2"}, {"v": "not wanted"}),
        ({"id": "never", "rev": R1, "sequence": "9"}, {"v": "never announced"}),
        (
            {"id": "local", "rev": "60-" + "ee" * 20, "sequence": "3", "history": forged_history},
            {"v": "forged"},
        ),
        ({"id": "public", "rev": R1B, "sequence": "1"}, {"v": "other revision"}),
        ({"id": "public", "rev": R1, "sequence": "1"}, {"v": "public"}),
        ({"id": "public", "rev": R1, "sequence": "1"}, {"v": "again"}),
    ]
    try:
        peer = _pull_from(db, feed, revs, document_ids=frozenset({"public"}))
        assert peer.answers == [[], 0, 0]
        assert peer.results == [
            ("secret", 400),
            ("never", 400),
            ("local", 400),
            ("public", 400),
            ("public", None),
            ("public", 400),
        ]
        docs = snapshot(coll)
        assert set(docs) == {"local", "public"}
        assert docs["public"][2] == {"v": "public"}
        assert docs["local"][0] == local and docs["local"][2] == {"v": "mine"}
    finally:
        db.close()


def test_puller_refuses_bad_bodies_and_rows_without_501(tmp_path: Path) -> None:
    db = open_db(tmp_path, "a")
    feed = [[1, "deep", R1], [2, "big", R1], [3, "ok", R1]]
    revs = [
        ({"id": "deep", "rev": R1, "sequence": "1"}, None),
        ({"id": "big", "rev": R1, "sequence": "2"}, None),
        ({"id": "ok", "rev": R1, "sequence": "3"}, {"n": 1}),
    ]

    class Raw(HostilePeer):
        async def _serve(self) -> None:
            err = None
            try:
                await self.conn.request({"Profile": "changes"}, orjson.dumps([[1, "x", "1-zz"]]))
            except BlipErrorReply as exc:
                err = exc.code
            self.results.append(("bad row", err))
            reply = await self.conn.request({"Profile": "changes"}, orjson.dumps(self.feed))
            self.answers = reply.json()
            bodies = [
                b'{"a":' * 1000 + b"1" + b"}" * 1000,
                b'{"n": 123456789012345678901234567890}',
                b'{"n": 1}',
            ]
            for (props, _), body in zip(self.revs, bodies, strict=True):
                try:
                    await self.conn.request({"Profile": "rev", **props}, body)
                    self.results.append((props["id"], None))
                except BlipErrorReply as exc:
                    self.results.append((props["id"], exc.code))
            await self.conn.send_no_reply({"Profile": "changes"}, b"[]", urgent=True)

    try:
        peer = _pull_from(db, feed, revs, Raw)
        assert peer.results == [("bad row", 400), ("deep", 400), ("big", 400), ("ok", None)]
        assert set(snapshot(db.default_collection())) == {"ok"}
    finally:
        db.close()


# --- bookkeeping ---------------------------------------------------------------------------


def test_requested_revisions_are_bounded_and_o1() -> None:
    requested = RequestedRevisions(limit=3)
    assert requested.add("a", R1, "k1") == (False, None)
    requested.add("b", R1, "k2")
    requested.add("c", R1, "k3")
    assert requested.add("d", R1, "k4") == (True, "k1")  # the oldest is forgotten
    assert ("a", R1) not in requested and len(requested) == 3
    assert requested.pop("b", R1) == (True, "k2")
    assert requested.pop("b", R1) == (False, None)
    for i in range(200_000):
        requested.add(f"doc{i}", R1, i)
    assert len(requested) == 3


def test_sequence_tracker_stays_flat_after_a_stuck_sequence() -> None:
    async def main() -> None:
        quiet = Quiet()
        tracker = SequenceTracker(0, on_quiet=quiet)
        tracker.add(1, 1)
        tracker.add(2, 2)
        tracker.done(1)
        tracker.stuck(2)
        assert tracker.checkpoint == 1
        for seq in range(3, 200_003):
            tracker.add(seq, seq)
            if seq % 2:
                tracker.done(seq)
        assert tracker.checkpoint == 1
        assert tracker.outstanding == 100_000
        assert len(tracker._states) == 100_000 and not tracker._order
        for seq in range(4, 200_003, 2):
            tracker.done(seq)
        assert tracker.outstanding == 0 and not tracker._states
        await quiet.wait()
        assert tracker.checkpoint == 1

    run(main())
