"""Timeouts of many waits with one timer per timeout length (transport._deadlines)."""

from __future__ import annotations

import asyncio

from couchlite.transport._deadlines import Deadlines
from tests.transport.helpers import run


def _recording() -> tuple[Deadlines, list[str]]:
    """Deadlines that record what expired."""
    expired: list[str] = []
    return Deadlines(lambda item, _: expired.append(item)), expired


def test_waits_expire_in_order_unless_they_ended_first() -> None:
    async def main() -> None:
        expired: list[tuple[str, float]] = []
        deadlines = Deadlines(lambda item, timeout: expired.append((item, timeout)))
        for key in range(5):
            deadlines.add(key, f"short-{key}", 0.05)
        deadlines.add(0, "long-0", 0.3)
        deadlines.discard(1, 0.05)  # ended before its timeout
        deadlines.discard(0, 0.3)
        deadlines.discard(9, 0.05)  # never added: nothing
        deadlines.discard(0, 7.0)  # no such length: nothing
        await asyncio.sleep(0.02)
        assert expired == []
        await asyncio.sleep(0.1)
        assert expired == [
            ("short-0", 0.05),
            ("short-2", 0.05),
            ("short-3", 0.05),
            ("short-4", 0.05),
        ]
        await asyncio.sleep(0.3)
        assert len(expired) == 4  # the long one ended
        assert deadlines._buckets == {}  # nothing left behind

    run(main())


def test_a_wait_added_later_moves_the_timer_on_after_the_first_expires() -> None:
    async def main() -> None:
        deadlines, expired = _recording()
        deadlines.add(1, "first", 0.05)
        await asyncio.sleep(0.03)
        deadlines.add(2, "second", 0.05)  # due 0.03 s after the first
        await asyncio.sleep(0.04)
        assert expired == ["first"]
        await asyncio.sleep(0.05)
        assert expired == ["first", "second"]

    run(main())


def test_cancel_forgets_every_wait() -> None:
    async def main() -> None:
        deadlines, expired = _recording()
        deadlines.add(1, "a", 0.02)
        deadlines.add(2, "b", 0.03)
        deadlines.cancel()
        await asyncio.sleep(0.08)
        assert expired == []

    run(main())
