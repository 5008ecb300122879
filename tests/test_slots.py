"""The hot-path counting semaphore: never more holders than slots, waiters served on release."""

from __future__ import annotations

import asyncio

from couchlite._slots import Slots


def test_take_until_none_is_free_then_release() -> None:
    slots = Slots(2)
    assert slots.take() and slots.take()
    assert not slots.take()
    assert slots.free == 0
    slots.release()
    assert slots.take()
    assert slots.free == 0


def test_waiters_get_the_released_slots_and_never_exceed_the_bound() -> None:
    async def main() -> None:
        slots = Slots(3)
        holding = 0
        peak = 0
        done = 0

        async def worker() -> None:
            nonlocal holding, peak, done
            if not slots.take():
                await slots.acquire()
            holding += 1
            peak = max(peak, holding)
            await asyncio.sleep(0.001)
            holding -= 1
            slots.release()
            done += 1

        async with asyncio.timeout(10):
            await asyncio.gather(*(worker() for _ in range(50)))
        assert (done, peak, slots.free) == (50, 3, 3)

    asyncio.run(main())
