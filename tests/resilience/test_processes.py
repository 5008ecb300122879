"""Faults with real processes: SIGKILL of the listener or of the replicator in the middle of a
20,000-document push, then a restart on the same port / database; 50 replicators against one
listener at once. Outcomes only: both sides identical, counts back to zero.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from couchlite import (
    Database,
    DocumentReplication,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorType,
    UrlEndpointListener,
)

from ..integration.peer_harness import PeerProcess
from .helpers import (
    FastClock,
    count,
    dump,
    fill,
    listener_config,
    open_db,
    replicator,
    replicator_config,
    run,
    wait_until,
    wait_until_sync,
)
from .procs import replicator_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

Level = ReplicatorActivityLevel
DOCS = 20_000


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Database]:
    db = open_db(tmp_path / "client", "client")
    yield db
    db.close()


def _assert_identical(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert len(a) == len(b)
    assert a == b
    assert all(entry["rev"].startswith("1-") for entry in a.values())  # nothing applied twice


def test_listener_killed_mid_push_then_restarted(tmp_path: Path, client: Database) -> None:
    fill(client, "doc", DOCS)
    peer = PeerProcess(tmp_path / "server")
    port = peer.port
    config = replicator_config(client, port, kind=ReplicatorType.PUSH, max_attempt_wait_time=1.0)
    repl = Replicator(config)
    pushed: list[int] = []
    lock = threading.Lock()

    def on_documents(event: DocumentReplication) -> None:
        with lock:
            pushed.append(len(event.documents))

    repl.add_document_replication_listener(on_documents)
    restarted: PeerProcess | None = None
    try:
        repl.start()
        wait_until_sync(lambda: sum(pushed) >= 2_000, what="the push is under way")
        peer.kill()  # SIGKILL, mid-push
        with lock:
            assert sum(pushed) < DOCS, "killed in the middle"
        wait_until_sync(
            lambda: repl.status.activity in (Level.OFFLINE, Level.CONNECTING), what="offline"
        )
        assert repl.status.activity is not Level.STOPPED
        restarted = PeerProcess(tmp_path / "server", port=port)  # same files, same port
        wait_until_sync(
            lambda: restarted is not None and restarted.command("count")["count"] == DOCS,
            timeout=120,
            what="every document on the restarted listener",
        )
        repl.wait_for(Level.IDLE, timeout=60)
        _assert_identical(restarted.dump(), dump(client))
    finally:
        repl.stop()
        if restarted is not None:
            restarted.stop()
        peer.kill()
    assert repl.status.activity is Level.STOPPED


def test_replicator_killed_mid_push_then_restarted(tmp_path: Path) -> None:
    server = open_db(tmp_path / "server", "server")
    listener = UrlEndpointListener(listener_config(server))
    listener.start()
    try:
        url = f"ws://127.0.0.1:{listener.port}/server"
        first = replicator_process(tmp_path / "client", url, docs=DOCS)
        try:
            assert first.hello["count"] == DOCS
            wait_until_sync(lambda: count(server) >= 2_000, what="the push is under way")
            first.kill()  # SIGKILL: no close frame, no checkpoint saved on the way out
        finally:
            first.kill()
        assert count(server) < DOCS, "killed in the middle"
        # the listener finds out (the kernel closed the socket) and cleans up
        wait_until_sync(lambda: listener.status.connection_count == 0, what="cleaned up")
        with replicator_process(tmp_path / "client", url, docs=DOCS) as second:
            assert second.hello["count"] == DOCS  # nothing created twice
            wait_until_sync(lambda: count(server) == DOCS, timeout=120, what="all pushed")
            wait_until_sync(lambda: second.command("status")["activity"] == "IDLE")
            assert listener.status.connection_count == 1
        wait_until_sync(lambda: listener.status.connection_count == 0, what="count back to 0")
        local = open_db(tmp_path / "client", "client")
        try:
            _assert_identical(dump(server), dump(local))
        finally:
            local.close()
    finally:
        listener.stop()
        server.close()


def test_fifty_replicators_against_one_listener(tmp_path: Path) -> None:
    clients, per_client = 50, 4
    total = clients * per_client

    async def main() -> None:
        with PeerProcess(tmp_path / "server") as peer:
            dbs = [open_db(tmp_path / "clients", f"c{i}") for i in range(clients)]
            repls = []
            try:
                for i, db in enumerate(dbs):
                    fill(db, f"c{i:02d}", per_client)
                    repls.append(replicator(replicator_config(db, peer.port), FastClock(0.2)))
                await asyncio.gather(*(r.start() for r in repls))

                def peer_count() -> int:
                    return int(peer.command("count")["count"])

                await wait_until(
                    lambda: all(count(db) == total for db in dbs) and peer_count() == total,
                    timeout=120,
                    what="every replicator converged",
                )
                await wait_until(lambda: all(r.status.activity is Level.IDLE for r in repls))
                assert peer.command("status")["connections"] == clients
                reference = peer.dump()
                assert len(reference) == total
                for db in dbs:
                    assert dump(db) == reference
                await asyncio.gather(*(r.stop() for r in repls))
                assert all(r.status.activity is Level.STOPPED for r in repls)
                assert all(r.status.error is None for r in repls)
                await wait_until(
                    lambda: peer.command("status") == {"connections": 0, "active": 0},
                    what="the listener's counts back to zero",
                )
            finally:
                for r in repls:
                    await r.stop()
                for db in dbs:
                    db.close()

    run(main(), timeout=200)
