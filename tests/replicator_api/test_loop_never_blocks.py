"""No store call on the event loop: a user thread holding ``in_batch`` for 5 s stalls only what
must wait for that database, never the loop that every connection of the process shares.

Real listeners on 127.0.0.1 and real replicators, in one process and on one event loop, with a
0.5 s heartbeat: while the batch is held, the continuous replicator of the held database keeps
its connection (its pings get their pongs: it neither fails nor reconnects), the loop keeps
turning, and a listener serving another database completes a whole replication. Once the batch
commits, the held database receives what was pulled meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from couchlite import AsyncReplicator, MutableDocument
from couchlite.replicator.types import ReplicatorActivityLevel as Level
from couchlite.replicator.types import ReplicatorType

from ..resilience.helpers import open_db, replicator_config, start_listener

HOLD_S = 5.0
HEARTBEAT_S = 0.5
#: bound on every wait of the test (a hang is a failure, never a timing test)
BOUND_S = 30.0


async def _until(predicate: object, what: str) -> None:
    assert callable(predicate)
    async with asyncio.timeout(BOUND_S):
        while not predicate():
            await asyncio.sleep(0.02)


def test_a_held_batch_stalls_neither_heartbeats_nor_other_databases(tmp_path: Path) -> None:
    held = open_db(tmp_path / "held", "held")
    remote = open_db(tmp_path / "remote", "remote")
    other = open_db(tmp_path / "other", "other")
    other_remote = open_db(tmp_path / "other_remote", "other_remote")

    started, release = threading.Event(), threading.Event()

    async def main() -> None:
        listener = await start_listener(remote, heartbeat=HEARTBEAT_S)
        other_listener = await start_listener(other_remote, heartbeat=HEARTBEAT_S)
        assert listener.port is not None and other_listener.port is not None
        config = replicator_config(held, listener.port, dbname="remote", heartbeat=HEARTBEAT_S)
        continuous = AsyncReplicator(config)
        levels: list[Level] = []
        continuous.add_change_listener(lambda change: levels.append(change.status.activity))
        try:
            await continuous.start()
            await continuous.wait_for(Level.IDLE)
            levels.clear()

            def hold_batch() -> None:
                with held.in_batch():
                    held.default_collection().save(MutableDocument("mine", {"held": True}))
                    started.set()
                    release.wait(BOUND_S)

            holder = threading.Thread(target=hold_batch, name="user-batch")
            holder.start()
            assert await asyncio.to_thread(started.wait, BOUND_S)
            begin = time.monotonic()
            # the continuous replicator now pulls into the held database: its insert waits
            remote.default_collection().save(MutableDocument("theirs", {"from": "remote"}))

            # the loop keeps turning: the longest gap between ticks stays far below a beat
            gaps: list[float] = []

            async def tick() -> None:
                last = time.monotonic()
                while time.monotonic() - begin < HOLD_S:
                    await asyncio.sleep(0.05)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            ticker = asyncio.create_task(tick())
            # another database's replication is served from start to end meanwhile
            for i in range(50):
                other.default_collection().save(MutableDocument(f"o{i}", {"i": i}))
            push = replicator_config(
                other,
                other_listener.port,
                dbname="other_remote",
                kind=ReplicatorType.PUSH,
                continuous=False,
                heartbeat=HEARTBEAT_S,
            )
            async with asyncio.timeout(BOUND_S):
                one_shot = AsyncReplicator(push)
                await one_shot.start()
                final = await one_shot.wait_for(Level.STOPPED)
            assert final.error is None
            assert other_remote.default_collection().count == 50
            served_within = time.monotonic() - begin
            await ticker
            assert served_within < HOLD_S, served_within
            assert holder.is_alive() and not release.is_set()  # all of it while held
            assert gaps and max(gaps) < HEARTBEAT_S, max(gaps)
            # several heartbeats went by: none failed, the connection never dropped
            assert continuous.status.error is None
            assert Level.OFFLINE not in levels and Level.CONNECTING not in levels, levels
            assert listener.status.connection_count == 1

            release.set()
            await asyncio.to_thread(holder.join, BOUND_S)
            await _until(
                lambda: held.default_collection().get("theirs") is not None, "the pulled doc"
            )
            await _until(lambda: remote.default_collection().get("mine") is not None, "push")
            assert continuous.status.error is None
        finally:
            await continuous.stop()
            await listener.stop()
            await other_listener.stop()

    try:
        asyncio.run(main())
    finally:
        release.set()
        for db in (held, remote, other, other_remote):
            db.close()
