"""BlipConnection over the in-memory channel pair (real BlipProtocol on both ends)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from couchlite.blip import BlipError, BlipErrorReply, BlipProtocol, Message
from couchlite.errors import DatabaseClosedError
from couchlite.transport.blip_connection import (
    BlipConnection,
    ConnectionClosedError,
    Reply,
    RequestTimeout,
)
from couchlite.transport.channel import ChannelClosed
from couchlite.transport.loopback import loopback_pair
from tests.transport.helpers import connected_pair, echo, run

pytestmark = pytest.mark.timeout(30)


def test_request_response_and_handlers_by_profile() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):

            async def upper(message: Message) -> Reply:
                return Reply({"Kind": "upper"}, message.body.upper(), compressed=True)

            b.register_handler("echo", echo)
            b.register_handler("upper", upper)
            reply = await a.request({"Profile": "echo", "x": "1"}, b"hello")
            assert reply.properties == {"Profile": "echo", "x": "1"}
            assert reply.body == b"hello"
            reply = await a.request({"Profile": "upper"}, b"hello", compressed=True)
            assert (reply.properties, reply.body) == ({"Kind": "upper"}, b"HELLO")
            # a handler returning None answers with an empty reply
            b.register_handler("nothing", lambda m: _none())
            reply = await a.request({"Profile": "nothing"})
            assert (reply.properties, reply.body) == ({}, b"")
            # both directions work on one connection
            a.register_handler("echo", echo)
            assert (await b.request({"Profile": "echo"}, b"back")).body == b"back"

    run(main())


async def _none() -> None:
    return None


def test_unknown_profile_gets_blip_404() -> None:
    async def main() -> None:
        async with connected_pair() as (a, _, _, _):
            with pytest.raises(BlipErrorReply) as info:
                await a.request({"Profile": "nope"})
            assert (info.value.error_domain, info.value.code) == ("BLIP", 404)
            assert info.value.message == "no handler for message"

    run(main())


def test_crashing_handler_gets_blip_501_and_connection_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):

            async def crash(message: Message) -> Reply:
                raise RuntimeError("boom")

            b.register_handler("crash", crash)
            b.register_handler("echo", echo)
            with pytest.raises(BlipErrorReply) as info:
                await a.request({"Profile": "crash"})
            assert (info.value.error_domain, info.value.code) == ("BLIP", 501)
            assert info.value.message == "unexpected exception"
            assert (await a.request({"Profile": "echo"}, b"still here")).body == b"still here"
            assert b.statistics()["handler_errors"] == 1

    run(main())
    assert any("boom" in (r.exc_text or "") for r in caplog.records)


def test_a_handler_meeting_a_closed_database_answers_503_without_an_error_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):

            async def closed(message: Message) -> Reply:
                raise DatabaseClosedError("the database is closed")

            b.register_handler("closed", closed)
            with pytest.raises(BlipErrorReply) as info:
                await a.request({"Profile": "closed"})
            assert (info.value.error_domain, info.value.code) == ("HTTP", 503)
            assert b.statistics()["handler_errors"] == 0

    with caplog.at_level(logging.INFO):
        run(main())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("database is closed" in r.getMessage() for r in caplog.records)


def test_blip_error_reply_round_trip() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):

            async def refuse(message: Message) -> Reply:
                raise BlipErrorReply("HTTP", 409, "conflict")

            async def odd_domain(message: Message) -> Reply:
                raise BlipErrorReply("mbedTLS", -9984, "x509 failure")

            b.register_handler("refuse", refuse)
            b.register_handler("odd", odd_domain)
            with pytest.raises(BlipErrorReply) as info:
                await a.request({"Profile": "refuse"})
            assert (info.value.error_domain, info.value.code, info.value.message) == (
                "HTTP",
                409,
                "conflict",
            )
            with pytest.raises(BlipErrorReply) as info:
                await a.request({"Profile": "odd"})
            assert (info.value.error_domain, info.value.code) == ("mbedTLS", -9984)

    run(main())


def test_no_reply_requests_are_handled_and_never_answered() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            got: list[bytes] = []
            done = asyncio.Event()

            async def sink(message: Message) -> Reply:
                got.append(message.body)
                if len(got) == 20:
                    done.set()
                # a reply to a no-reply request must be dropped, not sent
                return Reply({"ignored": "1"}, b"ignored")

            async def crash(message: Message) -> Reply:
                raise RuntimeError("no-reply crash")

            b.register_handler("sink", sink)
            b.register_handler("crash", crash)
            await a.send_no_reply({"Profile": "crash"})
            await a.send_no_reply({"Profile": "unknown"})
            for i in range(20):
                await a.send_no_reply({"Profile": "sink"}, b"%d" % i)
            await asyncio.wait_for(done.wait(), 5)
            assert got == [b"%d" % i for i in range(20)]
            # a request after them proves nothing else came back (a stray reply would be a
            # fatal "answers no pending request" error on a's side)
            b.register_handler("echo", echo)
            assert (await a.request({"Profile": "echo"}, b"ok")).body == b"ok"
            assert a.statistics()["responses_received"] == 1
            assert a.statistics()["errors_received"] == 0

    run(main())


def test_many_concurrent_requests() -> None:
    async def main() -> None:
        async with connected_pair(max_concurrent_handlers=8) as (a, b, _, _):
            running = 0
            peak = 0

            async def slow_echo(message: Message) -> Reply:
                nonlocal running, peak
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0)
                running -= 1
                return Reply({}, message.body)

            b.register_handler("echo", slow_echo)
            bodies = [b"%05d" % i * (i % 7 + 1) for i in range(500)]
            replies = await asyncio.gather(
                *(
                    a.request({"Profile": "echo"}, body, compressed=bool(i % 2))
                    for i, body in enumerate(bodies)
                )
            )
            assert [r.body for r in replies] == bodies
            assert 1 <= peak <= 8

    run(main())


def test_large_body_flows_with_acks() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            b.register_handler("echo", echo)
            body = bytes(range(256)) * 4096  # 1 MiB
            reply = await a.request({"Profile": "echo"}, memoryview(body))
            assert reply.body == body
            stats = a.statistics()["blip"]
            assert stats["acks_received"] > 0 and stats["acks_sent"] > 0

    run(main())


def test_request_timeout() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            release = asyncio.Event()

            async def stall(message: Message) -> Reply:
                await release.wait()
                return Reply()

            b.register_handler("stall", stall)
            with pytest.raises(RequestTimeout):
                await a.request({"Profile": "stall"}, timeout=0.05)
            release.set()
            # the late reply is dropped quietly; the connection keeps working
            b.register_handler("echo", echo)
            assert (await a.request({"Profile": "echo"}, b"x")).body == b"x"

    run(main())


def test_close_propagates_and_fails_pending_requests() -> None:
    async def main() -> None:
        a_chan, b_chan = loopback_pair()
        a = BlipConnection(a_chan, BlipProtocol())
        b = BlipConnection(b_chan, BlipProtocol())
        a.start()
        b.start()
        entered = asyncio.Event()

        async def stall(message: Message) -> Reply:
            entered.set()
            await asyncio.sleep(60)
            return Reply()

        b.register_handler("stall", stall)
        pending = asyncio.create_task(a.request({"Profile": "stall"}))
        await asyncio.wait_for(entered.wait(), 5)
        await b.close(4001, "going for a walk")
        with pytest.raises(ChannelClosed) as info:
            await asyncio.wait_for(pending, 5)
        assert info.value.code == 4001 and info.value.is_transient
        with pytest.raises(ChannelClosed):
            await a.wait_closed(timeout=5)
        assert a.close_code == 4001 and a.close_reason == "going for a walk"
        assert isinstance(a.close_error, ChannelClosed)
        await b.wait_closed(timeout=5)  # locally requested: not an error
        assert b.close_error is None
        with pytest.raises(ConnectionClosedError):
            await b.request({"Profile": "echo"})
        with pytest.raises(ChannelClosed):
            await a.send_no_reply({"Profile": "echo"})

    run(main())


def test_normal_close_flushes_queued_messages() -> None:
    async def main() -> None:
        a_chan, b_chan = loopback_pair()
        a = BlipConnection(a_chan, BlipProtocol())
        b = BlipConnection(b_chan, BlipProtocol())
        got: list[bytes] = []

        async def sink(message: Message) -> None:
            got.append(message.body)

        b.register_handler("sink", sink)
        b.start()
        async with a:
            for i in range(50):
                await a.send_no_reply({"Profile": "sink"}, b"%d" % i)
        await b.wait_closed(timeout=5)
        assert b.close_code == 1000 and b.close_error is None
        assert len(got) == 50

    run(main())


def test_fatal_blip_error_closes_with_its_code() -> None:
    async def main() -> None:
        raw, b_chan = loopback_pair()
        b = BlipConnection(b_chan, BlipProtocol())
        b.start()
        pending = asyncio.create_task(b.request({"Profile": "never answered"}))
        await raw.recv()  # b's request reached the wire
        # request #7 when #1 is expected: fatal numbering error (1011)
        await raw.send(bytes([7, 0]) + b"\x00" + b"\x00\x00\x00\x00")
        with pytest.raises(BlipError) as info:
            await b.wait_closed(timeout=5)
        # the pending request fails with the same typed error
        with pytest.raises(BlipError):
            await asyncio.wait_for(pending, 5)
        assert info.value.close_code == 1011
        assert isinstance(b.close_error, BlipError)
        with pytest.raises(ChannelClosed) as closed:
            await raw.recv()
        assert closed.value.code == 1011
        assert "request number" in closed.value.reason

    run(main())


def test_back_pressure_when_the_peer_stops_reading() -> None:
    async def main() -> None:
        a_chan, b_chan = loopback_pair(max_queue=4)
        a = BlipConnection(a_chan, BlipProtocol(), max_pending_messages=10)
        a.start()
        # b_chan is never read: the peer has stopped reading
        sent = 0

        async def flood() -> None:
            nonlocal sent
            for i in range(10_000):
                await a.send_no_reply({"Profile": "x"}, b"y" * 300, timeout=None)
                sent = i + 1

        task = asyncio.create_task(flood())
        for _ in range(200):
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        assert not task.done()
        stats = a.statistics()
        # bounded: 4 frames in the channel, at most 10 messages in the protocol, one in hand
        assert b_chan.queued == 4
        assert stats["pending_messages"] <= 10
        assert sent <= 4 + 10 + 1
        assert stats["sender_waits"] >= 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await a.close(1001, "done")

    run(main())


def test_urgent_message_overtakes_bulk_on_loopback() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            b.register_handler("echo", echo)
            order: list[str] = []

            async def call(tag: str, body: bytes, urgent: bool) -> None:
                await a.request({"Profile": "echo"}, body, urgent=urgent)
                order.append(tag)

            bulk = asyncio.create_task(call("bulk", b"z" * 2_000_000, False))
            await asyncio.sleep(0)
            await call("urgent", b"ping", True)
            await bulk
            assert order == ["urgent", "bulk"]

    run(main())


def test_sends_waiting_for_back_pressure_finish_in_order_even_if_the_caller_is_cancelled() -> None:
    async def main() -> None:
        a_chan, b_chan = loopback_pair(max_queue=2)
        a = BlipConnection(a_chan, BlipProtocol(), name="a")
        a.start()
        # Nobody reads b_chan yet: the third frame's send has to wait (and is handed over).
        for i in range(6):
            await a.send_no_reply({"Profile": "sink"}, b"%d" % i)
        stuck = asyncio.create_task(a.request({"Profile": "echo"}, b"cancelled"))
        await asyncio.sleep(0.01)
        assert b_chan.queued == 2 and not stuck.done()
        stuck.cancel()  # the caller goes away; its frame is already committed to the stream
        await asyncio.gather(stuck, return_exceptions=True)

        b = BlipConnection(b_chan, BlipProtocol(), name="b")
        seen: list[bytes] = []

        async def sink(message: Message) -> None:
            seen.append(message.body)

        b.register_handler("sink", sink)
        b.register_handler("echo", echo)
        b.start()
        reply = await a.request({"Profile": "echo"}, b"after")
        assert reply.body == b"after"  # the stream (numbering, CRC) is intact
        assert seen == [b"%d" % i for i in range(6)]
        await a.close()
        await b.close()

    run(main())


def test_requests_arriving_together_still_run_their_handlers_concurrently() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            released = asyncio.Event()
            all_done = asyncio.Event()
            finished: list[str] = []

            def done(tag: str) -> None:
                finished.append(tag)
                if len(finished) == 5:
                    all_done.set()

            async def block(message: Message) -> None:
                await released.wait()  # only the last request of the burst releases us
                done("block")

            async def release(message: Message) -> None:
                released.set()
                done("release")

            async def sync(message: Message) -> None:
                done("sync")

            b.register_handler("block", block)
            b.register_handler("release", release)
            b.register_handler("sync", sync)
            # No await below suspends: all five frames reach b's reader in one go.
            for profile in ("block", "sync", "block", "sync", "release"):
                await a.send_no_reply({"Profile": profile})
            await asyncio.wait_for(all_done.wait(), 5)
            assert finished.index("release") < finished.index("block")
            assert sorted(finished) == ["block", "block", "release", "sync", "sync"]
            await asyncio.sleep(0)
            assert b.statistics()["running_handlers"] == 0

    run(main())
