"""couchlite.testing: in-memory peers and a controllable clock, as users' own tests use them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from couchlite import (
    Database,
    DatabaseConfiguration,
    MutableDocument,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    ReplicatorType,
)
from couchlite.testing import FakeClock, LoopbackPeer

pytestmark = pytest.mark.timeout(60)

#: Bound of every wait below (a hang guard, not a measurement).
WAIT_S = 20.0


def _until(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.fixture
def dbs(tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    config = DatabaseConfiguration(directory=str(tmp_path))
    with Database("server", config) as server, Database("client", config) as client:
        yield server, client


def _save(db: Database, doc_id: str, **props: object) -> None:
    doc = MutableDocument(doc_id)
    for key, value in props.items():
        doc[key] = value
    db.default_collection().save(doc)


def _config(
    peer: LoopbackPeer, client: Database, *, continuous: bool = False, **kw: object
) -> ReplicatorConfiguration:
    config = ReplicatorConfiguration(target=peer.endpoint, continuous=continuous, **kw)
    config.add_collection(client.default_collection())
    return config


def test_a_loopback_peer_syncs_both_ways(dbs: tuple[Database, Database]) -> None:
    server, client = dbs
    _save(server, "from-server", n=1)
    _save(client, "from-client", n=2)
    peer = LoopbackPeer(server)
    with peer.replicator(_config(peer, client)) as replicator:
        status = replicator.wait_for(ReplicatorActivityLevel.STOPPED, timeout=WAIT_S)
    assert status.error is None, status.error
    for db in (server, client):
        assert set(db.default_collection()) == {"from-server", "from-client"}
    assert client.default_collection()["from-server"]["n"] == 1
    assert server.default_collection()["from-client"]["n"] == 2
    assert peer.connections_served == 1
    _until(lambda: peer.open_connections == 0)


def test_a_read_only_peer_refuses_pushes(dbs: tuple[Database, Database]) -> None:
    server, client = dbs
    _save(client, "mine", n=1)
    peer = LoopbackPeer(server, read_only=True)
    config = _config(peer, client, replicator_type=ReplicatorType.PUSH)
    with peer.replicator(config) as replicator:
        status = replicator.wait_for(ReplicatorActivityLevel.STOPPED, timeout=WAIT_S)
    assert status.error is not None
    assert "mine" not in server.default_collection()


def test_a_dropped_connection_is_retried_after_the_fake_clock_s_delay(
    dbs: tuple[Database, Database],
) -> None:
    server, client = dbs
    peer = LoopbackPeer(server)
    clock = FakeClock(auto_advance=False)
    replicator = peer.replicator(_config(peer, client, continuous=True), clock=clock)
    with replicator:
        replicator.wait_for(ReplicatorActivityLevel.IDLE, timeout=WAIT_S)
        peer.offline = True
        peer.disconnect()
        # the first retry waits for the clock: nothing happens until the test moves it
        _until(lambda: clock.sleeping == 1)
        assert clock.delays == [1.0]
        status = replicator.status
        assert status.activity is ReplicatorActivityLevel.OFFLINE
        assert status.error is not None and status.error.is_transient
        # still offline: the attempt fails and the next delay doubles
        clock.advance(1.0)
        _until(lambda: clock.delays == [1.0, 2.0] and clock.sleeping == 1)
        assert peer.connections_served == 1
        # back online: the next attempt gets through and the replicator catches up
        peer.offline = False
        _save(server, "while-away", n=3)
        clock.advance(2.0)
        _until(lambda: "while-away" in client.default_collection())
        replicator.wait_for(ReplicatorActivityLevel.IDLE, timeout=WAIT_S)
        assert peer.connections_served == 2


def test_the_async_replicator_works_with_a_loopback_peer(
    dbs: tuple[Database, Database],
) -> None:
    server, client = dbs
    for i in range(50):
        _save(server, f"d{i}", i=i)
    peer = LoopbackPeer(server)

    async def main() -> None:
        config = _config(peer, client, replicator_type=ReplicatorType.PULL)
        async with peer.async_replicator(config, clock=FakeClock()) as replicator:
            status = await replicator.wait_for(ReplicatorActivityLevel.STOPPED, timeout=WAIT_S)
            assert status.error is None, status.error

    asyncio.run(main())
    assert len(client.default_collection()) == 50


def test_fake_clock_records_and_advances() -> None:
    clock = FakeClock(start=100.0)

    async def main() -> None:
        await clock.sleep(1.5)
        await clock.sleep(3.0)

    asyncio.run(main())
    assert clock.delays == [1.5, 3.0]
    assert clock.time() == 104.5
    manual = FakeClock(auto_advance=False)

    async def waits() -> float:
        task = asyncio.ensure_future(manual.sleep(5.0))
        await asyncio.sleep(0)
        assert manual.sleeping == 1
        manual.advance(4.0)
        await asyncio.sleep(0.01)
        assert not task.done()
        manual.advance(1.0)
        await asyncio.wait_for(task, WAIT_S)
        return manual.time()

    assert asyncio.run(waits()) == 5.0
    with pytest.raises(Exception, match="forward"):
        manual.advance(-1)
