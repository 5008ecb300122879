"""BLIP over real WebSockets on 127.0.0.1, each figure next to raw ``websockets`` in the same run.

Measured (client and server in this process, one event loop, so both rows pay for both ends):

* request/response round trips per second: sequential, and 64 in flight;
* one-way no-reply messages with 300-byte bodies per second;
* MB/s of 64 KiB bodies, uncompressed and compressed (the raw baseline for the compressed row
  uses websockets' permessage-deflate, the nearest raw equivalent);
* memory when the peer stops reading: how much the sender queues before it is made to wait.

The raw baseline is the same traffic as plain WebSocket binary messages: the ratio is what BLIP
(framing, CRC, deflate, multiplexing, the asyncio connection) costs on top of the transport.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from couchlite._tuning import WS_MAX_INCOMING_MESSAGE, WS_WRITE_LIMIT
from couchlite.blip import BlipProtocol, Message
from couchlite.transport.blip_connection import BlipConnection, Reply, RequestTimeout
from couchlite.transport.websocket import (
    WebSocketChannel,
    connect_channel,
    serve_channels,
)

HOST = "127.0.0.1"
IN_FLIGHT = 64
SMALL = 300
BIG = 64 * 1024


def _body(size: int) -> bytes:
    # JSON-ish text with some repetition: what replication bodies look like to deflate
    unit = b'{"_id":"doc-%06d","name":"Alice","tags":["a","b"],"n":%d},'
    out = bytearray()
    i = 0
    while len(out) < size:
        out += unit % (i, i * 7919 % 10007)
        i += 1
    return bytes(out[:size])


# --- raw websockets ---------------------------------------------------------------------------


async def _raw_handler(ws: ServerConnection) -> None:
    count = 0
    async for message in ws:
        assert isinstance(message, bytes)
        tag = message[:1]
        if tag == b"E":
            await ws.send(message)
        elif tag == b"?":
            await ws.send(b"%d" % count)
        else:
            count += 1


class Raw:
    def __init__(self, compression: str | None) -> None:
        self.compression = compression

    async def __aenter__(self) -> ClientConnection:
        self._server = await ws_serve(
            _raw_handler,
            HOST,
            0,
            compression=self.compression,
            max_size=WS_MAX_INCOMING_MESSAGE,
            write_limit=WS_WRITE_LIMIT,
        )
        port = self._server.sockets[0].getsockname()[1]
        self._client = await ws_connect(
            f"ws://{HOST}:{port}/",
            compression=self.compression,
            proxy=None,
            max_size=WS_MAX_INCOMING_MESSAGE,
            write_limit=WS_WRITE_LIMIT,
        )
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close()
        self._server.close()
        await self._server.wait_closed()


# --- BLIP -------------------------------------------------------------------------------------


async def _blip_handler(channel: WebSocketChannel) -> None:
    conn = BlipConnection(channel, BlipProtocol())
    count = 0
    target = 0
    reached = asyncio.Event()

    async def echo(message: Message) -> Reply:
        return Reply({}, message.body, compressed=message.compressed)

    async def sink(message: Message) -> None:
        nonlocal count
        count += 1
        if count >= target:
            reached.set()

    async def query(message: Message) -> Reply:
        # BLIP interleaves messages, so a small request overtakes big ones still in flight:
        # answer only once `until` messages have arrived.
        nonlocal target
        target = int(message.properties.get("until", "0"))
        if count < target:
            reached.clear()
            await asyncio.wait_for(reached.wait(), 30)
        return Reply({}, b"%d" % count)

    conn.register_handler("echo", echo)
    conn.register_handler("sink", sink)
    conn.register_handler("count", query)
    await conn.run()


class Blip:
    async def __aenter__(self) -> BlipConnection:
        self._server = await serve_channels(_blip_handler, HOST, 0)
        channel = await connect_channel(f"ws://{HOST}:{self._server.port}/db/_blipsync")
        self._conn = BlipConnection(channel, BlipProtocol())
        self._conn.start()
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        await self._conn.close()
        await self._server.close()


# --- measurements -----------------------------------------------------------------------------


async def _timed(duration: float, step: Callable[[], Awaitable[int]]) -> float:
    """Run ``step`` (returns units done) until ``duration`` elapses; units per second."""
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < duration:
        done += await step()
    return done / elapsed


async def raw_round_trips(duration: float, in_flight: int) -> float:
    async with Raw(None) as ws:
        message = b"E" + _body(SMALL)

        async def step() -> int:
            for _ in range(in_flight):
                await ws.send(message)
            for _ in range(in_flight):
                await ws.recv()
            return in_flight

        return await _timed(duration, step)


async def blip_round_trips(duration: float, in_flight: int) -> float:
    async with Blip() as conn:
        body = _body(SMALL)

        async def step() -> int:
            await asyncio.gather(
                *(conn.request({"Profile": "echo"}, body) for _ in range(in_flight))
            )
            return in_flight

        return await _timed(duration, step)


async def raw_one_way(duration: float, size: int, compression: str | None) -> float:
    async with Raw(compression) as ws:
        message = b"S" + _body(size - 1)
        batch = max(1, min(2000, (4 << 20) // size))

        async def step() -> int:
            for _ in range(batch):
                await ws.send(message)
            await ws.send(b"?")  # the reply comes after the server has read the batch
            await ws.recv()
            return batch

        return await _timed(duration, step)


async def blip_one_way(duration: float, size: int, compressed: bool) -> float:
    async with Blip() as conn:
        body = _body(size)
        batch = max(1, min(2000, (4 << 20) // size))
        sent = 0

        async def step() -> int:
            nonlocal sent
            for _ in range(batch):
                await conn.send_no_reply({"Profile": "sink"}, body, compressed=compressed)
            sent += batch
            await conn.request({"Profile": "count", "until": str(sent)})
            return batch

        return await _timed(duration, step)


async def stalled_peer(attempts: int) -> dict[str, Any]:
    """Flood a peer that never reads; report how far the sender got before it had to wait."""
    stop = asyncio.Event()

    async def deaf(channel: WebSocketChannel) -> None:
        await stop.wait()

    server = await serve_channels(deaf, HOST, 0)
    # The deaf peer never reads our close frame either: don't wait the default 5 s for it.
    channel = await connect_channel(f"ws://{HOST}:{server.port}/", close_timeout=0.2)
    conn = BlipConnection(channel, BlipProtocol())
    conn.start()
    body = _body(SMALL)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    accepted = 0
    try:
        for _ in range(attempts):
            await conn.send_no_reply({"Profile": "sink"}, body, timeout=0.3)
            accepted += 1
    except RequestTimeout:
        pass
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    stats = conn.statistics()
    stop.set()
    await conn.close(1001, "benchmark done")
    await server.close()
    return {
        "attempted": attempts,
        "accepted": accepted,
        "blocked": accepted < attempts,
        "peak_pending_messages": stats["peak_pending_messages"],
        "frames_in_flight": stats["frames_sent"],
        "peak_traced_bytes": peak,
    }


def core_cost(count: int) -> float:
    """Microseconds of BlipProtocol work per small no-reply message, sender plus receiver."""
    sender, receiver = BlipProtocol(), BlipProtocol()
    body = _body(SMALL)
    start = time.perf_counter()
    for _ in range(count):
        sender.send_request({"Profile": "sink"}, body, no_reply=True)
        frame = sender.next_frame()
        assert frame is not None
        receiver.receive_frame(frame)
    return (time.perf_counter() - start) / count * 1e6


def _row(label: str, blip: float, raw: float, unit: str, scale: float = 1.0) -> None:
    print(
        f"  {label:<38} BLIP {blip / scale:>10,.1f} {unit:<6} raw websockets "
        f"{raw / scale:>10,.1f} {unit:<6} ratio {blip / raw:>5.0%}",
        flush=True,
    )


async def _main(quick: bool) -> None:
    d = 0.1 if quick else 2.5
    mb = 1024 * 1024
    _row("round trips, sequential", await blip_round_trips(d, 1), await raw_round_trips(d, 1), "/s")
    _row(
        f"round trips, {IN_FLIGHT} in flight",
        await blip_round_trips(d, IN_FLIGHT),
        await raw_round_trips(d, IN_FLIGHT),
        "/s",
    )
    _row(
        f"one-way no-reply, {SMALL} B bodies",
        await blip_one_way(d, SMALL, False),
        await raw_one_way(d, SMALL, None),
        "msg/s",
    )
    _row(
        "64 KiB bodies, uncompressed",
        await blip_one_way(d, BIG, False) * BIG,
        await raw_one_way(d, BIG, None) * BIG,
        "MB/s",
        mb,
    )
    _row(
        "64 KiB bodies, compressed (raw: deflate)",
        await blip_one_way(d, BIG, True) * BIG,
        await raw_one_way(d, BIG, "deflate") * BIG,
        "MB/s",
        mb,
    )
    core = core_cost(2_000 if quick else 50_000)
    raw_cost = 1e6 / await raw_one_way(d, SMALL, None)
    print(
        f"  per {SMALL} B message: BLIP core alone (sans I/O, both ends) {core:.1f} us; "
        f"whole raw websockets path {raw_cost:.1f} us",
        flush=True,
    )
    stalled = await stalled_peer(20_000 if quick else 200_000)
    print(
        f"  peer stops reading: sender blocked={stalled['blocked']} after "
        f"{stalled['accepted']:,} of {stalled['attempted']:,} messages of {SMALL} B; "
        f"{stalled['frames_in_flight']:,} frames went to the socket/peer buffers, at most "
        f"{stalled['peak_pending_messages']} queued in BLIP; peak Python memory "
        f"{stalled['peak_traced_bytes'] / 1024:,.0f} KiB",
        flush=True,
    )


def main(quick: bool) -> None:
    asyncio.run(_main(quick))


if __name__ == "__main__":
    import sys

    main("--quick" in sys.argv)
