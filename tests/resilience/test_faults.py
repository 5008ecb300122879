"""Real peers on 127.0.0.1 with the fault proxy between them: cuts, resets, black holes,
latency and throttling at chosen moments; the replicator must resume and converge, the listener
must clean up after vanished clients (issue 6, items 3-5).

Outcomes only, never durations: every wait is a bounded poll for a state.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from couchlite import (
    Database,
    MutableDocument,
    ReplicatorActivityLevel,
    ReplicatorChange,
    ReplicatorType,
)
from couchlite.database.replication_access import replication_store
from couchlite.replicator.protocol.checkpoints import CheckpointState, checkpoint_id
from couchlite.replicator.replicator import AsyncReplicator
from couchlite.transport.channel import ChannelClosed

from .faultproxy import Fault, FaultProxy, Kind
from .helpers import (
    FastClock,
    count,
    dump,
    fill,
    open_fds,
    peers,
    replicator,
    replicator_config,
    run,
    wait_until,
)

Level = ReplicatorActivityLevel


def _last_sequence(db: Database) -> int:
    store = replication_store(db).for_collection(db.default_collection())
    changes = store.changes_since(0, 1_000_000)
    return changes[-1].sequence if changes else 0


def _saved_push_checkpoint(repl: AsyncReplicator) -> int:
    """The ``local`` sequence of the push checkpoint saved for ``repl`` (0 if none)."""
    config = repl._config
    store = replication_store(config.database)
    cp_id = checkpoint_id(
        store.private_uuid,
        config.endpoint.url,
        "_default",
        "_default",
        pull=config.replicator_type.pulls,
        push=True,
        document_ids=None,
    )
    state = CheckpointState.parse(store.get_local_checkpoint(cp_id))
    return state.local if state is not None else 0


def _assert_identical(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    assert a == b
    # nothing applied twice and no stray revision: every document is at its first generation
    assert all(entry["rev"].startswith("1-") for entry in a.values())


@pytest.mark.parametrize(
    "faults",
    [
        [Fault(Kind.CUT, after_bytes=60_000), Fault(Kind.CUT, after_bytes=150_000)],
        [Fault(Kind.RESET, after_bytes=60_000, direction="up")],
        [Fault(Kind.RESET, after_bytes=40_000, direction="down")],
        [Fault(Kind.RESET, after_seconds=0.2), Fault(Kind.CUT, after_seconds=0.3)],
        [Fault(Kind.DELAY, delay=0.002), Fault(Kind.THROTTLE, rate=2_000_000)],
    ],
    ids=["cut-twice", "reset-up", "reset-down", "reset-then-cut-by-time", "delay-throttle"],
)
def test_faults_during_push_and_pull_resume_and_converge(
    tmp_path: Path, faults: list[Fault | None]
) -> None:
    async def main() -> None:
        async with peers(tmp_path) as (server, client, start):
            fill(client, "c", 1500, size=100)
            fill(server, "s", 1000, size=100)
            listener = await start()
            assert listener.port is not None
            async with FaultProxy(listener.port) as proxy:
                proxy.plan = list(faults)
                clock = FastClock()
                repl = replicator(replicator_config(client, proxy.port), clock)
                await repl.start()
                await wait_until(
                    lambda: count(server) == 2500 and count(client) == 2500,
                    what="both sides have every document",
                )
                await wait_until(lambda: repl.status.activity is Level.IDLE, what="idle")
                _assert_identical(dump(server), dump(client))
                cuts = [f for f in faults if f is not None and f.kind in (Kind.CUT, Kind.RESET)]
                # each cut/reset ended one connection; the replicator reconnected each time
                assert len(proxy.connections) >= len(cuts) + 1
                assert all(c.faulted.is_set() for c in proxy.connections[: len(cuts)])
                await repl.stop()
            await wait_until(lambda: listener.status.connection_count == 0, what="count 0")

    run(main())


def test_blackhole_detected_by_the_replicator_heartbeat(tmp_path: Path) -> None:
    async def main() -> None:
        async with peers(tmp_path) as (server, client, start):
            listener = await start()  # its own heartbeat: the default 300 s
            assert listener.port is not None
            async with FaultProxy(listener.port) as proxy:
                clock = FastClock()
                repl = replicator(replicator_config(client, proxy.port, heartbeat=0.5), clock)
                changes: list[ReplicatorChange] = []
                repl.add_change_listener(changes.append)
                await repl.start()
                await wait_until(lambda: repl.status.activity is Level.IDLE)
                proxy.connections[0].blackhole()
                # the pings get no pong: the replicator gives up on the connection (a transient
                # error), goes offline, reconnects through a healthy connection
                await wait_until(lambda: len(proxy.connections) >= 2, what="reconnected")
                await asyncio.sleep(0)
                offline = [c.status for c in changes if c.status.activity is Level.OFFLINE]
                assert offline, "went offline"
                error = offline[0].error
                assert isinstance(error, ChannelClosed) and error.code == 1006
                assert error.is_transient
                client.default_collection().save(MutableDocument("after", {"ok": True}))
                await wait_until(lambda: server.default_collection().get("after") is not None)
                await repl.stop()
                proxy.reset_all()  # the listener never noticed the black hole (300 s)
            await wait_until(lambda: listener.status.connection_count == 0)

    run(main())


def test_blackhole_detected_by_the_listener_heartbeat(tmp_path: Path) -> None:
    async def main() -> None:
        async with peers(tmp_path) as (_server, client, start):
            listener = await start(heartbeat=0.5)
            assert listener.port is not None
            async with FaultProxy(listener.port) as proxy:
                repl = replicator(replicator_config(client, proxy.port))  # heartbeat 300 s
                await repl.start()
                await wait_until(lambda: repl.status.activity is Level.IDLE)
                assert listener.status.connection_count == 1
                proxy.connections[0].blackhole()
                await wait_until(
                    lambda: listener.status.connection_count == 0,
                    what="the listener dropped the silent peer",
                )
                assert listener.status.active_connection_count == 0
                proxy.reset_all()  # let the replicator find out too, then stop it
                await repl.stop()

    run(main())


def test_half_received_revision_is_not_stored(tmp_path: Path) -> None:
    release = asyncio.Event()

    class GateClock(FastClock):
        async def sleep(self, seconds: float) -> None:
            self.delays.append(seconds)
            await release.wait()

    async def main() -> None:
        async with peers(tmp_path) as (server, client, start):
            # one document of ~1 MB of random hex: hundreds of KB on the wire after compression,
            # so the cut below falls inside its rev message
            fill(client, "big", 1, size=1_000_000)
            listener = await start()
            assert listener.port is not None
            async with FaultProxy(listener.port) as proxy:
                proxy.plan = [Fault(Kind.RESET, after_bytes=120_000, direction="up")]
                clock = GateClock()
                repl = replicator(
                    replicator_config(client, proxy.port, kind=ReplicatorType.PUSH), clock
                )
                await repl.start()
                await wait_until(lambda: repl.status.activity is Level.OFFLINE, what="offline")
                await wait_until(lambda: listener.status.connection_count == 0, what="cleaned")
                assert proxy.connections[0].bytes_up >= 120_000
                assert count(server) == 0  # the partial revision was dropped
                release.set()
                await wait_until(lambda: count(server) == 1, what="pushed after reconnection")
                _assert_identical(dump(server), dump(client))
                await repl.stop()

    run(main())


def test_vanished_clients_leave_no_tasks_or_file_handles(tmp_path: Path) -> None:
    async def main() -> None:
        async with peers(tmp_path) as (server, client, start):
            listener = await start(heartbeat=0.5)
            assert listener.port is not None
            # warm up (database files, thread pools), then take the baseline
            repl = replicator(replicator_config(client, listener.port, continuous=False))
            await repl.start()
            assert (await repl.wait_for(Level.STOPPED)).error is None
            await wait_until(lambda: listener.status.connection_count == 0)
            await asyncio.sleep(0.1)
            base_tasks = len(asyncio.all_tasks())
            base_fds = open_fds()

            for i, vanish in enumerate(["reset", "cut", "blackhole", "reset", "blackhole"]):
                fill(client, f"round{i}", 20)
                async with FaultProxy(listener.port) as proxy:
                    proxy.plan = [None]
                    repl = replicator(replicator_config(client, proxy.port, max_attempts=1))
                    await repl.start()
                    await repl.wait_for(Level.IDLE)
                    await wait_until(lambda: listener.status.connection_count == 1)
                    getattr(proxy.connections[0], vanish)()
                    await wait_until(
                        lambda: listener.status.connection_count == 0,
                        what=f"listener cleaned up after a {vanish}",
                    )
                    await proxy.close()  # the replicator side finds out too (a reset)
                    await repl.stop()
            await wait_until(lambda: len(asyncio.all_tasks()) <= base_tasks, what="no task leak")
            await wait_until(lambda: open_fds() <= base_fds, what="no file handle leak")
            assert listener.status.connection_count == 0
            assert count(server) == 100

    run(main())


def test_listener_restart_on_the_same_port_and_continuous_replicator_resumes(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with peers(tmp_path) as (server, client, start):
            fill(client, "c", 300)
            listener = await start()
            port = listener.port
            assert port is not None
            clock = FastClock()
            repl = replicator(replicator_config(client, port), clock)
            changes: list[ReplicatorChange] = []
            repl.add_change_listener(changes.append)
            await repl.start()
            await wait_until(lambda: count(server) == 300 and repl.status.activity is Level.IDLE)
            await listener.stop()  # closes with 1001: transient, the replicator keeps trying
            await wait_until(lambda: len(clock.delays) >= 3, what="retrying while down")
            assert repl.status.activity in (Level.OFFLINE, Level.CONNECTING)
            await asyncio.sleep(0)
            offline = [c.status for c in changes if c.status.activity is Level.OFFLINE]
            first = offline[0].error
            assert isinstance(first, ChannelClosed) and first.code == 1001
            assert all(s.error is not None and s.error.is_transient for s in offline)
            fill(client, "while-down", 50)
            server.default_collection().save(MutableDocument("server-side", {"v": 1}))
            listener = await start(port=port)
            await wait_until(lambda: count(server) == 351 and count(client) == 351)
            await wait_until(lambda: repl.status.activity is Level.IDLE)
            _assert_identical(dump(server), dump(client))
            await repl.stop()
            await wait_until(lambda: listener.status.connection_count == 0)

    run(main())


def test_reconnection_resumes_from_the_saved_checkpoint(tmp_path: Path) -> None:
    async def main() -> None:
        async with peers(tmp_path) as (server, client, start):
            fill(client, "old", 3000, size=200)
            listener = await start()
            assert listener.port is not None
            async with FaultProxy(listener.port) as proxy:
                config = replicator_config(client, proxy.port, kind=ReplicatorType.PUSH)
                repl = replicator(config)
                await repl.start()
                await wait_until(lambda: count(server) == 3000, what="first push")
                col = client.default_collection()
                # caught up (nothing pending), and that is saved: the checkpoint is past it all
                await wait_until(lambda: not repl.pending_document_ids(col), what="caught up")
                last = _last_sequence(client)
                await wait_until(lambda: _saved_push_checkpoint(repl) >= last, what="checkpoint")
                proxy.connections[0].cut()
                await wait_until(lambda: len(proxy.connections) >= 2, what="reconnected")
                fill(client, "new", 10, size=200)
                await wait_until(lambda: count(server) == 3010, what="second push")
                await wait_until(lambda: repl.status.activity is Level.IDLE)
                first, second = proxy.connections[0].bytes_up, proxy.connections[1].bytes_up
                # the second connection resumed where the first stopped (its checkpoint, and
                # what the engine remembers the peer has): the 10 new documents went, none of
                # the 3000 old ones was sent again (their revisions alone are > 600 KB)
                assert first > 300_000
                assert second < 30_000, (first, second)
                _assert_identical(dump(server), dump(client))
                await repl.stop()

    run(main())
