"""The replicator's public surface as a Python and a Couchbase Lite developer expect it:
context managers start, ``wait_for`` explains itself, progress has documented units, and the
classes show only their public API. Real WebSocket servers on 127.0.0.1, the engine stubbed out
where only the lifecycle matters."""

from __future__ import annotations

import asyncio
import inspect
import typing
from pathlib import Path

import pytest

from couchlite import (
    Database,
    DocumentReplication,
    InvalidArgumentError,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorChange,
    ReplicatorProgress,
)
from couchlite._runtime import LoopThread, loop_thread
from couchlite.replicator.replicator import AsyncReplicator
from couchlite.transport.websocket import serve_channels
from tests.peers import fill, open_database, poll_until, replicator_config

from .helpers import BlockedClock, StubSession, closed_port, hold, run
from .passive import passive_server

Level = ReplicatorActivityLevel


# --- item 2: the sync wait_for keeps its message ---------------------------------------------


def test_sync_wait_for_timeout_keeps_its_message(db: Database) -> None:
    repl = Replicator(replicator_config(db, closed_port(), continuous=True), clock=BlockedClock())
    repl.start()
    try:
        poll_until(lambda: repl.status.activity is Level.OFFLINE)
        with pytest.raises(TimeoutError) as caught:
            repl.wait_for(Level.IDLE, timeout=0.2)
        assert f"{repl._async.name}: still OFFLINE after 0.2 s, not IDLE" in str(caught.value)
    finally:
        repl.stop()
    assert repl.status.activity is Level.STOPPED


def test_loop_thread_run_passes_inner_timeouts_through() -> None:
    lt = LoopThread(name="test-loop")

    async def inner_timeout() -> None:
        raise TimeoutError("the inner wait's own message")

    with pytest.raises(TimeoutError, match="the inner wait's own message"):
        lt.run(inner_timeout(), timeout=5)

    async def slow() -> None:
        await asyncio.sleep(5)

    with pytest.raises(TimeoutError, match="did not finish in time"):
        lt.run(slow(), timeout=0.05)


# --- item 3: context managers start; wait_for on a never-started replicator -------------------


def test_async_context_manager_starts_the_replicator(db: Database) -> None:
    async def main() -> None:
        async with await serve_channels(hold, "127.0.0.1", 0) as srv:
            config = replicator_config(db, srv.port, continuous=True)
            async with AsyncReplicator(config, _session_factory=StubSession) as repl:
                assert repl.status.activity is not Level.STOPPED
                assert (await repl.wait_for(Level.IDLE, timeout=10)).activity is Level.IDLE
            assert repl.status.activity is Level.STOPPED and repl.status.error is None

    run(main())


def test_sync_context_manager_starts_the_replicator(db: Database) -> None:
    lt = loop_thread()
    srv = lt.run(serve_channels(hold, "127.0.0.1", 0), timeout=10)
    try:
        config = replicator_config(db, srv.port, continuous=True)
        with Replicator(config, _session_factory=StubSession) as repl:
            assert repl.wait_for(Level.IDLE, timeout=10).activity is Level.IDLE
        assert repl.status.activity is Level.STOPPED and repl.status.error is None
    finally:
        lt.run(srv.close(), timeout=10)


def test_wait_for_on_a_never_started_replicator_says_so(db: Database) -> None:
    config = replicator_config(db, closed_port())
    repl = Replicator(config)
    with pytest.raises(InvalidArgumentError, match=r"never started: call start\(\) first"):
        repl.wait_for(Level.IDLE, timeout=1)

    async def main() -> None:
        arepl = AsyncReplicator(config)
        with pytest.raises(InvalidArgumentError, match=r"wait_for\(STOPPED\) on a replicator"):
            await arepl.wait_for(Level.STOPPED, timeout=1)

    run(main())


def test_a_stopped_replicator_still_answers_wait_for(db: Database) -> None:
    async def main() -> None:
        async with await serve_channels(hold, "127.0.0.1", 0) as srv:
            repl = AsyncReplicator(replicator_config(db, srv.port), _session_factory=StubSession)
            await repl.start()
            await repl.wait_for(Level.STOPPED, timeout=10)
            # ran and stopped: its STOPPED status, not an error
            assert (await repl.wait_for(Level.IDLE, timeout=1)).activity is Level.STOPPED

    run(main())


# --- item 9: typed, public-only surface; progress in documented units -------------------------


def test_replicator_takes_only_its_declared_keywords(db: Database) -> None:
    parameters = inspect.signature(Replicator.__init__).parameters.values()
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters)
    with pytest.raises(TypeError):
        Replicator(replicator_config(db, closed_port()), bogus=1)  # type: ignore[call-arg]


PUBLIC_API = {
    "add_change_listener",
    "add_document_replication_listener",
    "changes",
    "config",
    "name",
    "connection_attempts",
    "is_document_pending",
    "pending_document_ids",
    "server_certificate",
    "start",
    "status",
    "stop",
    "wait_for",
}


@pytest.mark.parametrize("cls", [AsyncReplicator, Replicator])
def test_only_the_public_api_is_public(cls: type) -> None:
    public = {name for name in dir(cls) if not name.startswith("_")}
    expected = PUBLIC_API if cls is AsyncReplicator else PUBLIC_API - {"changes"}
    assert public == expected


def test_progress_fraction_follows_couchbase_lite() -> None:
    assert ReplicatorProgress(3, 4).fraction == 0.75
    assert ReplicatorProgress(4, 4, 4).fraction == 1.0
    assert ReplicatorProgress().fraction == 0.0  # completed / max(total, 1), as CBL-C
    assert ReplicatorProgress().document_count == 0


def test_progress_counts_documents_of_the_run(db: Database, tmp_path: Path) -> None:
    with open_database(tmp_path / "other", "other") as other:
        fill(db, "a", 5)
        fill(other, "b", 3)

        async def main() -> ReplicatorProgress:
            async with passive_server(other) as server:
                repl = AsyncReplicator(replicator_config(db, server.port))
                await repl.start()
                status = await repl.wait_for(Level.STOPPED, timeout=20)
                assert status.error is None
                return status.progress

        progress = run(main())
    assert progress.document_count == 8  # 5 pushed + 3 pulled
    assert progress.completed == progress.total == 8  # a unit is one revision
    assert progress.fraction == 1.0


@pytest.mark.parametrize("event", [ReplicatorChange, DocumentReplication])
def test_events_name_the_replicator_type(event: type) -> None:
    names = {"Replicator": Replicator, "AsyncReplicator": AsyncReplicator}
    hints = typing.get_type_hints(event, localns=names)
    assert hints["replicator"] == Replicator | AsyncReplicator
