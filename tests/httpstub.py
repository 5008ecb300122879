"""A bare HTTP server on 127.0.0.1 for the redirect tests: it answers every request with one
fixed answer (a redirect, or 404) and records the headers of each request it received."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

#: Bound on reading one request head: the tests' clients send theirs at once.
READ_TIMEOUT_S = 10.0


@asynccontextmanager
async def redirect_server(
    location: str | None,
) -> AsyncIterator[tuple[int, list[dict[str, str]]]]:
    """Yield ``(port, requests)``: each request gets ``302`` with ``Location: location``
    (``404`` when ``location`` is None); ``requests`` holds each request's headers, names in
    lower case."""
    requests: list[dict[str, str]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            fields = (line.partition(":") for line in head.split("\r\n")[1:])
            requests.append({k.strip().lower(): v.strip() for k, _, v in fields if k})
            if location is None:
                reply = "HTTP/1.1 404 Not Found\r\n"
            else:
                reply = f"HTTP/1.1 302 Found\r\nLocation: {location}\r\n"
            writer.write((reply + "Content-Length: 0\r\nConnection: close\r\n\r\n").encode())
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], requests
    finally:
        server.close()
        await server.wait_closed()
