"""Push-and-pull, continuous mode, the getCollections path, and a real WebSocket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from couchlite import CouchliteError
from couchlite.database.replication_access import replication_store
from couchlite.errors import ErrorDomain
from couchlite.replicator.passive import PassiveSession
from couchlite.replicator.protocol.checkpoints import checkpoint_id
from couchlite.replicator.types import ReplicatorType
from couchlite.transport.blip_connection import BlipConnection
from couchlite.transport.websocket import connect_channel, serve_channels

from .helpers import (
    REMOTE_URL,
    Events,
    connected,
    default_session,
    open_db,
    put,
    replicate,
    run,
    running,
    snapshot,
)


def test_push_and_pull_both_ways(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        for i in range(20):
            put(a.default_collection(), f"a{i}", {"from": "a", "i": i})
            put(b.default_collection(), f"b{i}", {"from": "b", "i": i})
        session = run(replicate(a, b))
        assert session.revs_sent == 20 and session.revs_received == 20
        assert snapshot(a.default_collection()) == snapshot(b.default_collection())
        assert len(snapshot(a.default_collection())) == 40
        # nothing echoes back, nothing is sent again
        again = run(replicate(a, b))
        assert again.revs_sent == 0 and again.revs_received == 0
    finally:
        a.close()
        b.close()


def test_multiple_collections_push_and_pull(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        mine = [a.default_collection(), a.create_collection("items", "store")]
        theirs = [b.default_collection(), b.create_collection("items", "store")]
        put(mine[0], "x", {"v": 1})
        put(mine[1], "y", {"v": 2})
        put(theirs[1], "z", {"v": 3})
        run(replicate(a, b, collections=mine, passive_collections=theirs))
        assert snapshot(mine[0]) == snapshot(theirs[0])
        assert snapshot(mine[1]) == snapshot(theirs[1])
        assert set(snapshot(mine[1])) == {"y", "z"}
    finally:
        a.close()
        b.close()


def test_unknown_collection_on_the_remote_is_fatal_404(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        mine = [a.create_collection("items", "store")]
        with pytest.raises(CouchliteError) as info:
            run(replicate(a, b, collections=mine, passive_collections=[b.default_collection()]))
        assert info.value.domain is ErrorDomain.WEBSOCKET and info.value.code == 404
    finally:
        a.close()
        b.close()


def test_continuous_push_and_pull(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")

    async def main() -> None:
        put(a.default_collection(), "first", {"n": 1})
        events = Events()
        async with connected(b) as pair:
            session = default_session(
                pair.active,
                a,
                ReplicatorType.PUSH_AND_PULL,
                continuous=True,
                events=events,
            )
            async with running(session):
                await _until(lambda: b.default_collection().get("first") is not None)
                await _until(lambda: events.busy and events.busy[-1] is False)
                # made after the session went idle: both directions deliver it
                put(a.default_collection(), "later-a", {"n": 2})
                put(b.default_collection(), "later-b", {"n": 3})
                await _until(lambda: b.default_collection().get("later-a") is not None)
                await _until(lambda: a.default_collection().get("later-b") is not None)
                await _until(
                    lambda: snapshot(a.default_collection()) == snapshot(b.default_collection())
                )

    try:
        run(main())
    finally:
        a.close()
        b.close()


def test_what_the_peer_pushed_is_remembered_only_until_the_feed_passes_it(tmp_path: Path) -> None:
    """The passive side's no-echo record stays small on a long continuous connection."""
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")

    async def main() -> None:
        async with connected(b) as pair:
            session = default_session(
                pair.active,
                a,
                ReplicatorType.PUSH_AND_PULL,
                continuous=True,
            )
            async with running(session):
                for round_ in range(3):
                    with a.in_batch():
                        for i in range(200):
                            put(a.default_collection(), f"r{round_}-{i}", {"i": i})
                    n = 200 * (round_ + 1)
                    await _until(lambda n=n: b.default_collection().count == n)
                    context = pair.passive_session._contexts[0]
                    assert context is not None
                    await _until(lambda c=context: len(c.peer_revs) == 0)
                # nothing was echoed back: a holds only its own revisions, once each
                assert snapshot(a.default_collection()) == snapshot(b.default_collection())
                assert a.default_collection().last_sequence == 600

    try:
        run(main())
    finally:
        a.close()
        b.close()


def test_a_push_only_session_keeps_no_record_of_what_was_pushed(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")

    async def main() -> None:
        for i in range(50):
            put(a.default_collection(), f"d{i}", {"i": i})
        async with connected(b) as pair:
            session = default_session(
                pair.active,
                a,
                ReplicatorType.PUSH,
                continuous=False,
            )
            await session.run()
            context = pair.passive_session._contexts[0]
            assert context is not None and len(context.peer_revs) == 0
        assert b.default_collection().count == 50

    try:
        run(main())
    finally:
        a.close()
        b.close()


async def _until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def test_push_and_pull_over_a_real_websocket(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")

    async def main() -> None:
        for i in range(100):
            put(a.default_collection(), f"a{i}", {"i": i})
            put(b.default_collection(), f"b{i}", {"i": i})
        pstore = replication_store(b)

        async def serve(channel) -> None:
            conn = BlipConnection(channel, name="ws-passive")
            session = PassiveSession(conn, pstore, [pstore.for_collection(b.default_collection())])
            session.attach()
            try:
                await conn.run()
            except CouchliteError:
                pass
            finally:
                await session.close()

        server = await serve_channels(serve, "127.0.0.1", 0)
        async with server:
            channel = await connect_channel(f"ws://127.0.0.1:{server.port}/b/_blipsync")
            conn = BlipConnection(channel, name="ws-active")
            conn.start()
            session = default_session(
                conn,
                a,
                ReplicatorType.PUSH_AND_PULL,
                continuous=False,
                remote_url=f"ws://127.0.0.1:{server.port}/b",
            )
            async with asyncio.timeout(20):
                await session.run()
            await conn.close()
        assert snapshot(a.default_collection()) == snapshot(b.default_collection())
        assert len(snapshot(a.default_collection())) == 200

    try:
        run(main())
    finally:
        a.close()
        b.close()


def test_continuous_session_raises_when_the_peer_closes(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")

    async def main() -> None:
        async with connected(b) as pair:
            session = default_session(
                pair.active,
                a,
                ReplicatorType.PULL,
                continuous=True,
            )
            task = asyncio.create_task(session.run())
            await _until(lambda: pair.passive_session.is_busy is False and session.reporter)
            await asyncio.sleep(0.05)
            # the active puller refuses a rev without a sequence (notes §4.8)
            from couchlite.blip import BlipErrorReply

            with pytest.raises(BlipErrorReply) as info:
                await pair.passive.request(
                    {"Profile": "rev", "id": "x", "rev": "1-" + "ab" * 20}, b"{}"
                )
            assert (info.value.error_domain, info.value.code) == ("HTTP", 400)
            await pair.passive.close(1001, "going away")
            with pytest.raises(CouchliteError):
                async with asyncio.timeout(5):
                    await task

    try:
        run(main())
    finally:
        a.close()
        b.close()


def test_stopping_a_continuous_session_saves_its_checkpoint(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")

    async def main() -> None:
        for i in range(10):
            put(a.default_collection(), f"d{i}", {"i": i})
        store = replication_store(a)
        async with connected(b) as pair:
            session = default_session(
                pair.active,
                a,
                ReplicatorType.PUSH,
                continuous=True,
            )
            async with running(session):
                await _until(lambda: b.default_collection().count == 10)
                await _until(lambda: session.reporter is not None and not session.reporter.busy)
        cp_id = checkpoint_id(
            store.private_uuid,
            REMOTE_URL,
            "_default",
            "_default",
            pull=False,
            push=True,
            document_ids=None,
        )
        saved = store.get_local_checkpoint(cp_id)
        assert saved is not None and orjson.loads(saved)["local"] == 10
        assert replication_store(b).get_peer_checkpoint(cp_id) is not None

    try:
        run(main())
    finally:
        a.close()
        b.close()
