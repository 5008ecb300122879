"""A collection's changes feed as a pusher reads it: in batches, on the store thread, woken by
the store's change listener.

The listener is called on whichever thread committed; it only sets an asyncio event (through
``call_soon_threadsafe``), which a continuous pusher waits on -- at most ``IDLE_POLL_S``, a
safety net so no wait is unbounded.
"""

from __future__ import annotations

import asyncio
import contextlib

from couchlite._tuning import CHANGES_BATCH_SIZE, IDLE_POLL_S, WAIT_TIMEOUT_S
from couchlite.replicator.store import ChangeEntry, CollectionStore, ListenerHandle
from couchlite.replicator.store_worker import StoreWorker


class ChangeWatcher:
    """Turns a store's change listener (called on any thread) into an asyncio event."""

    def __init__(self, store: CollectionStore, calls: StoreWorker) -> None:
        self.event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._store = store
        self._calls = calls
        self._handle: ListenerHandle | None = None

    async def start(self) -> None:
        self._handle = await self._calls.call(self._store.add_change_listener, self._notify)

    def _notify(self) -> None:
        # a closed loop means nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.event.set)

    async def wait(self, timeout: float = IDLE_POLL_S) -> None:
        """Wait for a change (or ``timeout``), then re-arm."""
        try:
            async with asyncio.timeout(timeout):
                await self.event.wait()
        except TimeoutError:
            pass
        self.event.clear()

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            with contextlib.suppress(RuntimeError):  # no loop any more: remove it from here
                self._calls.call(handle.remove)
                return
            handle.remove()


class Quiet:
    """An asyncio event mirroring a ``SequenceTracker``'s "nothing outstanding" (pass it as
    the tracker's ``on_quiet``)."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.event.set()

    def __call__(self, quiet: bool) -> None:
        if quiet:
            self.event.set()
        else:
            self.event.clear()

    async def wait(self) -> None:
        """Until nothing is outstanding (bounded by ``WAIT_TIMEOUT_S``)."""
        async with asyncio.timeout(WAIT_TIMEOUT_S):
            await self.event.wait()


async def read_changes(
    calls: StoreWorker, store: CollectionStore, since: int, limit: int = CHANGES_BATCH_SIZE
) -> list[ChangeEntry]:
    """Up to ``limit`` changes after ``since``, read on the store thread."""
    return await calls.call(store.changes_since, since, limit)


__all__ = ["ChangeWatcher", "Quiet", "read_changes"]
