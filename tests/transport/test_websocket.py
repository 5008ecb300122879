"""The websockets adapters: negotiation, error translation, pings, text and oversized messages.

Servers here are real sockets on 127.0.0.1; where a test needs a misbehaving server it is a raw
``websockets`` server configured to misbehave.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response

from couchlite._tuning import (
    LOG_REPEAT_BURST,
    WS_COALESCE_MAX_FRAME,
    WS_MAX_INCOMING_MESSAGE,
)
from couchlite.errors import (
    AuthenticationError,
    InvalidArgumentError,
    NetworkCode,
    NetworkError,
    ProtocolError,
)
from couchlite.tls.identity import TLSIdentity
from couchlite.transport.channel import ChannelClosed, MessageChannel
from couchlite.transport.failures import RateLimitedLog
from couchlite.transport.websocket import (
    ChannelServer,
    HandshakeRefused,
    HandshakeRejection,
    HandshakeRequest,
    RedirectRefused,
    WebSocketChannel,
    connect_channel,
    serve_channels,
)
from tests.httpstub import redirect_server
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


def test_send_nowait_writes_until_the_buffer_is_full_and_refuses_once_closed() -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def deaf(channel: WebSocketChannel) -> None:
            await release.wait()  # reads nothing until told: the client's buffers fill
            await _echo(channel)

        async with await serve_channels(deaf, "127.0.0.1", 0) as server:
            channel = await connect_channel(f"ws://127.0.0.1:{server.port}/db/_blipsync")
            frame = b"f" * 16384
            taken = 0
            while channel.send_nowait(frame):
                taken += 1
                assert taken < 10_000, "send_nowait never refused a peer that does not read"
            assert taken >= 1
            # Refused: the frame was not taken; send() takes it once there is room.
            release.set()
            await asyncio.wait_for(channel.send(b"last"), 10)
            received = [await channel.recv() for _ in range(taken + 1)]
            assert received == [frame] * taken + [b"last"]
            await channel.close()
            assert not channel.send_nowait(b"after close")
            with pytest.raises(ChannelClosed):
                await channel.send(b"after close")

    run(main())


def test_frames_sent_together_arrive_in_order_whatever_their_sizes() -> None:
    """Small frames taken in one turn of the loop are written together; large ones, send()
    and close() keep their place among them."""

    async def main() -> None:
        got: list[bytes] = []
        done = asyncio.Event()

        async def sink(channel: WebSocketChannel) -> None:
            try:
                while True:
                    got.append(await channel.recv())
            except ChannelClosed:
                done.set()

        async with await serve_channels(sink, "127.0.0.1", 0) as server:
            channel = await connect_channel(f"ws://127.0.0.1:{server.port}/db/_blipsync")
            assert isinstance(channel, WebSocketChannel)
            sent: list[bytes] = []
            sizes = [1, 100, WS_COALESCE_MAX_FRAME, WS_COALESCE_MAX_FRAME + 1, 50_000, 7]
            for i in range(600):  # more than WS_COALESCE_MAX_BYTES of small frames in a turn
                frame = bytes([i % 251]) * sizes[i % len(sizes)]
                if not channel.send_nowait(frame):  # the transport's buffer is full
                    await channel.send(frame)
                sent.append(frame)
                if i % 97 == 0:
                    await channel.send(b"awaited %d" % i)
                    sent.append(b"awaited %d" % i)
            assert channel.send_nowait(b"just before close")
            sent.append(b"just before close")
            await channel.close()
            await asyncio.wait_for(done.wait(), 10)
        assert got == sent

    run(main())


def test_frames_held_when_the_peers_close_arrives_go_before_the_answer_to_it() -> None:
    """websockets answers a Close (and then half-closes TCP) from within data_received: the
    frames held in the same turn of the loop go out first, not after the Close or the EOF."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors: list[object] = []
        loop.set_exception_handler(lambda _, context: errors.append(context))
        held = asyncio.Event()

        async def handler(channel: WebSocketChannel) -> None:
            assert channel.send_nowait(b"held")
            # the peer's Close, handled in this same turn, before the held frame was written
            close = Frame(Opcode.CLOSE, Close(1000, "bye").serialize())
            channel._ws.data_received(close.serialize(mask=True))
            held.set()
            await channel._ws.wait_closed()

        async with await serve_channels(handler, "127.0.0.1", 0) as server:
            channel = await connect_channel(f"ws://127.0.0.1:{server.port}/db/_blipsync")
            assert await asyncio.wait_for(channel.recv(), 5) == b"held"
            await asyncio.wait_for(held.wait(), 5)
            with pytest.raises(ChannelClosed):
                await asyncio.wait_for(channel.recv(), 5)
            assert channel.close_code == 1000
            await channel.close()
        assert errors == []

    run(main())


def test_send_nowait_refuses_a_peer_that_does_not_read_small_frames_either() -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def deaf(channel: WebSocketChannel) -> None:
            await release.wait()
            await _echo(channel)

        async with await serve_channels(deaf, "127.0.0.1", 0) as server:
            channel = await connect_channel(f"ws://127.0.0.1:{server.port}/db/_blipsync")
            taken = 0
            while channel.send_nowait(b"s" * 100):
                taken += 1
                if taken % 1000 == 0:
                    await asyncio.sleep(0)  # let held frames reach the socket
                assert taken < 1_000_000, "send_nowait never refused a peer that does not read"
            release.set()
            await asyncio.wait_for(channel.send(b"last"), 10)
            received = [await asyncio.wait_for(channel.recv(), 10) for _ in range(taken + 1)]
            assert received == [b"s" * 100] * taken + [b"last"]
            await channel.close()

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
            await raw.send(b"x" * (WS_MAX_INCOMING_MESSAGE + 1))
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


# --- quiet failure ----------------------------------------------------------------------------


def test_rate_limited_log_logs_a_burst_then_summaries(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = RateLimitedLog(
        logging.getLogger("test.ratelimit"), burst=3, interval=10.0, clock=lambda: now[0]
    )
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        for i in range(1000):
            log.log("odd thing %d", i)
        lines = [r.getMessage() for r in caplog.records]
        # three as they came, one saying silence follows, nothing for the other 996
        assert lines[:3] == ["odd thing 0", "odd thing 1", "odd thing 2"]
        assert len(lines) == 4 and "counted, not logged" in lines[3]
        assert log.suppressed == 996
        now[0] += 10.0  # the next period: a summary, then a new burst
        log.log("odd thing %d", 1000)
        lines = [r.getMessage() for r in caplog.records]
        assert lines[4] == "odd thing 999 (and 996 more like it suppressed)"
        assert lines[5] == "odd thing 1000"
        assert log.suppressed == 0
        log.flush()  # nothing suppressed: nothing to say
        assert len(caplog.records) == 6


def test_a_flood_of_text_messages_logs_a_bounded_number_of_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async def flood(ws: ServerConnection) -> None:
            for _ in range(5000):
                await ws.send("text BLIP has no use for")
            await ws.send(b"binary")
            await ws.wait_closed()

        async with ws_serve(
            flood, "127.0.0.1", 0, compression=None, subprotocols=["BLIP_3+CBMobile_3"]
        ) as server:
            port = server.sockets[0].getsockname()[1]
            channel = await connect_channel(f"ws://127.0.0.1:{port}/")
            assert await channel.recv() == b"binary"
            await channel.close()

    with caplog.at_level(logging.WARNING, logger="couchlite.transport.websocket"):
        run(main())
    warnings = [r.getMessage() for r in caplog.records if "text WebSocket" in r.getMessage()]
    # the burst, the notice that silence follows, and the summary when the channel closed
    assert LOG_REPEAT_BURST + 1 <= len(warnings) <= LOG_REPEAT_BURST + 2
    assert f"and {5000 - LOG_REPEAT_BURST - 1} more like it suppressed" in warnings[-1]


# --- redirects --------------------------------------------------------------------------------


@dataclass
class _Recorder:
    """What a server on 127.0.0.1 received: one list of headers per request."""

    requests: list[dict[str, str]] = field(default_factory=list)


@asynccontextmanager
async def _recording_server() -> AsyncIterator[tuple[ChannelServer, _Recorder]]:
    """A WebSocket server on 127.0.0.1 recording the headers of each upgrade (echoes frames)."""
    seen = _Recorder()

    def record(request: HandshakeRequest) -> None:
        seen.requests.append({k.lower(): v for k, v in request.headers})

    async with await serve_channels(_echo, "127.0.0.1", 0, process_request=record) as server:
        yield server, seen


_SECRETS = {"Authorization": "Basic c2VjcmV0OnNlY3JldA==", "X-Api-Key": "k-123"}


def test_a_cross_origin_redirect_is_refused_by_default_and_nothing_leaks() -> None:
    async def main() -> None:
        async with _recording_server() as (target, seen):
            elsewhere = f"ws://127.0.0.1:{target.port}/db/_blipsync"
            async with redirect_server(elsewhere) as (port, asked):
                with pytest.raises(RedirectRefused) as info:
                    await connect_channel(f"ws://127.0.0.1:{port}/db/_blipsync", headers=_SECRETS)
                assert asked[0]["x-api-key"] == "k-123"  # the configured peer: yes
            assert seen.requests == []  # the other origin: nothing at all
        error = info.value
        assert isinstance(error, NetworkError) and error.code == 302 and not error.is_transient
        assert error.location == elsewhere and elsewhere in str(error)
        assert "another origin" in str(error)

    run(main())


def test_an_allowed_cross_origin_redirect_drops_headers_and_credentials() -> None:
    async def main() -> None:
        async with (
            _recording_server() as (target, seen),
            redirect_server(f"ws://127.0.0.1:{target.port}/db/_blipsync") as (port, _),
        ):
            channel = await connect_channel(
                f"ws://127.0.0.1:{port}/db/_blipsync",
                headers=_SECRETS,
                allow_cross_origin_redirects=True,
            )
            await channel.send(b"ping")
            assert await channel.recv() == b"ping"
            await channel.close()
        assert len(seen.requests) == 1
        assert "authorization" not in seen.requests[0]
        assert "x-api-key" not in seen.requests[0]

    run(main())


def test_same_origin_redirects_are_followed_with_headers_a_bounded_number_of_times() -> None:
    async def main() -> None:
        seen: list[tuple[str, str | None]] = []

        def route(request: HandshakeRequest) -> HandshakeRejection | None:
            seen.append((request.path, request.header("X-Api-Key")))
            if request.path == "/old/_blipsync":
                return HandshakeRejection(307, "", (("Location", "/db/_blipsync"),))
            if request.path == "/loop/_blipsync":
                return HandshakeRejection(302, "", (("Location", "/loop/_blipsync"),))
            return None

        async with await serve_channels(_echo, "127.0.0.1", 0, process_request=route) as srv:
            channel = await connect_channel(
                f"ws://127.0.0.1:{srv.port}/old/_blipsync", headers=_SECRETS
            )
            await channel.close()
            assert seen == [("/old/_blipsync", "k-123"), ("/db/_blipsync", "k-123")]
            seen.clear()
            with pytest.raises(RedirectRefused) as info:
                await connect_channel(f"ws://127.0.0.1:{srv.port}/loop/_blipsync", max_redirects=3)
            assert "more than 3 redirects" in str(info.value)
            assert len(seen) == 4  # the first request and three redirects followed

    run(main())


@pytest.fixture(scope="module")
def identity() -> TLSIdentity:
    return TLSIdentity.create_anonymous(label=None)


def _trusting(identity: TLSIdentity) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=identity.certificates_pem().decode("ascii"))
    context.check_hostname = False
    return context


def test_a_redirect_from_wss_to_ws_is_refused_even_when_cross_origin_is_allowed(
    identity: TLSIdentity,
) -> None:
    async def main() -> None:
        async with _recording_server() as (plain, seen):

            def downgrade(_request: HandshakeRequest) -> HandshakeRejection:
                return HandshakeRejection(
                    301, "", (("Location", f"ws://127.0.0.1:{plain.port}/db/_blipsync"),)
                )

            async with await serve_channels(
                _echo,
                "127.0.0.1",
                0,
                ssl=identity.server_ssl_context(),
                process_request=downgrade,
            ) as secure:
                with pytest.raises(RedirectRefused) as info:
                    await connect_channel(
                        f"wss://127.0.0.1:{secure.port}/db/_blipsync",
                        ssl=_trusting(identity),
                        allow_cross_origin_redirects=True,
                    )
            assert info.value.code == 301 and "drop TLS" in str(info.value)
            assert seen.requests == []

    run(main())


def _loops() -> list[Any]:
    factories: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # the fast extra is not installed (it is in the test environment)
        return factories
    return [*factories, pytest.param(uvloop.new_event_loop, id="uvloop")]


@pytest.mark.parametrize("loop_factory", _loops())
def test_wss_within_one_loop_whose_client_hello_comes_before_start_tls(
    identity: TLSIdentity, loop_factory: Any
) -> None:
    """A client on the server's own loop writes its ClientHello at once; uvloop starts reading
    after connection_made whatever it asked, so the bytes reach us before start_tls put the TLS
    layer in front of us: they must go to it, not be lost (the handshake would hang)."""

    async def main() -> None:
        async with await serve_channels(
            _echo, "127.0.0.1", 0, ssl=identity.server_ssl_context()
        ) as server:
            for round_ in range(5):
                channel = await connect_channel(
                    f"wss://127.0.0.1:{server.port}/db/_blipsync", ssl=_trusting(identity)
                )
                await channel.send(b"round %d" % round_)
                assert await channel.recv() == b"round %d" % round_
                await channel.close()

    async def bounded() -> None:
        async with asyncio.timeout(20):
            await main()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(bounded())
