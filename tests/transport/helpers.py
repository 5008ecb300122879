"""Shared helpers of the transport tests (no pytest-asyncio: each test runs its own loop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from couchlite.blip import BlipProtocol, Message
from couchlite.transport.blip_connection import BlipConnection, Reply
from couchlite.transport.loopback import LoopbackChannel, loopback_pair

T = TypeVar("T")

#: Bound on every test body: generous, since a hang is a failure anyway (pytest-timeout backs it).
TEST_TIMEOUT_S = 20.0


def run(coro: Coroutine[Any, Any, T], timeout: float = TEST_TIMEOUT_S) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


async def echo(message: Message) -> Reply:
    return Reply(message.properties, message.body)


@asynccontextmanager
async def connected_pair(
    max_queue: int = 32, **kwargs: Any
) -> AsyncIterator[tuple[BlipConnection, BlipConnection, LoopbackChannel, LoopbackChannel]]:
    """Two started BLIP connections over a loopback pair; both closed on exit."""
    a_chan, b_chan = loopback_pair(max_queue=max_queue)
    a = BlipConnection(a_chan, BlipProtocol(), name="a", **kwargs)
    b = BlipConnection(b_chan, BlipProtocol(), name="b", **kwargs)
    a.start()
    b.start()
    try:
        yield a, b, a_chan, b_chan
    finally:
        await a.close()
        await b.close()
