"""``pending_document_ids`` is right at every moment, not only after a checkpoint save: a
continuous push-pull with a real listener on 127.0.0.1 (``UrlEndpointListener`` serving the
peer database in this process)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from couchlite import (
    AsyncReplicator,
    AsyncUrlEndpointListener,
    CouchliteError,
    Database,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    UrlEndpointListener,
)
from tests.listener.helpers import plain_config, wait_until
from tests.peers import fill, open_database, poll_until, replicator_config

from .helpers import run

Level = ReplicatorActivityLevel
DOCS = 200
#: Bound on each wait for the 200-document replication to settle.
WAIT_S = 20.0


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    with open_database(tmp_path / "a", "a") as a, open_database(tmp_path / "b", "b") as b:
        yield a, b


def _config(db: Database, port: int | None) -> ReplicatorConfiguration:
    return replicator_config(db, port, "b", continuous=True)


def test_pulled_documents_are_not_pending(pair: tuple[Database, Database]) -> None:
    a, b = pair
    fill(b, "b", DOCS)
    col = a.default_collection()

    async def main() -> None:
        async with AsyncUrlEndpointListener(plain_config(b)) as listener:
            async with AsyncReplicator(_config(a, listener.port)) as repl:
                await wait_until(lambda: col.count == DOCS, WAIT_S)
                await repl.wait_for(Level.IDLE)
                await wait_until(lambda: repl.status.activity is Level.IDLE, WAIT_S)
                # long before the next checkpoint save: the pulled revisions are the peer's
                assert repl.pending_document_ids(col) == set()
                assert not repl.is_document_pending("b7", col)

                doc = col["b7"].to_mutable()
                doc["edited"] = True
                col.save(doc)
                assert repl.pending_document_ids(col) == {"b7"}  # nothing else
                assert repl.is_document_pending("b7", col)

                peer = b.default_collection()
                await wait_until(lambda: (peer.get("b7") or {}).get("edited") is True, WAIT_S)
                await wait_until(lambda: not repl.pending_document_ids(col), WAIT_S)
            # stopped: from what was saved, the same answer
            assert repl.pending_document_ids(col) == set()

    run(main(), timeout=60)


def test_sync_facade_reads_the_live_state_on_the_loop(pair: tuple[Database, Database]) -> None:
    a, b = pair
    fill(b, "b", DOCS)
    col = a.default_collection()
    listener = UrlEndpointListener(plain_config(b))
    with listener, Replicator(_config(a, listener.port)) as repl:
        poll_until(lambda: col.count == DOCS, WAIT_S)
        repl.wait_for(Level.IDLE)
        poll_until(lambda: repl.status.activity is Level.IDLE, WAIT_S)
        # (read from this thread, the running session's state would race its loop: the
        # façade computes on the loop, where the AsyncReplicator allows it)
        assert repl.pending_document_ids(col) == set()
        doc = col["b1"].to_mutable()
        doc["edited"] = True
        col.save(doc)
        assert repl.pending_document_ids(col) == {"b1"}
        poll_until(lambda: not repl.is_document_pending("b1", col), WAIT_S)


def test_async_replicator_refuses_a_foreign_thread_while_running(
    pair: tuple[Database, Database],
) -> None:
    a, b = pair
    col = a.default_collection()

    async def main() -> None:
        listener = AsyncUrlEndpointListener(plain_config(b))
        async with listener, AsyncReplicator(_config(a, listener.port)) as repl:
            await repl.wait_for(Level.IDLE)
            with pytest.raises(CouchliteError, match="must be called on its event loop"):
                await asyncio.to_thread(repl.pending_document_ids, col)

    run(main(), timeout=60)
