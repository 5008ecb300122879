"""Timeouts of many concurrent waits, with one timer per distinct timeout length.

Every request of a connection awaits its reply within a timeout, and dozens are in flight: a
``TimerHandle`` each (made, pushed on the loop's heap, cancelled, swept) costs about ten times
what a dict entry does. Waits with the same timeout length expire in the order they began
(the loop's clock only moves forward), so each length keeps its waits in one insertion-ordered
dict and one timer set for the oldest: when it fires, the waits that are due expire and the
timer moves on to the next. A wait that ended is just removed; the timer may then fire early
for nothing and move on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class _Bucket:
    __slots__ = ("timer", "waits")

    def __init__(self) -> None:
        #: key -> (deadline, what expires)
        self.waits: dict[int, tuple[float, Any]] = {}
        self.timer: asyncio.TimerHandle | None = None


class Deadlines:
    """Calls ``expire(item, timeout)`` for each wait still registered ``timeout`` seconds after
    it was added (on the running loop)."""

    __slots__ = ("_buckets", "_expire")

    def __init__(self, expire: Callable[[Any, float], None]) -> None:
        self._expire = expire
        self._buckets: dict[float, _Bucket] = {}

    def add(self, key: int, item: Any, timeout: float) -> None:
        """Start the wait ``key`` (unique among the waits of this ``timeout``)."""
        bucket = self._buckets.get(timeout)
        if bucket is None:
            bucket = self._buckets[timeout] = _Bucket()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        bucket.waits[key] = (deadline, item)
        if bucket.timer is None:
            bucket.timer = loop.call_at(deadline, self._fire, timeout)

    def discard(self, key: int, timeout: float) -> None:
        """End the wait ``key`` (nothing if it expired or was never added)."""
        bucket = self._buckets.get(timeout)
        if bucket is not None:
            bucket.waits.pop(key, None)

    def cancel(self) -> None:
        """Forget every wait and stop the timers."""
        for bucket in self._buckets.values():
            if bucket.timer is not None:
                bucket.timer.cancel()
        self._buckets.clear()

    def _fire(self, timeout: float) -> None:
        bucket = self._buckets.get(timeout)
        if bucket is None:
            return
        bucket.timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        waits = bucket.waits
        while waits:
            key = next(iter(waits))
            deadline, item = waits[key]
            if deadline > now:
                bucket.timer = loop.call_at(deadline, self._fire, timeout)
                return
            del waits[key]
            self._expire(item, timeout)
        del self._buckets[timeout]  # (so timeouts that come and go leave nothing behind)


__all__ = ["Deadlines"]
