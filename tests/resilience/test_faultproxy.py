"""The fault proxy itself: byte-exact triggers, cut vs reset, latency and throttling."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from .faultproxy import Fault, FaultProxy, Kind
from .helpers import run

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


async def _sink_server(received: bytearray, ended: asyncio.Event) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                received.extend(data)
                writer.write(data)  # echo
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            ended.set()
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("kind", [Kind.CUT, Kind.RESET])
def test_byte_trigger_is_exact(kind: Kind) -> None:
    async def main() -> None:
        received, ended = bytearray(), asyncio.Event()
        server = await _sink_server(received, ended)
        port = server.sockets[0].getsockname()[1]
        async with FaultProxy(port) as proxy:
            proxy.plan = [Fault(kind, after_bytes=3000, direction="up")]
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(PAYLOAD)
            echoed = bytearray()
            with pytest.raises(ConnectionError) if kind is Kind.RESET else contextlib.nullcontext():
                while data := await asyncio.wait_for(reader.read(4096), 30):
                    echoed.extend(data)
            await asyncio.wait_for(ended.wait(), 30)
            assert bytes(received) == PAYLOAD[:3000]  # not one byte more
            assert bytes(echoed) == PAYLOAD[: len(echoed)]
            assert proxy.connections[0].faulted.is_set()
            assert proxy.connections[0].active is kind
            writer.close()
        server.close()
        await server.wait_closed()

    run(main(), timeout=60)


@pytest.mark.parametrize(
    "fault", [Fault(Kind.DELAY, delay=0.001), Fault(Kind.THROTTLE, rate=1_000_000), None]
)
def test_slow_links_deliver_everything(fault: Fault | None) -> None:
    async def main() -> None:
        received, ended = bytearray(), asyncio.Event()
        server = await _sink_server(received, ended)
        port = server.sockets[0].getsockname()[1]
        async with FaultProxy(port) as proxy:
            proxy.plan = [fault]
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(PAYLOAD)
            writer.write_eof()
            echoed = bytearray()
            while data := await asyncio.wait_for(reader.read(4096), 30):
                echoed.extend(data)
            assert bytes(echoed) == PAYLOAD and bytes(received) == PAYLOAD
            assert proxy.connections[0].bytes_up == len(PAYLOAD)
            assert proxy.connections[0].bytes_down == len(PAYLOAD)
            writer.close()
        server.close()
        await server.wait_closed()

    run(main(), timeout=60)


def test_byte_triggered_throttle_loses_nothing() -> None:
    async def main() -> None:
        received, ended = bytearray(), asyncio.Event()
        server = await _sink_server(received, ended)
        port = server.sockets[0].getsockname()[1]
        async with FaultProxy(port) as proxy:
            proxy.plan = [Fault(Kind.THROTTLE, after_bytes=1000, direction="up", rate=1e6)]
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(PAYLOAD)
            writer.write_eof()
            echoed = bytearray()
            while data := await asyncio.wait_for(reader.read(4096), 30):
                echoed.extend(data)
            assert bytes(echoed) == PAYLOAD and proxy.connections[0].active is Kind.THROTTLE
            writer.close()
        server.close()
        await server.wait_closed()

    run(main(), timeout=60)
