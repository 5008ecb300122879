"""End to end through the public API: real databases, a real WebSocket on 127.0.0.1, the
passive side served by ``PassiveSession`` (in this process, or in a child process)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from couchlite import (
    AsyncReplicator,
    Blob,
    CollectionConfiguration,
    ConfigurationError,
    Conflict,
    Database,
    DatabaseConfiguration,
    Document,
    DocumentFlags,
    DocumentReplication,
    MutableDocument,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorChange,
    ReplicatorConfiguration,
    ReplicatorType,
    UrlEndpoint,
)
from couchlite._runtime import loop_thread

from .helpers import run
from .passive import dump, passive_server

Level = ReplicatorActivityLevel
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    a = Database("a", DatabaseConfiguration(directory=tmp_path / "a"))
    b = Database("b", DatabaseConfiguration(directory=tmp_path / "b"))
    yield a, b
    a.close()
    b.close()


def _put(db: Database, doc_id: str, **props: Any) -> None:
    db.default_collection().save(MutableDocument(doc_id, props))


def _config(
    db: Database, port: int, col_config: CollectionConfiguration | None = None, **options: Any
) -> ReplicatorConfiguration:
    config = ReplicatorConfiguration(UrlEndpoint(f"ws://127.0.0.1:{port}/b"), **options)
    config.add_collection(db.default_collection(), col_config)
    return config


async def _wait_until(predicate: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("kind", list(ReplicatorType))
def test_one_shot(pair: tuple[Database, Database], kind: ReplicatorType) -> None:
    a, b = pair
    for i in range(20):
        _put(a, f"a{i}", i=i)
        _put(b, f"b{i}", i=i)
    a.default_collection().delete(a.default_collection()["a0"])

    async def main() -> None:
        async with passive_server(b) as server:
            repl = AsyncReplicator(_config(a, server.port, replicator_type=kind))
            events: list[DocumentReplication] = []
            repl.add_document_replication_listener(events.append)
            if kind.pushes:
                assert repl.pending_document_ids(a.default_collection()) == {
                    f"a{i}" for i in range(20)
                }  # the deletion of a0 too
            await repl.start()
            status = await repl.wait_for(Level.STOPPED)
            assert status.error is None
            await asyncio.sleep(0)  # let the dispatched listener calls run
            if kind.pushes:
                assert repl.pending_document_ids(a.default_collection()) == set()
                assert not repl.is_document_pending("a5", a.default_collection())
            pushed = {d.id for e in events if e.is_push for d in e.documents}
            pulled = {d.id for e in events if not e.is_push for d in e.documents}
            assert pushed == ({f"a{i}" for i in range(20)} if kind.pushes else set())
            assert pulled == ({f"b{i}" for i in range(20)} if kind.pulls else set())
            for event in events:
                assert event.replicator is repl
                for doc in event.documents:
                    assert (doc.scope, doc.collection) == ("_default", "_default")
                    assert doc.error is None
            assert status.progress.completed == status.progress.total

    run(main())
    a_ids, b_ids = (
        set(a.default_collection().document_ids()),
        set(b.default_collection().document_ids()),
    )
    if kind.pushes:
        assert {f"a{i}" for i in range(1, 20)} <= b_ids
    if kind.pulls:
        assert {f"b{i}" for i in range(20)} <= a_ids


def test_pending_documents_of_pull_only_replicator(pair: tuple[Database, Database]) -> None:
    a, _ = pair
    repl = AsyncReplicator(_config(a, 1, replicator_type=ReplicatorType.PULL))
    with pytest.raises(ConfigurationError):
        repl.pending_document_ids(a.default_collection())


def test_continuous_reaches_idle_and_carries_later_changes(
    pair: tuple[Database, Database],
) -> None:
    a, b = pair
    _put(a, "first", n=1)

    async def main() -> None:
        async with passive_server(b) as server:
            async with AsyncReplicator(_config(a, server.port, continuous=True)) as repl:
                await repl.start()
                await repl.wait_for(Level.IDLE)
                await _wait_until(lambda: b.default_collection().get("first") is not None)
                _put(a, "later", n=2)
                _put(b, "from-b", n=3)
                await _wait_until(lambda: b.default_collection().get("later") is not None)
                await _wait_until(lambda: a.default_collection().get("from-b") is not None)
                await _wait_until(lambda: repl.status.activity is Level.IDLE)
            assert repl.status.activity is Level.STOPPED and repl.status.error is None
            # (pending documents are not checked here: the engine saves a continuous session's
            # checkpoint periodically, not when it is stopped)

    run(main())
    assert b.default_collection()["later"]["n"] == 2


def test_filters_and_document_ids(pair: tuple[Database, Database]) -> None:
    a, b = pair
    for i in range(6):
        _put(a, f"a{i}", i=i)
        _put(b, f"b{i}", i=i)
    seen: list[tuple[str, DocumentFlags]] = []

    def push_even(doc: Document, flags: DocumentFlags) -> bool:
        seen.append((doc.id, flags))
        assert doc.revision_id is not None and doc.collection is not None
        return doc["i"] % 2 == 0

    def pull_not_b1(doc: Document, flags: DocumentFlags) -> bool:
        return doc.id != "b1"

    col_config = CollectionConfiguration(
        document_ids=["a0", "a1", "a2", "b0", "b1", "b2"],
        push_filter=push_even,
        pull_filter=pull_not_b1,
    )

    async def main() -> None:
        async with passive_server(b) as server:
            repl = AsyncReplicator(_config(a, server.port, col_config))
            # the push filter and the ID list apply to pending documents too
            assert repl.pending_document_ids(a.default_collection()) == {"a0", "a2"}
            await repl.start()
            assert (await repl.wait_for(Level.STOPPED)).error is None

    run(main())
    assert {i for i in b.default_collection().document_ids() if i.startswith("a")} == {"a0", "a2"}
    assert {i for i in a.default_collection().document_ids() if i.startswith("b")} == {"b0", "b2"}
    assert ("a1", DocumentFlags.NONE) in seen


def _make_conflict(a: Database, b: Database) -> None:
    a.default_collection().save(MutableDocument("doc", {"side": "a", "a": 1}))
    b.default_collection().save(MutableDocument("doc", {"side": "b", "b": 2}))


@pytest.mark.parametrize("style", ["sync", "async", "delete"])
def test_conflict_resolver(pair: tuple[Database, Database], style: str) -> None:
    a, b = pair
    _make_conflict(a, b)
    conflicts: list[Conflict] = []

    def merge(conflict: Conflict) -> Document | None:
        conflicts.append(conflict)
        if style == "delete":
            return None
        assert conflict.local_document is not None and conflict.remote_document is not None
        merged = conflict.local_document.to_mutable()
        merged.set_data({**conflict.remote_document.to_dict(), **conflict.local_document.to_dict()})
        merged["merged"] = True
        return merged

    async def merge_async(conflict: Conflict) -> Document | None:
        await asyncio.sleep(0)
        return merge(conflict)

    resolver = merge_async if style == "async" else merge

    async def main() -> None:
        async with passive_server(b) as server:
            config = _config(
                a,
                server.port,
                CollectionConfiguration(conflict_resolver=resolver),
                replicator_type=ReplicatorType.PULL,
            )
            repl = AsyncReplicator(config)
            await repl.start()
            assert (await repl.wait_for(Level.STOPPED)).error is None

    run(main())
    assert len(conflicts) == 1
    conflict = conflicts[0]
    assert conflict.document_id == "doc"
    assert conflict.local_document is not None and conflict.local_document["side"] == "a"
    assert conflict.remote_document is not None and conflict.remote_document["side"] == "b"
    resolved = a.default_collection().get("doc")
    if style == "delete":
        assert resolved is None
    else:
        assert resolved is not None
        assert resolved.to_dict() == {"side": "a", "a": 1, "b": 2, "merged": True}


def test_sync_replicator_facade(pair: tuple[Database, Database]) -> None:
    a, b = pair
    for i in range(5):
        _put(a, f"a{i}", i=i)
    changes: list[ReplicatorChange] = []
    threads: set[str] = set()
    done = threading.Event()

    def on_change(change: ReplicatorChange) -> None:
        threads.add(threading.current_thread().name)
        changes.append(change)
        if change.status.activity is Level.STOPPED:
            done.set()

    lt = loop_thread()
    server_cm = passive_server(b)
    server = lt.run(server_cm.__aenter__(), timeout=10)
    try:
        repl = Replicator(_config(a, server.port))
        token = repl.add_change_listener(on_change)
        assert repl.pending_document_ids(a.default_collection()) == {f"a{i}" for i in range(5)}
        repl.start()  # returns at once
        status = repl.wait_for(Level.STOPPED, timeout=20)
        assert status.error is None
        assert done.wait(10)
        token.remove()
        assert threads == {"couchlite-notifier"}
        assert changes[0].replicator is repl and changes[-1].status.activity is Level.STOPPED
        assert repl.pending_document_ids(a.default_collection()) == set()
        repl.stop()  # already stopped: no-op
    finally:
        lt.run(server_cm.__aexit__(None, None, None), timeout=20)
    assert set(b.default_collection().document_ids()) == {f"a{i}" for i in range(5)}


@pytest.mark.slow
def test_passive_side_in_a_child_process(tmp_path: Path, pair: tuple[Database, Database]) -> None:
    a, _ = pair
    for i in range(10):
        _put(a, f"a{i}", i=i)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.replicator_api.passive", str(tmp_path / "child")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        port = json.loads(child.stdout.readline())["port"]
        repl = Replicator(_config(a, port, continuous=True))
        repl.start()
        try:
            repl.wait_for(Level.IDLE, timeout=20)
            child.stdin.write("dump\n")
            child.stdin.flush()
            docs = json.loads(child.stdout.readline())
        finally:
            repl.stop()
        assert repl.status.activity is Level.STOPPED and repl.status.error is None
    finally:
        child.stdin.close()
        child.wait(timeout=20)
        child.stdout.close()
    assert child.returncode == 0
    assert docs == dump(a.default_collection())


def test_resolution_with_a_new_blob(pair: tuple[Database, Database]) -> None:
    a, b = pair
    _make_conflict(a, b)

    def with_blob(conflict: Conflict) -> Document | None:
        merged = MutableDocument(conflict.document_id, {"side": "merged"})
        merged["image"] = Blob("image/png", b"\x89PNG-resolution")
        return merged

    async def main() -> None:
        async with passive_server(b) as server:
            config = _config(a, server.port, CollectionConfiguration(conflict_resolver=with_blob))
            repl = AsyncReplicator(config)
            await repl.start()
            assert (await repl.wait_for(Level.STOPPED)).error is None
            # a second run pushes the resolution, blob included
            await repl.start()
            assert (await repl.wait_for(Level.STOPPED)).error is None

    run(main())
    for db in (a, b):
        doc = db.default_collection()["doc"]
        assert doc["side"] == "merged"
        assert doc["image"].content == b"\x89PNG-resolution"
