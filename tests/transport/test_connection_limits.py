"""BlipConnection's limits and streamed replies, over loopback pairs and real WebSockets."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import pytest

from couchlite.blip import BlipErrorReply, BlipLimitExceeded, BlipProtocol, Message
from couchlite.transport.blip_connection import (
    BlipConnection,
    Reply,
    RequestTimeout,
)
from couchlite.transport.channel import ChannelClosed
from couchlite.transport.loopback import loopback_pair
from couchlite.transport.websocket import WebSocketChannel, connect_channel, serve_channels
from tests.transport.helpers import connected_pair, echo, run

pytestmark = pytest.mark.timeout(60)

BLOB = os.urandom(300_000) + bytes(700_000)  # incompressible part, then a compressible tail


async def _blob(message: Message) -> Reply:
    size = int(message.properties.get("size", len(BLOB)))
    return Reply({"Kind": "blob"}, BLOB[:size], compressed=message.bool_property("compress"))


async def _refuse(message: Message) -> Reply:
    raise BlipErrorReply("HTTP", 404, "no such blob")


@asynccontextmanager
async def websocket_pair(
    server_kwargs: dict[str, object] | None = None,
    client_kwargs: dict[str, object] | None = None,
) -> AsyncIterator[tuple[BlipConnection, asyncio.Future[BlipConnection]]]:
    """A client BlipConnection over a real WebSocket on 127.0.0.1 and (as a future) the
    server's; the server registers the blob and echo handlers."""
    loop = asyncio.get_running_loop()
    served: asyncio.Future[BlipConnection] = loop.create_future()

    async def handler(channel: WebSocketChannel) -> None:
        conn = BlipConnection(channel, name="server", **(server_kwargs or {}))  # type: ignore[arg-type]
        conn.register_handler("getAttachment", _blob)
        conn.register_handler("refuse", _refuse)
        conn.register_handler("echo", echo)
        served.set_result(conn)
        with suppress(Exception):  # how it ended is asserted through `served`
            await conn.run()

    async with await serve_channels(handler, "127.0.0.1", 0) as server:
        channel = await connect_channel(f"ws://127.0.0.1:{server.port}/db/_blipsync")
        client = BlipConnection(channel, name="client", **(client_kwargs or {}))  # type: ignore[arg-type]
        client.start()
        try:
            yield client, served
        finally:
            await client.close()


# ------------------------------------------------------------------ streamed replies


@pytest.mark.parametrize("compress", [False, True])
def test_streamed_reply_reaches_the_writer_in_order_over_websocket(compress: bool) -> None:
    async def main() -> None:
        async with websocket_pair() as (client, _):
            pieces: list[bytes] = []
            reply = await client.request_streamed(
                {"Profile": "getAttachment", "compress": "true" if compress else "false"},
                write=lambda view: pieces.append(bytes(view)),
                max_size=len(BLOB),
            )
            assert reply.properties == {"Kind": "blob"} and reply.body == b""
            assert b"".join(pieces) == BLOB
            assert len(pieces) > 1  # delivered as it arrived, not at the end in one piece
            assert client.protocol.buffered_bytes == 0
            # the connection goes on as usual afterwards
            assert (await client.request({"Profile": "echo"}, b"x")).body == b"x"

    run(main())


def test_streamed_reply_of_one_frame_and_of_an_empty_body() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            b.register_handler("getAttachment", _blob)
            for size in (0, 1, 100):
                pieces: list[bytes] = []
                reply = await a.request_streamed(
                    {"Profile": "getAttachment", "size": str(size)},
                    write=pieces.append,
                    max_size=size,
                )
                assert reply.properties == {"Kind": "blob"}
                assert b"".join(pieces) == BLOB[:size]

    run(main())


def test_streamed_request_answered_with_err_raises_and_writes_nothing() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            b.register_handler("refuse", _refuse)
            pieces: list[bytes] = []
            with pytest.raises(BlipErrorReply) as info:
                await a.request_streamed(
                    {"Profile": "refuse"}, write=lambda v: pieces.append(bytes(v)), max_size=10
                )
            assert (info.value.error_domain, info.value.code) == ("HTTP", 404)
            assert info.value.message == "no such blob" and pieces == []
            assert a.is_open

    run(main())


def test_streamed_reply_over_its_cap_closes_with_1009_over_websocket() -> None:
    async def main() -> None:
        async with websocket_pair() as (client, served):
            pieces: list[bytes] = []
            cap = 200_000
            with pytest.raises(BlipLimitExceeded) as info:
                await client.request_streamed(
                    {"Profile": "getAttachment"},
                    write=lambda view: pieces.append(bytes(view)),
                    max_size=cap,
                )
            assert info.value.limit == "max_size" and info.value.maximum == cap
            assert info.value.close_code == 1009
            assert sum(map(len, pieces)) <= cap  # never a byte beyond the cap
            await _closed(client)
            assert client.close_code == 1009 and isinstance(client.close_error, BlipLimitExceeded)
            server = await asyncio.wait_for(served, 10)
            await _closed(server)
            assert server.close_code == 1009

    run(main())


async def _closed(conn: BlipConnection) -> None:
    async with asyncio.timeout(10):
        while not conn.is_closed:
            await asyncio.sleep(0.01)


def test_a_failing_writer_fails_only_its_request() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            b.register_handler("getAttachment", _blob)
            b.register_handler("echo", echo)

            def write(view: memoryview) -> None:
                raise OSError(28, "No space left on device")

            with pytest.raises(OSError, match="No space"):
                await a.request_streamed(
                    {"Profile": "getAttachment"}, write=write, max_size=len(BLOB)
                )
            # The rest of that reply is drained and dropped; the connection stays usable.
            assert (await a.request({"Profile": "echo"}, b"ok")).body == b"ok"
            assert a.is_open

    run(main())


def test_streamed_reply_after_the_requester_gave_up_is_dropped() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            release = asyncio.Event()

            async def slow(message: Message) -> Reply:
                await release.wait()
                return Reply({}, BLOB)

            b.register_handler("slow", slow)
            b.register_handler("echo", echo)
            pieces: list[bytes] = []
            with pytest.raises(RequestTimeout):
                await a.request_streamed(
                    {"Profile": "slow"},
                    write=lambda v: pieces.append(bytes(v)),
                    max_size=len(BLOB),
                    timeout=0.05,
                )
            release.set()
            assert (await a.request({"Profile": "echo"}, b"later")).body == b"later"
            assert pieces == [] and a.protocol.buffered_bytes == 0

    run(main())


def test_request_streamed_validates_max_size() -> None:
    async def main() -> None:
        async with connected_pair() as (a, _, _, _):
            for bad in (-1, 1.5):
                with pytest.raises(ValueError):
                    await a.request_streamed({}, write=lambda v: None, max_size=bad)  # type: ignore[arg-type]

    run(main())


# ------------------------------------------------------------------ message-size limits


def test_message_over_max_message_size_closes_both_ends_with_1009_over_websocket() -> None:
    async def main() -> None:
        server_kwargs = {"max_message_size": 100_000}
        async with websocket_pair(server_kwargs) as (client, served):
            body = os.urandom(150_000)
            # The sender learns it from the close frame; the receiver has the typed error.
            with pytest.raises(ChannelClosed) as info:
                await client.request({"Profile": "echo"}, body)
            assert info.value.code == 1009 and "max_message_size" in info.value.reason
            server = await asyncio.wait_for(served, 10)
            await _closed(server)
            assert isinstance(server.close_error, BlipLimitExceeded)
            assert server.close_error.limit == "max_message_size"
            assert server.close_code == 1009 and client.close_code == 1009

    run(main())


def test_connection_builds_its_protocol_with_the_limits() -> None:
    async def main() -> None:
        a_chan, _ = loopback_pair()
        conn = BlipConnection(a_chan, max_message_size=1234, max_attachment_size=99)
        assert conn.protocol._max_message_size == 1234 and conn.max_attachment_size == 99
        default = BlipConnection(a_chan)
        assert default.protocol._max_message_size == 21 * 1024 * 1024
        assert default.max_attachment_size == 256 * 1024 * 1024
        with pytest.raises(ValueError):
            BlipConnection(a_chan, BlipProtocol(), max_message_size=10)
        for bad in ({"max_attachment_size": 0}, {"max_outbox_messages": 0}):
            with pytest.raises(ValueError):
                BlipConnection(a_chan, **bad)  # type: ignore[arg-type]

    run(main())


# ------------------------------------------------------------------ per-connection work


def test_outstanding_requests_are_bounded() -> None:
    async def main() -> None:
        async with connected_pair(max_outstanding_requests=3) as (a, b, _, _):
            release = asyncio.Event()
            running = 0
            peak = 0

            async def slow(message: Message) -> Reply:
                nonlocal running, peak
                running += 1
                peak = max(peak, running)
                await release.wait()
                running -= 1
                return Reply({}, message.body)

            b.register_handler("slow", slow)
            tasks = [
                asyncio.create_task(a.request({"Profile": "slow"}, b"%d" % i)) for i in range(10)
            ]
            for _ in range(50):
                await asyncio.sleep(0)
            assert len(a._pending) == 3 and peak == 3
            assert a.statistics()["outstanding_waits"] >= 7
            release.set()
            replies = await asyncio.gather(*tasks)
            assert [r.body for r in replies] == [b"%d" % i for i in range(10)]

    run(main())


def test_reader_stops_reading_when_the_peer_does_not_read_our_replies() -> None:
    """A peer that sends requests but never reads the replies: the out-box stops growing at
    max_outbox_messages, the reader stops reading (TCP pushes back on the peer), and after
    stalled_peer_timeout without progress the connection is closed with 1008."""

    async def main() -> None:
        a_chan, b_chan = loopback_pair(max_queue=4)
        server = BlipConnection(
            b_chan, name="server", max_outbox_messages=20, stalled_peer_timeout=0.5
        )
        server.register_handler("echo", echo)
        server.start()
        sender = BlipProtocol()  # the hostile peer: sends, never reads
        sent = 0
        try:
            async with asyncio.timeout(2):
                while True:
                    sender.send_request({"Profile": "echo"}, b"x" * 100)
                    frame = sender.next_frame()
                    assert frame is not None
                    await a_chan.send(frame)
                    sent += 1
        except (TimeoutError, ChannelClosed):
            pass
        # the server read a bounded number of requests, then stopped reading (a few handlers
        # started before the pause may still add their replies)
        stats = server.statistics()
        assert stats["reader_outbox_waits"] >= 1
        assert server.protocol.pending_messages <= 30
        assert stats["requests_received"] <= 30
        assert sent < 200
        await _closed(server)
        assert server.close_code == 1008
        assert isinstance(server.close_error, BlipLimitExceeded)
        assert server.close_error.limit == "max_outbox_messages"
        await a_chan.close()

    run(main(), timeout=30)


def test_a_reading_peer_is_never_throttled_by_the_outbox_limit() -> None:
    async def main() -> None:
        async with connected_pair(max_outbox_messages=5) as (a, b, _, _):
            b.register_handler("echo", echo)
            replies = await asyncio.gather(
                *(a.request({"Profile": "echo"}, b"%d" % i) for i in range(300))
            )
            assert [r.body for r in replies] == [b"%d" % i for i in range(300)]
            assert a.is_open and b.is_open

    run(main())
