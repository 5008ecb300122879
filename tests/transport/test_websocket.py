"""The websockets adapters: negotiation, error translation, pings, text and oversized messages.

Servers here are real sockets on 127.0.0.1; where a test needs a misbehaving server it is a raw
``websockets`` server configured to misbehave.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from couchlite.errors import (
    AuthenticationError,
    InvalidArgumentError,
    NetworkCode,
    NetworkError,
    ProtocolError,
)
from couchlite.transport.channel import ChannelClosed, MessageChannel
from couchlite.transport.websocket import (
    MAX_INCOMING_MESSAGE,
    HandshakeRefused,
    HandshakeRejection,
    HandshakeRequest,
    WebSocketChannel,
    connect_channel,
    serve_channels,
)
from tests.transport.helpers import run

pytestmark = pytest.mark.timeout(30)


async def _echo(channel: WebSocketChannel) -> None:
    while True:
        await channel.send(await channel.recv())


def test_round_trip_and_handshake_details() -> None:
    async def main() -> None:
        seen: list[HandshakeRequest] = []

        async def handler(channel: WebSocketChannel) -> None:
            assert channel.request is not None
            seen.append(channel.request)
            await _echo(channel)

        async with await serve_channels(handler, "127.0.0.1", 0) as server:
            channel = await connect_channel(
                f"ws://127.0.0.1:{server.port}/db/_blipsync", headers={"X-Test": "yes"}
            )
            assert isinstance(channel, MessageChannel)
            assert channel.remote_address == f"127.0.0.1:{server.port}"
            await channel.send(b"\x00\x01binary")
            assert await channel.recv() == b"\x00\x01binary"
            await channel.close()
            assert channel.close_code == 1000
            with pytest.raises(ChannelClosed):
                await channel.recv()
        assert seen[0].path == "/db/_blipsync"
        assert seen[0].header("x-test") == "yes"

    run(main())


def test_process_request_can_refuse_with_401() -> None:
    async def main() -> None:
        def check(request: HandshakeRequest) -> HandshakeRejection | None:
            if request.header("Authorization") != "Basic YWxpY2U6c2VjcmV0":
                return HandshakeRejection(401, "", (("WWW-Authenticate", 'Basic charset="UTF-8"'),))
            return None

        async with await serve_channels(_echo, "127.0.0.1", 0, process_request=check) as server:
            url = f"ws://127.0.0.1:{server.port}/db/_blipsync"
            with pytest.raises(AuthenticationError) as info:
                await connect_channel(url)
            assert info.value.code == 401 and not info.value.is_transient
            channel = await connect_channel(
                url, headers=[("Authorization", "Basic YWxpY2U6c2VjcmV0")]
            )
            await channel.close()

    run(main())


def test_other_refusals_carry_the_http_status() -> None:
    async def main() -> None:
        async def busy(request: HandshakeRequest) -> HandshakeRejection:
            return HandshakeRejection(503, "try later")

        async with await serve_channels(_echo, "127.0.0.1", 0, process_request=busy) as server:
            with pytest.raises(HandshakeRefused) as info:
                await connect_channel(f"ws://127.0.0.1:{server.port}/")
            assert isinstance(info.value, NetworkError)
            assert info.value.code == 503 and info.value.is_transient
            assert "try later" in str(info.value)

    run(main())


def test_server_choosing_no_subprotocol_is_a_protocol_error() -> None:
    async def main() -> None:
        async def ignore(ws: ServerConnection) -> None:
            await ws.wait_closed()

        async with ws_serve(ignore, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(ProtocolError) as info:
                await connect_channel(f"ws://127.0.0.1:{port}/")
            assert info.value.code == 1002
            assert "protocol" in str(info.value)

    run(main())


def test_server_choosing_a_subprotocol_we_did_not_offer_is_a_protocol_error() -> None:
    async def main() -> None:
        async def ignore(ws: ServerConnection) -> None:
            await ws.wait_closed()

        def lie(ws: ServerConnection, request: Request, response: Response) -> Response:
            response.headers["Sec-WebSocket-Protocol"] = "BLIP_3+CBMobile_9"
            return response

        async with ws_serve(
            ignore, "127.0.0.1", 0, compression=None, process_response=lie
        ) as server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(ProtocolError) as info:
                await connect_channel(f"ws://127.0.0.1:{port}/")
            assert info.value.code == 403

    run(main())


def test_connection_refused_is_transient() -> None:
    async def main() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with pytest.raises(NetworkError) as info:
            await connect_channel(f"ws://127.0.0.1:{port}/db/_blipsync")
        assert info.value.code == NetworkCode.CONNECTION_REFUSED
        assert info.value.is_transient
        assert isinstance(info.value.__cause__, OSError)

    run(main())


def test_invalid_url() -> None:
    async def main() -> None:
        with pytest.raises(InvalidArgumentError) as info:
            await connect_channel("http://127.0.0.1:1/db")
        assert info.value.code == NetworkCode.INVALID_URL

    run(main())


def test_text_messages_are_ignored_and_pings_answered() -> None:
    async def main() -> None:
        pongs: list[float] = []

        async def chatty(ws: ServerConnection) -> None:
            await ws.send("a text message BLIP has no use for")
            await ws.send(b"binary")
            # our client channel answers pings even while nobody calls recv()
            latency = await asyncio.wait_for(await ws.ping(), 5)
            pongs.append(latency)
            await ws.send(b"after ping")
            await ws.wait_closed()

        async with ws_serve(
            chatty, "127.0.0.1", 0, compression=None, subprotocols=["BLIP_3+CBMobile_3"]
        ) as server:
            port = server.sockets[0].getsockname()[1]
            channel = await connect_channel(f"ws://127.0.0.1:{port}/")
            assert await channel.recv() == b"binary"
            assert await channel.recv() == b"after ping"
            assert len(pongs) == 1
            await channel.close()

    run(main())


def test_oversized_incoming_message_closes_with_1009() -> None:
    async def main() -> None:
        async with (
            await serve_channels(_echo, "127.0.0.1", 0) as server,
            ws_connect(
                f"ws://127.0.0.1:{server.port}/",
                subprotocols=["BLIP_3+CBMobile_3"],
                compression=None,
                proxy=None,
                max_size=None,
            ) as raw,
        ):
            await raw.send(b"x" * (MAX_INCOMING_MESSAGE + 1))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(raw.recv(), 5)
            assert raw.close_code == 1009

    run(main())


def test_closing_the_server_closes_clients_with_going_away() -> None:
    async def main() -> None:
        server = await serve_channels(_echo, "127.0.0.1", 0)
        channel = await connect_channel(f"ws://127.0.0.1:{server.port}/")
        await server.close()
        with pytest.raises(ChannelClosed) as info:
            await channel.recv()
        assert info.value.code == 1001 and info.value.is_transient
        with pytest.raises(ChannelClosed):
            await channel.send(b"x")

    run(main())


def test_handler_crash_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async def crash(channel: WebSocketChannel) -> None:
            await channel.recv()
            raise RuntimeError("handler bug")

        async with await serve_channels(crash, "127.0.0.1", 0) as server:
            channel = await connect_channel(f"ws://127.0.0.1:{server.port}/")
            await channel.send(b"x")
            with pytest.raises(ChannelClosed) as info:
                await channel.recv()
            assert info.value.code == 1011

    run(main())
    assert any("handler bug" in (r.exc_text or "") for r in caplog.records)


def test_close_completes_the_handshake_while_the_peer_keeps_sending() -> None:
    # Regression: with nobody reading, websockets' receive buffer filled up, reading stopped,
    # and the peer's close frame was never seen (close_timeout, then 1006).
    async def main() -> None:
        async def chatter(channel: WebSocketChannel) -> None:
            await channel.recv()
            for _ in range(200):
                await channel.send(b"x" * 1000)
            await channel.recv()

        async with await serve_channels(chatter, "127.0.0.1", 0) as server:
            channel = await connect_channel(f"ws://127.0.0.1:{server.port}/", max_queue=4)
            await channel.send(b"go")
            await asyncio.sleep(0.05)
            await channel.close()
            assert channel.close_code == 1000

    run(main())
