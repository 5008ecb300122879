"""A counting semaphore for hot paths.

``asyncio.Semaphore.acquire`` is a coroutine: every use creates and runs one, even when a slot
is free, and ``release`` walks its waiters. Here taking a free slot is a plain method call
(:meth:`Slots.take`); only a caller that finds none awaits (:meth:`Slots.acquire`). Waiters are
woken together and re-check, which is cheap for the few that ever wait on one of these at once.
"""

from __future__ import annotations

import asyncio


class Slots:
    """At most ``count`` holders at once (on one event loop)."""

    __slots__ = ("_freed", "count", "free")

    def __init__(self, count: int) -> None:
        #: the bound
        self.count = count
        #: slots not held now
        self.free = count
        self._freed = asyncio.Event()

    def take(self) -> bool:
        """Take a slot if one is free; ``False`` (taking nothing) otherwise."""
        if self.free > 0:
            self.free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting for one to be released if none is free. A waiter cancelled
        while it waits takes nothing."""
        while self.free <= 0:
            self._freed.clear()
            await self._freed.wait()
        self.free -= 1

    def release(self) -> None:
        """Give a slot back (``RuntimeError`` if none is held: a release without its take
        would raise the bound silently)."""
        if self.free >= self.count:
            raise RuntimeError("a slot was released that was not taken")
        self.free += 1
        self._freed.set()


__all__ = ["Slots"]
