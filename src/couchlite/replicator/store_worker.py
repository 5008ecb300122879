"""Store calls off the event loop.

Every call the replication engine makes to its store (``CollectionStore``/``DatabaseStore``,
and the user callbacks they adapt) may wait: on SQLite, on the database's writer while a user
thread holds a long ``in_batch``, or on the user's own code. The event loop must never wait
with it -- it also serves every other connection of the process, heartbeats included -- so the
asyncio workers hand their calls to a :class:`StoreWorker` and await the result.

Each session has one worker; its calls run in the order they were made (the engine's order
guarantees -- e.g. a revision is acknowledged only once durable, a checkpoint is saved only
after what it claims -- are those of sequential code). The calls made during one turn of the
event loop run as one batch; while a batch runs, new calls queue and go as the next batch, so
the thread hop is paid once per batch, not once per document.

Batches run on a process-wide set of at most ``STORE_THREADS`` threads, and every database is
served by one of them for good (the least used when it is first seen): a session blocked on a
busy database holds only that database's thread while the others go on, and the store's
per-thread read connections stay one per database instead of one per thread and database.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from couchlite._tuning import STORE_THREAD_ASSIGNMENTS, STORE_THREADS

T = TypeVar("T")

_Call = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]
_Job = Callable[[], None]


class _StoreThreads:
    """The threads, started as they are first needed, and which database each one serves."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._lock = threading.Lock()
        self._queues: list[queue.SimpleQueue[_Job]] = []
        self._load: list[int] = []
        self._assigned: OrderedDict[str, int] = OrderedDict()

    def queue_for(self, database: str) -> queue.SimpleQueue[_Job]:
        with self._lock:
            index = self._assigned.get(database)
            if index is None:
                if len(self._queues) < self._count:
                    self._start()
                index = min(range(len(self._queues)), key=self._load.__getitem__)
                self._assigned[database] = index
                self._load[index] += 1
                if len(self._assigned) > STORE_THREAD_ASSIGNMENTS:
                    _, old = self._assigned.popitem(last=False)
                    self._load[old] -= 1
            return self._queues[index]

    def _start(self) -> None:
        jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        thread = threading.Thread(
            target=_serve, args=(jobs,), name=f"couchlite-store-{len(self._queues)}", daemon=True
        )
        thread.start()
        self._queues.append(jobs)
        self._load.append(0)


def _serve(jobs: queue.SimpleQueue[_Job]) -> None:
    while True:
        jobs.get()()


_threads = _StoreThreads(STORE_THREADS)


class StoreWorker:
    """Runs one session's store calls in order on a worker thread (see the module docstring)."""

    __slots__ = ("_database", "_jobs", "_loop", "_queue", "_running", "batches")

    def __init__(self, database: str) -> None:
        """``database``: what identifies the session's database (its private UUID)."""
        self._database = database
        self._jobs: queue.SimpleQueue[_Job] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: list[_Call] = []
        self._running = False
        #: statistics: batches run
        self.batches = 0

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)``; the future resolves (on the loop) with its result or error."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((fn, args, future))
        if not self._running:
            self._running = True
            loop.call_soon(self._submit)
        return future

    def call_now(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """:meth:`call`, handed to the thread at once when nothing is queued or running, not
        at the end of the loop turn: for a call the rest of a long turn must not hold up (a
        batch of inserts while the reader goes on with the frames behind it)."""
        if self._running:  # it goes with the batch queued (or next after the one running)
            return self.call(fn, *args)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((fn, args, future))
        self._running = True
        self._submit()
        return future

    def _submit(self) -> None:
        items, self._queue = self._queue, []
        if not items:
            self._running = False
            return
        self.batches += 1
        jobs = self._jobs
        if jobs is None:
            jobs = self._jobs = _threads.queue_for(self._database)
        jobs.put(lambda: self._run(items))

    def _run(self, items: list[_Call]) -> None:
        """On a worker thread: run the batch, then hand the results back to the loop."""
        results: list[tuple[bool, Any]] = []
        for fn, args, future in items:
            if future.cancelled():
                results.append((False, None))
                continue
            try:
                results.append((True, fn(*args)))
            except BaseException as exc:  # delivered to the caller, whatever it is
                results.append((False, exc))
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._deliver, items, results)

    def _deliver(self, items: list[_Call], results: list[tuple[bool, Any]]) -> None:
        for (_, _, future), (ok, value) in zip(items, results, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            elif value is not None:
                future.set_exception(value)
            else:
                future.cancel()
        self._submit()


__all__ = ["StoreWorker"]
