"""The batching inserter's two ways in: awaiting ``insert`` and the callback ``insert_later``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from couchlite.database.replication_access import replication_store
from couchlite.replicator.inserter import Inserted, Inserter
from couchlite.replicator.store import IncomingRevision
from couchlite.replicator.store_worker import StoreWorker

from .helpers import open_db, run

pytestmark = pytest.mark.timeout(30)


def _rev(doc_id: str, rev_id: str = "1-" + "a" * 40) -> IncomingRevision:
    return IncomingRevision(doc_id, rev_id, (), b'{"n":1}', False)


def test_callbacks_and_awaiters_share_one_batch_and_a_failing_callback_spoils_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_db(tmp_path, "ins")
    coll = db.default_collection()
    store = replication_store(db).for_collection(coll)

    async def main() -> None:
        inserter = Inserter(store, StoreWorker(db.private_uuid), batch_size=4, delay=0.5)
        seen: list[tuple[str, Inserted]] = []
        done = asyncio.Event()

        def broken(inserted: Inserted) -> None:
            raise RuntimeError("callback bug")

        def record(doc_id: str) -> Callable[[Inserted], None]:
            def callback(inserted: Inserted) -> None:
                seen.append((doc_id, inserted))
                if len(seen) == 2:
                    done.set()

            return callback

        inserter.insert_later(_rev("a"), record("a"))
        inserter.insert_later(_rev("b"), broken)
        waiting = asyncio.create_task(inserter.insert(_rev("c")))
        await asyncio.sleep(0)
        # the fourth revision fills the batch: one transaction for all four, at once
        inserter.insert_later(_rev("d"), record("d"))
        async with asyncio.timeout(10):
            outcome = await waiting
            await done.wait()
        assert outcome.outcome.error is None
        assert [doc_id for doc_id, _ in seen] == ["a", "d"]
        assert all(inserted.outcome.error is None for _, inserted in seen)
        assert inserter.batches == 1

    with caplog.at_level(logging.ERROR, logger="couchlite.replicator"):
        run(main())
    assert any("insert callback failed" in r.getMessage() for r in caplog.records)
    assert {d for d in ("a", "b", "c", "d") if coll.get(d) is not None} == {"a", "b", "c", "d"}
    db.close()
