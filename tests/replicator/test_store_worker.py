"""StoreWorker: calls run in order on a store thread; ``call_now`` starts without waiting for
the end of the loop turn, and never overtakes what is queued or running."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from couchlite.replicator.store_worker import StoreWorker

from .helpers import run

pytestmark = pytest.mark.timeout(30)


def test_call_now_starts_during_a_long_loop_turn() -> None:
    async def main() -> None:
        worker = StoreWorker("call-now-starts")
        started = threading.Event()
        future = worker.call_now(started.set)
        # this turn keeps the loop busy: a plain call() would wait for its end to start
        assert started.wait(10)
        await future

        late = threading.Event()
        queued = worker.call(late.set)
        time.sleep(0.2)  # still the same turn
        assert not late.is_set()
        await queued
        assert late.is_set()

    run(main())


def test_call_now_keeps_the_order_of_calls_queued_or_running() -> None:
    async def main() -> None:
        worker = StoreWorker("call-now-order")
        order: list[str] = []
        gate = threading.Event()

        def first() -> None:
            assert gate.wait(10)
            order.append("first")

        running = worker.call_now(first)
        queued = worker.call(order.append, "second")
        now = worker.call_now(order.append, "third")  # a batch runs: it goes after it, in order
        gate.set()
        async with asyncio.timeout(10):
            await asyncio.gather(running, queued, now)
        assert order == ["first", "second", "third"]
        # idle again: call_now goes at once, and later calls follow it
        results = await asyncio.gather(worker.call_now(len, "ab"), worker.call(len, "abc"))
        assert results == [2, 3]

    run(main())
