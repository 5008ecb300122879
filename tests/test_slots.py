"""The hot-path counting semaphore: never more holders than slots, waiters served on release."""

from __future__ import annotations

import asyncio

import pytest

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


def test_releasing_a_slot_that_was_not_taken_is_an_error() -> None:
    slots = Slots(1)
    with pytest.raises(RuntimeError):
        slots.release()
    assert slots.take()
    slots.release()
    assert slots.free == 1


def test_a_waiter_cancelled_after_a_release_takes_nothing_and_another_gets_the_slot() -> None:
    async def main() -> None:
        slots = Slots(1)
        assert slots.take()
        first = asyncio.create_task(slots.acquire())
        second = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)  # both wait
        slots.release()  # wakes both; the first is cancelled before it runs
        first.cancel()
        async with asyncio.timeout(5):
            await second
        assert first.cancelled()
        assert slots.free == 0
        slots.release()
        assert slots.free == 1

    asyncio.run(main())


def test_a_plain_take_may_win_the_slot_a_woken_waiter_was_going_for() -> None:
    async def main() -> None:
        slots = Slots(1)
        assert slots.take()
        waiter = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        slots.release()
        assert slots.take()  # before the waiter runs: it finds none and waits again
        await asyncio.sleep(0.01)
        assert not waiter.done() and slots.free == 0
        slots.release()
        async with asyncio.timeout(5):
            await waiter
        assert slots.free == 0

    asyncio.run(main())
