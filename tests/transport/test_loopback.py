"""The in-memory channel pair: delivery, back-pressure, close propagation."""

from __future__ import annotations

import asyncio

import pytest

from couchlite.errors import InvalidArgumentError, NetworkError
from couchlite.transport.channel import ChannelClosed, MessageChannel, is_transient_close
from couchlite.transport.loopback import loopback_pair
from tests.transport.helpers import run

pytestmark = pytest.mark.timeout(30)


def test_messages_flow_both_ways_in_order() -> None:
    async def main() -> None:
        a, b = loopback_pair()
        assert isinstance(a, MessageChannel)
        assert a.subprotocol == "BLIP_3+CBMobile_3"
        for i in range(10):
            await a.send(bytes([i]))
        assert [await b.recv() for _ in range(10)] == [bytes([i]) for i in range(10)]
        await b.send(memoryview(b"back"))  # type: ignore[arg-type]
        assert await a.recv() == b"back"

    run(main())


def test_send_waits_while_the_peer_inbox_is_full() -> None:
    async def main() -> None:
        a, b = loopback_pair(max_queue=3)
        for _ in range(3):
            await a.send(b"x")
        blocked = asyncio.create_task(a.send(b"y"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not blocked.done()
        assert b.queued == 3
        assert await b.recv() == b"x"
        await asyncio.wait_for(blocked, 5)
        assert b.queued == 3

    run(main())


def test_send_nowait_takes_messages_while_the_peer_inbox_has_room() -> None:
    async def main() -> None:
        a, b = loopback_pair(max_queue=2)
        assert a.send_nowait(b"1") and a.send_nowait(memoryview(b"2"))  # type: ignore[arg-type]
        assert not a.send_nowait(b"3")  # full: nothing taken, the caller awaits send()
        assert b.queued == 2
        assert await b.recv() == b"1"
        assert a.send_nowait(b"3")
        # Order is kept whichever of send_nowait and send took a message.
        blocked = asyncio.create_task(a.send(b"4"))
        await asyncio.sleep(0)
        assert not blocked.done()
        assert [await b.recv() for _ in range(3)] == [b"2", b"3", b"4"]
        await asyncio.wait_for(blocked, 5)
        await a.close()
        assert not a.send_nowait(b"5") and not b.send_nowait(b"5")
        with pytest.raises(ChannelClosed):
            await a.send(b"5")

    run(main())


def test_close_propagates_code_and_reason_after_draining() -> None:
    async def main() -> None:
        a, b = loopback_pair()
        await a.send(b"last words")
        waiting = asyncio.create_task(a.recv())
        await a.close(4001, "try later")
        with pytest.raises(ChannelClosed) as info:
            await asyncio.wait_for(waiting, 5)
        assert info.value.code == 4001
        # the peer still gets what was sent before the close, then the close itself
        assert await b.recv() == b"last words"
        with pytest.raises(ChannelClosed) as info:
            await b.recv()
        assert (info.value.code, info.value.reason) == (4001, "try later")
        assert info.value.is_transient
        assert (b.close_code, b.close_reason) == (4001, "try later")
        with pytest.raises(ChannelClosed):
            await b.send(b"too late")
        await b.close()  # idempotent
        assert a.close_code == 4001

    run(main())


def test_close_wakes_a_blocked_sender() -> None:
    async def main() -> None:
        a, b = loopback_pair(max_queue=1)
        await a.send(b"1")
        blocked = asyncio.create_task(a.send(b"2"))
        await asyncio.sleep(0)
        await b.close(1001, "bye")
        with pytest.raises(ChannelClosed) as info:
            await asyncio.wait_for(blocked, 5)
        assert info.value.code == 1001

    run(main())


def test_channel_closed_is_a_network_error_with_transient_codes() -> None:
    assert issubclass(ChannelClosed, NetworkError)
    assert all(is_transient_close(c) for c in (1001, 1006, 4001, 503))
    assert not any(is_transient_close(c) for c in (1000, 1002, 1011, 4002, 403))
    assert not ChannelClosed(1002, "bad").is_transient
    assert ChannelClosed(1000).is_normal


def test_invalid_queue_size() -> None:
    with pytest.raises(InvalidArgumentError):
        loopback_pair(max_queue=0)
