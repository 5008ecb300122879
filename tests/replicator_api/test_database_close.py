"""``Database.close()`` under a running replicator: the replicator stops first (Couchbase Lite's
rule), or -- closed under it anyway -- ends STOPPED with the ``DatabaseClosedError``, never BUSY
without an error. A real listener on 127.0.0.1 serves the peer database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from couchlite import (
    AsyncReplicator,
    AsyncUrlEndpointListener,
    Database,
    DatabaseClosedError,
    MutableDocument,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    UrlEndpointListener,
)
from tests.listener.helpers import plain_config, wait_until
from tests.peers import closing_pair, replicator_config

from .helpers import run

Level = ReplicatorActivityLevel
DOCS = 50


@pytest.fixture
def peers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[tuple[Database, Database]]:
    """The active database (each test closes it) and the peer one, both filled; the checks of
    :func:`tests.peers.closing_pair` run after the test."""
    with closing_pair(tmp_path, caplog, "a", "b", DOCS) as pair:
        yield pair


def _config(db: Database, port: int | None) -> ReplicatorConfiguration:
    return replicator_config(db, port, "b", continuous=True)


async def _synced(a: Database, b: Database, port: int | None) -> AsyncReplicator:
    """A continuous replicator of ``a`` with the listener on ``port``, started, and idle once
    both databases hold every document."""
    repl = AsyncReplicator(_config(a, port))
    await repl.start()
    await wait_until(lambda: a.default_collection().count == 2 * DOCS, 20)
    await wait_until(lambda: b.default_collection().count == 2 * DOCS, 20)
    await repl.wait_for(Level.IDLE)
    return repl


def test_close_on_the_loop_stops_an_async_replicator(peers: tuple[Database, Database]) -> None:
    a, b = peers

    async def main() -> None:
        async with AsyncUrlEndpointListener(plain_config(b)) as listener:
            repl = await _synced(a, b, listener.port)
            a.close()  # on the replicator's own loop: starts the stop, returns at once
            status = await repl.wait_for(Level.STOPPED, timeout=20)
            assert status.error is None or isinstance(status.error, DatabaseClosedError)
            # a change on the peer now reaches nobody: no error anywhere
            b.default_collection().save(MutableDocument("late", {}))
            await asyncio.sleep(0.2)
            assert repl.status.activity is Level.STOPPED

    run(main(), timeout=60)


def test_close_from_a_thread_stops_a_sync_replicator(peers: tuple[Database, Database]) -> None:
    a, b = peers
    with UrlEndpointListener(plain_config(b)) as listener:
        repl = Replicator(_config(a, listener.port))
        repl.start()
        repl.wait_for(Level.IDLE, timeout=20)
        a.close()  # another thread than the loop's: returns once the replicator stopped
        assert repl.status.activity is Level.STOPPED
        assert repl.status.error is None
        b.default_collection().save(MutableDocument("late", {}))


def test_a_database_closed_under_a_replicator_stops_it_with_the_error(
    peers: tuple[Database, Database],
) -> None:
    a, b = peers

    async def main() -> None:
        async with AsyncUrlEndpointListener(plain_config(b)) as listener:
            repl = await _synced(a, b, listener.port)
            # the forced case: the database forgets the replicator, closes under it
            a._remove_dependent(repl)
            a.close()
            b.default_collection().save(MutableDocument("late", {}))  # pulled: cannot be saved
            status = await repl.wait_for(Level.STOPPED, timeout=20)
            assert isinstance(status.error, DatabaseClosedError)

    run(main(), timeout=60)
