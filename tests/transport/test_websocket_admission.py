"""The server's admission gate: connections counted from accept, bounded, and ended promptly.

Real sockets on 127.0.0.1 and real TLS; the "attackers" are plain sockets that connect and then
say nothing (a stalled TLS handshake or HTTP request) or stop reading.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable

import pytest

from couchlite.tls.identity import TLSIdentity
from couchlite.transport.websocket import (
    ChannelServer,
    ConnectionLimits,
    HandshakeRefused,
    WebSocketChannel,
    connect_channel,
    serve_channels,
)
from tests.transport.helpers import run

pytestmark = pytest.mark.timeout(60)

#: Bound of every polling wait below (a hang guard, not a measurement).
WAIT_S = 10.0


async def _echo(channel: WebSocketChannel) -> None:
    while True:
        await channel.send(await channel.recv())


async def _until(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def _silent_sockets(port: int, count: int) -> list[socket.socket]:
    """``count`` TCP connections to 127.0.0.1:``port`` that will never send a byte."""
    loop = asyncio.get_running_loop()
    sockets = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        sockets.append(sock)
    return sockets


async def _closed_by_server(sock: socket.socket, timeout: float = WAIT_S) -> bool:
    """Whether the server closed ``sock`` (EOF or reset) within ``timeout``."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            while True:
                data = await loop.sock_recv(sock, 4096)
                if not data:
                    return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


@pytest.fixture(scope="module")
def identity() -> TLSIdentity:
    return TLSIdentity.create_anonymous(label=None)


def _trusting(identity: TLSIdentity) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=identity.certificates_pem().decode("ascii"))
    context.check_hostname = False
    return context


def test_pending_connections_are_bounded_before_any_tls_work(identity: TLSIdentity) -> None:
    async def main() -> None:
        limits = ConnectionLimits(max_pending=5, handshake_timeout=30, pending_evict_age=60)
        server = await serve_channels(
            _echo, "127.0.0.1", 0, ssl=identity.server_ssl_context(), limits=limits
        )
        async with server:
            stalled = await _silent_sockets(server.port, 40)
            try:
                await _until(lambda: server.admission["refused"] == 35)
                assert server.admission["pending"] == 5
                assert server.admission["live"] == 5
                # the refused ones were closed at once; the admitted ones are still waiting
                refused = [s for s in stalled[5:] if await _closed_by_server(s, 2)]
                assert len(refused) == 35
                # no slot for a real client while every stalled one is recent: closed at once
                with pytest.raises(Exception):  # noqa: B017 - reset or TLS EOF, either is right
                    await connect_channel(
                        f"wss://127.0.0.1:{server.port}/", ssl=_trusting(identity), open_timeout=5
                    )
            finally:
                for sock in stalled:
                    sock.close()
            await _until(lambda: server.admission["live"] == 0)
            channel = await connect_channel(
                f"wss://127.0.0.1:{server.port}/", ssl=_trusting(identity)
            )
            await channel.send(b"hello")
            assert await channel.recv() == b"hello"
            await channel.close()

    run(main(), timeout=50)


def test_a_stalled_pending_connection_makes_room_for_a_new_one(identity: TLSIdentity) -> None:
    async def main() -> None:
        limits = ConnectionLimits(max_pending=4, handshake_timeout=30, pending_evict_age=0.2)
        server = await serve_channels(
            _echo, "127.0.0.1", 0, ssl=identity.server_ssl_context(), limits=limits
        )
        async with server:
            stalled = await _silent_sockets(server.port, 4)
            try:
                await _until(lambda: server.admission["pending"] == 4)
                await asyncio.sleep(0.3)  # older than pending_evict_age: they count as stalled
                channel = await connect_channel(
                    f"wss://127.0.0.1:{server.port}/", ssl=_trusting(identity)
                )
                await channel.send(b"through")
                assert await channel.recv() == b"through"
                await channel.close()
                assert server.admission["evicted"] >= 1
                assert await _closed_by_server(stalled[0])  # the oldest made room
            finally:
                for sock in stalled:
                    sock.close()

    run(main())


def test_stalled_tls_handshakes_and_http_requests_are_dropped(identity: TLSIdentity) -> None:
    async def main() -> None:
        limits = ConnectionLimits(handshake_timeout=0.5)
        async with await serve_channels(
            _echo, "127.0.0.1", 0, ssl=identity.server_ssl_context(), limits=limits
        ) as tls_server:
            (silent,) = await _silent_sockets(tls_server.port, 1)
            with silent:
                assert await _closed_by_server(silent)
            await _until(lambda: tls_server.admission["live"] == 0)
        # slowloris: most of a request, then nothing
        async with await serve_channels(_echo, "127.0.0.1", 0, limits=limits) as server:
            (slow,) = await _silent_sockets(server.port, 1)
            with slow:
                loop = asyncio.get_running_loop()
                await loop.sock_sendall(slow, b"GET /db/_blipsync HTTP/1.1\r\nHost: x\r\n")
                assert await _closed_by_server(slow)
            await _until(lambda: server.admission["live"] == 0)

    run(main())


def test_max_connections_refuses_with_503_and_retry_after() -> None:
    async def main() -> None:
        limits = ConnectionLimits(max_connections=2, retry_after=7)
        async with await serve_channels(_echo, "127.0.0.1", 0, limits=limits) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            first, second = await connect_channel(url), await connect_channel(url)
            with pytest.raises(HandshakeRefused) as info:
                await connect_channel(url)
            assert info.value.code == 503 and info.value.is_transient
            assert "Too many connections" in str(info.value)
            assert server.admission["full"] == 1
            await first.close()
            await _until(lambda: server.admission["established"] == 1)
            third = await connect_channel(url)
            for channel in (second, third):
                await channel.send(b"x")
                assert await channel.recv() == b"x"
                await channel.close()

    run(main())


def test_retry_after_is_sent_with_the_503() -> None:
    async def main() -> None:
        limits = ConnectionLimits(max_connections=1, retry_after=7)
        async with await serve_channels(_echo, "127.0.0.1", 0, limits=limits) as server:
            holder = await connect_channel(f"ws://127.0.0.1:{server.port}/")
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Protocol: BLIP_3+CBMobile_3\r\n\r\n"
            )
            async with asyncio.timeout(WAIT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
            assert head.startswith(b"HTTP/1.1 503")
            assert b"\r\nRetry-After: 7\r\n" in head
            await holder.close()

    run(main())


def test_refused_sockets_kept_open_do_not_hold_the_pending_slots() -> None:
    """Peers that keep their refused (503) sockets open would otherwise hold every pending
    slot until the close timeout, and a real client would be dropped unanswered, which it
    cannot tell from a dead server, instead of hearing the 503 that tells it to retry."""

    async def main() -> None:
        limits = ConnectionLimits(
            max_connections=1, max_pending=4, handshake_timeout=30, pending_evict_age=60
        )
        async with await serve_channels(
            _echo, "127.0.0.1", 0, limits=limits, close_timeout=30
        ) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            holder = await connect_channel(url)
            refused = []
            try:
                for _ in range(4):
                    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                    refused.append(writer)
                    writer.write(_UPGRADE_REQUEST)
                    async with asyncio.timeout(WAIT_S):
                        head = await reader.readuntil(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 503")
                await _until(lambda: server.admission["pending"] == 4)
                # every slot is held by a refused socket, none of them old: the new client
                # still gets its answer
                with pytest.raises(HandshakeRefused) as info:
                    await connect_channel(url)
                assert info.value.code == 503 and info.value.is_transient
                assert server.admission["evicted"] >= 1 and server.admission["refused"] == 0
            finally:
                for writer in refused:
                    writer.close()
                await holder.close()

    run(main())


_UPGRADE_REQUEST = (
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: BLIP_3+CBMobile_3\r\n\r\n"
)


async def _stalled_websockets(port: int, count: int) -> list[socket.socket]:
    """WebSockets opened by hand that then never read nor write again."""
    loop = asyncio.get_running_loop()
    sockets = await _silent_sockets(port, count)
    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: BLIP_3+CBMobile_3\r\n\r\n"
    )
    for sock in sockets:
        # a small receive buffer, filled by the server's first messages: it cannot even send
        # its close frame
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await loop.sock_sendall(sock, request)
    for sock in sockets:
        head = b""
        async with asyncio.timeout(WAIT_S):
            while b"\r\n\r\n" not in head:
                head += await loop.sock_recv(sock, 1)
        assert head.startswith(b"HTTP/1.1 101")
    return sockets


def test_closing_a_server_with_stalled_peers_is_prompt() -> None:
    async def main() -> None:
        async def flood(channel: WebSocketChannel) -> None:
            # until the peer's buffers are full and send() blocks for good
            while True:
                await channel.send(b"x" * 16384)

        server: ChannelServer = await serve_channels(flood, "127.0.0.1", 0, write_limit=16384)
        stalled = await _stalled_websockets(server.port, 50)
        pending = await _silent_sockets(server.port, 20)  # mid-handshake
        try:
            await _until(lambda: server.admission["established"] == 50)
            started = time.monotonic()
            await server.close(grace=0.5)
            elapsed = time.monotonic() - started
            # a hang guard only: the closing handshake alone would have taken 5 s per peer
            assert elapsed < WAIT_S
            assert server.admission["live"] == 0
        finally:
            for sock in stalled + pending:
                sock.close()

    run(main(), timeout=40)
