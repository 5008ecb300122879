"""A BLIP peer in its own process, for the two-process integration tests and the benchmark.

Usage: ``python blip_peer.py [--ping-interval S]``. Listens on 127.0.0.1 (port chosen by the OS)
and prints JSON lines on stdout: ``{"event": "listening", "port": N}`` first, then one
``{"event": "closed", ...}`` per connection (with the typed error that ended it, if any). Exits
when its stdin is closed, so it never outlives the test that started it.

Profiles served: ``echo`` (properties and body back, compressed if the request was),
``sink`` (no reply needed; counts), ``stats`` (this connection's statistics as JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from couchlite.blip import BlipProtocol, Message
from couchlite.errors import CouchliteError
from couchlite.transport.blip_connection import BlipConnection, Reply
from couchlite.transport.websocket import WebSocketChannel, serve_channels


def emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def handle(channel: WebSocketChannel) -> None:
    conn = BlipConnection(channel, BlipProtocol(), name=f"peer-{channel.remote_address}")

    async def echo(message: Message) -> Reply:
        return Reply(message.properties, message.body, compressed=message.compressed)

    async def sink(message: Message) -> None:
        return None

    async def stats(message: Message) -> Reply:
        return Reply({}, json.dumps(conn.statistics()).encode())

    conn.register_handler("echo", echo)
    conn.register_handler("sink", sink)
    conn.register_handler("stats", stats)
    error: CouchliteError | None = None
    try:
        await conn.run()
    except CouchliteError as exc:
        error = exc
    emit(
        event="closed",
        remote=channel.remote_address,
        subprotocol=channel.subprotocol,
        code=conn.close_code,
        reason=conn.close_reason,
        error_type=type(error).__name__ if error else None,
        error=str(error) if error else None,
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ping-interval", type=float, default=None)
    args = parser.parse_args()
    server = await serve_channels(handle, "127.0.0.1", 0, ping_interval=args.ping_interval)
    emit(event="listening", port=server.port)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    try:
        while await reader.read(4096):
            pass
    finally:
        transport.close()
        await server.close()


if __name__ == "__main__":
    asyncio.run(main())
