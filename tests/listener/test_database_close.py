"""Closing a listener's database stops the listener first (Couchbase Lite's rule), whether the
close comes from another thread or from the listener's own event loop. Real sockets on
127.0.0.1 and a real continuous replicator connected to the listener."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from couchlite import (
    AsyncUrlEndpointListener,
    ConnectionStatus,
    Database,
    DatabaseClosedError,
    MutableDocument,
    Replicator,
    ReplicatorActivityLevel,
    UrlEndpointListener,
)
from tests.listener.helpers import plain_config, wait_until
from tests.peers import closing_pair, open_database, port_closed, replicator_config
from tests.transport.helpers import run

pytestmark = pytest.mark.timeout(90)

Level = ReplicatorActivityLevel
DOCS = 20


@pytest.fixture
def peers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[tuple[Database, Database]]:
    """The listener's database (each test closes it) and the replicator's, both filled; the
    checks of :func:`tests.peers.closing_pair` run after the test."""
    with closing_pair(tmp_path, caplog, "served", "active", DOCS) as pair:
        yield pair


def _replicator(db: Database, port: int | None) -> Replicator:
    return Replicator(replicator_config(db, port, "served", continuous=True))


def _stopped(listener: UrlEndpointListener | AsyncUrlEndpointListener) -> None:
    assert not listener.is_listening
    assert listener.port is None and listener.urls == []
    assert listener.status == ConnectionStatus(0, 0)


def test_close_from_a_thread_stops_a_listener_with_a_connected_replicator(
    peers: tuple[Database, Database],
) -> None:
    served, active = peers
    listener = UrlEndpointListener(plain_config(served))
    listener.start()
    port = listener.port
    assert port is not None
    with _replicator(active, port) as repl:
        repl.wait_for(Level.IDLE, timeout=30)
        assert listener.status.connection_count == 1
        served.close()  # returns once the listener has stopped
        _stopped(listener)
        assert port_closed(port)
        listener.stop()  # idempotent after the database stopped it
        with pytest.raises(DatabaseClosedError):
            listener.start()  # nothing starts on a closed database
        assert port_closed(port)
    assert repl.status.activity is Level.STOPPED


@pytest.mark.parametrize("on_the_loop", [True, False], ids=["on-its-loop", "from-another-thread"])
def test_close_stops_an_async_listener(peers: tuple[Database, Database], on_the_loop: bool) -> None:
    served, active = peers

    async def main() -> None:
        async with AsyncUrlEndpointListener(plain_config(served)) as listener:
            port = listener.port
            assert port is not None
            repl = _replicator(active, port)
            repl.start()
            try:
                await asyncio.to_thread(repl.wait_for, Level.IDLE, 30)
                if on_the_loop:
                    served.close()  # on the listener's own loop: cannot wait, starts the stop
                    assert served.is_closed
                    await wait_until(lambda: not listener.is_listening)
                else:
                    await asyncio.to_thread(served.close)  # returns once the listener stopped
                _stopped(listener)
                assert port_closed(port)
            finally:
                await asyncio.to_thread(repl.stop)

    run(main(), timeout=60)


def test_closing_another_database_object_on_the_same_files(tmp_path: Path) -> None:
    with (
        open_database(tmp_path, "served") as served,
        open_database(tmp_path, "served") as other,
        UrlEndpointListener(plain_config(served)) as listener,
    ):
        other.close()  # not the listener's Database object: it keeps running
        assert listener.is_listening
        served.default_collection().save(MutableDocument("still-open", {}))


def test_a_listener_on_two_database_objects_stops_with_either(tmp_path: Path) -> None:
    with open_database(tmp_path, "served") as first, open_database(tmp_path, "served") as second:
        listener_config = plain_config(first)
        listener_config.collections = [
            first.default_collection(),
            second.create_collection("extra"),
        ]
        with UrlEndpointListener(listener_config) as listener:
            second.close()
            _stopped(listener)
            assert not first.is_closed


def test_stop_unregisters_from_the_database(tmp_path: Path) -> None:
    with open_database(tmp_path, "served") as served:
        listener = UrlEndpointListener(plain_config(served))
        with listener:
            assert served._dependents  # registered while running
        assert not served._dependents  # a stopped listener is no longer held


def test_context_managers_start_and_stop(tmp_path: Path) -> None:
    with open_database(tmp_path, "served") as served:
        with UrlEndpointListener(plain_config(served)) as listener:
            assert isinstance(listener, UrlEndpointListener) and listener.is_listening
            port = listener.port
            assert port is not None and not port_closed(port)
        _stopped(listener)

        async def main() -> None:
            async with AsyncUrlEndpointListener(plain_config(served)) as alistener:
                assert isinstance(alistener, AsyncUrlEndpointListener)
                assert alistener.is_listening and alistener.port is not None
            _stopped(alistener)

        run(main(), timeout=30)
