"""Delta sync (notes §6): deltas only when both sides allow them, bases, the 422 fallback."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from couchlite import Database
from couchlite.blip import BlipErrorReply, BlipProtocol, Message
from couchlite.database.replication_access import ReplicationCollection, replication_store
from couchlite.replicator.active import ActiveSession
from couchlite.replicator.passive import PassiveSession
from couchlite.replicator.protocol.revs import Rev
from couchlite.replicator.rev_receiver import expand_delta
from couchlite.replicator.store import IncomingRevision
from couchlite.replicator.types import ReplicatorType
from couchlite.transport.blip_connection import BlipConnection
from couchlite.transport.loopback import loopback_pair
from tests.data import INTEROP

from .helpers import TIMEOUT_S, Events, default_session, open_db, put, run, snapshot, spy_profile

pytestmark = pytest.mark.timeout(60)


def body(i: int, version: int) -> dict[str, Any]:
    """About 1.5 KB, hardly compressible (as real data); each version changes one field."""
    return {
        "n": i,
        "version": version,
        "text": random.Random(i).randbytes(400).hex(),
        "items": [{"sku": f"SKU-{k:04}", "qty": k} for k in range(10)],
    }


class Run:
    """The outcome of one session: bytes each side sent, the ``rev`` properties each received,
    the reply properties of ``changes``/``proposeChanges``, and the senders' statistics."""

    def __init__(self) -> None:
        self.active_bytes = 0
        self.passive_bytes = 0
        self.revs_to_passive: list[dict[str, str]] = []
        self.revs_to_active: list[dict[str, str]] = []
        self.sink_replies: list[dict[str, str]] = []
        self.active: ActiveSession | None = None
        self.passive: PassiveSession | None = None
        self.events = Events()

    def delta_revs(self) -> list[dict[str, str]]:
        return [p for p in self.revs_to_passive + self.revs_to_active if "deltaSrc" in p]


def _spy_revs(conn: BlipConnection, into: list[dict[str, str]]) -> None:
    spy_profile(conn, "rev", lambda message: into.append(dict(message.properties)))


async def _session(
    active_db: Database,
    passive_db: Database,
    kind: ReplicatorType,
    *,
    active_deltas: bool,
    passive_deltas: bool,
) -> Run:
    result = Run()
    a, b = loopback_pair()
    active = BlipConnection(a, name="active")
    passive = BlipConnection(b, name="passive")
    pstore = replication_store(passive_db)
    psession = PassiveSession(
        passive,
        pstore,
        [pstore.for_collection(passive_db.default_collection())],
        enable_delta_sync=passive_deltas,
    )
    psession.attach()
    _spy_revs(passive, result.revs_to_passive)
    session = default_session(
        active,
        active_db,
        kind,
        continuous=False,
        events=result.events,
        enable_delta_sync=active_deltas,
    )
    original_request = active.request
    original_passive_request = passive.request

    async def spy_request(props: Any, *args: Any, **kwargs: Any) -> Any:
        reply = await original_request(props, *args, **kwargs)
        if dict(props).get("Profile") == "proposeChanges":
            result.sink_replies.append(dict(reply.properties))
        return reply

    async def spy_passive_request(props: Any, *args: Any, **kwargs: Any) -> Any:
        if dict(props).get("Profile") == "rev":
            result.revs_to_active.append(dict(props))
        reply = await original_passive_request(props, *args, **kwargs)
        if dict(props).get("Profile") == "changes":
            result.sink_replies.append(dict(reply.properties))
        return reply

    active.request = spy_request  # type: ignore[method-assign]
    passive.request = spy_passive_request  # type: ignore[method-assign]
    passive.start()
    active.start()
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await session.run()
    finally:
        await psession.close()
        await active.close()
        await passive.close()
    result.active_bytes = active.statistics()["bytes_sent"]
    result.passive_bytes = passive.statistics()["bytes_sent"]
    result.active, result.passive = session, psession
    return result


def sync(
    active_db: Database,
    passive_db: Database,
    kind: ReplicatorType,
    *,
    active_deltas: bool = True,
    passive_deltas: bool = True,
) -> Run:
    return run(
        _session(
            active_db, passive_db, kind, active_deltas=active_deltas, passive_deltas=passive_deltas
        )
    )


N = 20


def _seed_and_change(tmp_path: Path, tag: str) -> tuple[Database, Database]:
    """Two databases with N documents pushed from the active one, then changed there."""
    src, dst = open_db(tmp_path, f"src{tag}"), open_db(tmp_path, f"dst{tag}")
    col = src.default_collection()
    for i in range(N):
        put(col, f"d{i}", body(i, 1))
    first = sync(src, dst, ReplicatorType.PUSH, active_deltas=False, passive_deltas=False)
    assert first.delta_revs() == []
    for i in range(N):
        put(col, f"d{i}", body(i, 2))
    return src, dst


@pytest.mark.parametrize(
    ("active_deltas", "passive_deltas"),
    [(True, True), (True, False), (False, True), (False, False)],
)
def test_push_uses_deltas_only_when_both_sides_allow_them(
    tmp_path: Path, active_deltas: bool, passive_deltas: bool
) -> None:
    src, dst = _seed_and_change(tmp_path, "")
    try:
        second = sync(
            src,
            dst,
            ReplicatorType.PUSH,
            active_deltas=active_deltas,
            passive_deltas=passive_deltas,
        )
        assert second.events.errors() == []
        assert snapshot(dst.default_collection()) == snapshot(src.default_collection())
        # the receiver announces deltas exactly when its side allows them
        announced = {r.get("deltas") for r in second.sink_replies}
        assert announced == ({"true"} if passive_deltas else {None})
        deltas = second.delta_revs()
        assert second.active is not None
        if active_deltas and passive_deltas:
            assert len(deltas) == N
            assert second.active.sender.deltas_sent == N
            for props in deltas:
                assert props["deltaSrc"] in props["history"].split(",")
        else:
            assert deltas == []
            assert second.active.sender.deltas_sent == 0
    finally:
        src.close()
        dst.close()


def test_push_deltas_send_far_fewer_bytes(tmp_path: Path) -> None:
    figures = {}
    for on in (False, True):
        src, dst = _seed_and_change(tmp_path, str(on))
        try:
            second = sync(src, dst, ReplicatorType.PUSH, active_deltas=on, passive_deltas=on)
            assert snapshot(dst.default_collection()) == snapshot(src.default_collection())
            figures[on] = second.active_bytes
        finally:
            src.close()
            dst.close()
    assert figures[True] < figures[False] / 2


def test_pull_deltas_against_a_base_the_peer_pushed(tmp_path: Path) -> None:
    # the active pushes; the passive edits twice; the active pulls: the passive still has the
    # base (the revision pushed to it is kept), unlike a passive-only LiteCore (interop fact 14)
    active_db, passive_db = open_db(tmp_path, "a"), open_db(tmp_path, "p")
    try:
        for i in range(N):
            put(active_db.default_collection(), f"d{i}", body(i, 1))
        sync(active_db, passive_db, ReplicatorType.PUSH)
        for i in range(N):
            put(passive_db.default_collection(), f"d{i}", body(i, 2))
            put(passive_db.default_collection(), f"d{i}", body(i, 3))
        pulled = sync(active_db, passive_db, ReplicatorType.PULL)
        assert pulled.events.errors() == []
        assert snapshot(active_db.default_collection()) == snapshot(passive_db.default_collection())
        assert {r.get("deltas") for r in pulled.sink_replies} == {"true"}
        deltas = pulled.delta_revs()
        assert len(deltas) == N
        assert pulled.passive is not None and pulled.passive.sender.deltas_sent == N
        # and off on the active side: full bodies
        for i in range(N):
            put(passive_db.default_collection(), f"d{i}", body(i, 4))
        plain = sync(active_db, passive_db, ReplicatorType.PULL, active_deltas=False)
        assert plain.delta_revs() == []
        assert {r.get("deltas") for r in plain.sink_replies} == {None}
        assert snapshot(active_db.default_collection()) == snapshot(passive_db.default_collection())
    finally:
        active_db.close()
        passive_db.close()


def test_small_bodies_and_deletions_are_sent_whole(tmp_path: Path) -> None:
    src, dst = open_db(tmp_path, "src"), open_db(tmp_path, "dst")
    try:
        col = src.default_collection()
        put(col, "small", {"a": 1})
        put(col, "big", body(1, 1))
        sync(src, dst, ReplicatorType.PUSH)
        put(col, "small", {"a": 2})
        big = col.get("big")
        assert big is not None
        col.delete(big)
        second = sync(src, dst, ReplicatorType.PUSH)
        assert len(second.revs_to_passive) == 2
        assert second.delta_revs() == []
        assert snapshot(dst.default_collection()) == snapshot(col)
    finally:
        src.close()
        dst.close()


def test_missing_base_is_answered_422_and_the_full_body_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = _seed_and_change(tmp_path, "")
    try:
        # the receiver has lost every base body (as if purged): only the receiver's
        # document_body is asked for a base, the sender uses delta_base
        monkeypatch.setattr(ReplicationCollection, "document_body", lambda *_: None)
        second = sync(src, dst, ReplicatorType.PUSH)
        assert second.events.errors() == []
        assert second.active is not None
        assert second.active.sender.delta_fallbacks == N
        assert second.active.sender.deltas_sent == 0
        with_delta = [p for p in second.revs_to_passive if "deltaSrc" in p]
        without = [p for p in second.revs_to_passive if "deltaSrc" not in p]
        assert len(with_delta) == len(without) == N
        monkeypatch.undo()
        assert snapshot(dst.default_collection()) == snapshot(src.default_collection())
    finally:
        src.close()
        dst.close()


def _rev_message(props: dict[str, str], payload: Any) -> Message:
    """A ``rev`` request as it arrives, encoded and decoded by real BLIP."""
    sender, receiver = BlipProtocol(), BlipProtocol()
    sender.send_request(props, orjson.dumps(payload))
    messages: list[Message] = []
    while (frame := sender.next_frame()) is not None:
        messages.extend(receiver.receive_frame(frame))
    assert len(messages) == 1
    return messages[0]


def test_expand_delta_errors_are_422(tmp_path: Path) -> None:
    db = open_db(tmp_path, "db")
    try:
        store = replication_store(db).for_collection(db.default_collection())
        rev_id = put(db.default_collection(), "doc", {"a": "x", "n": [1, 2]})
        base = {"Profile": "rev", "id": "doc", "rev": "2-" + "aa" * 20, "history": rev_id}
        ok = Rev.parse(_rev_message({**base, "deltaSrc": rev_id}, {"a": "y", "n": {"2-": [3]}}))
        assert orjson.loads(expand_delta(store, ok).body) == {"a": "y", "n": [1, 2, 3]}
        for props, delta in [
            ({**base, "deltaSrc": "1-" + "00" * 20}, {"a": "y"}),  # unknown base
            ({**base, "deltaSrc": rev_id}, {"n": {"9": 1}}),  # does not fit the base
            ({**base, "deltaSrc": rev_id}, {"a": [1, 2, 3, 4]}),  # malformed
        ]:
            with pytest.raises(BlipErrorReply) as caught:
                expand_delta(store, Rev.parse(_rev_message(props, delta)))
            assert caught.value.error_domain == "HTTP" and caught.value.code == 422
    finally:
        db.close()


# --- the recorded Couchbase Lite deltas, through our sink ----------------------------------------


def _recorded_revs(name: str) -> tuple[dict[str, Any], list[Message]]:
    lines = [json.loads(line) for line in (INTEROP / name).read_text("utf-8").splitlines() if line]
    decoders = {d: BlipProtocol(strict_numbering=False) for d in ("c2s", "s2c")}
    revs = []
    for record in lines[1:]:
        if "hex" in record:
            for message in decoders[record["dir"]].receive_frame(bytes.fromhex(record["hex"])):
                if message.is_request and message.properties.get("Profile") == "rev":
                    revs.append(message)
    return lines[0], revs


def test_recorded_delta_revs_expand_to_the_recorded_documents(tmp_path: Path) -> None:
    db = open_db(tmp_path, "db")
    try:
        store = replication_store(db).for_collection(db.default_collection())
        _, (setup,) = _recorded_revs("06-delta.setup.jsonl")
        first = Rev.parse(setup)
        seeded = IncomingRevision(first.doc_id, first.rev_id, [], first.body, False)
        assert store.insert_revisions([seeded])[0].error is None
        for name, side in [("06-delta-pull.jsonl", "active"), ("06-delta-push.jsonl", "passive")]:
            header, (message,) = _recorded_revs(name)
            rev = expand_delta(store, Rev.parse(message))
            expected = header["databases_after"][side][0]["body"]
            assert orjson.loads(rev.body) == expected
            outcome = store.insert_revisions(
                [IncomingRevision(rev.doc_id, rev.rev_id, rev.history, rev.body, False)]
            )
            assert outcome[0].error is None
            current = store.current_revision(rev.doc_id)
            assert current is not None and current[0] == message.properties["rev"]
    finally:
        db.close()
