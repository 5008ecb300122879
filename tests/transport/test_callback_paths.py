"""The connection's task-free paths: synchronous handlers (with :class:`Deferred` replies) and
requests answered through a callback (``request_later``), over the in-memory channel pair."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import CouchliteError, DatabaseClosedError
from couchlite.transport.blip_connection import (
    ConnectionClosedError,
    Deferred,
    Reply,
    RequestTimeout,
)
from tests.transport.helpers import connected_pair, echo, run

pytestmark = pytest.mark.timeout(30)


class Outcomes:
    """Collects what ``request_later`` callbacks receive; ``wait`` until ``n`` arrived."""

    def __init__(self) -> None:
        self.items: list[tuple[Message | None, Exception | None]] = []
        self._arrived = asyncio.Event()

    def __call__(self, reply: Message | None, error: Exception | None) -> None:
        self.items.append((reply, error))
        self._arrived.set()

    async def wait(self, n: int) -> None:
        async with asyncio.timeout(10):
            while len(self.items) < n:
                self._arrived.clear()
                await self._arrived.wait()


def test_deferred_settles_once_and_calls_a_late_waiter_at_once() -> None:
    seen: list[tuple[Reply | None, Exception | None]] = []
    deferred = Deferred()
    deferred.then(lambda reply, error: seen.append((reply, error)))
    deferred.resolve(Reply(body=b"x"))
    deferred.fail(ValueError("ignored"))  # settled already
    deferred.resolve(Reply(body=b"y"))
    assert seen == [(Reply(body=b"x"), None)]
    late: list[tuple[Reply | None, Exception | None]] = []
    deferred.then(lambda reply, error: late.append((reply, error)))
    assert late == [(Reply(body=b"x"), None)]
    failed = Deferred()
    error = ValueError("no")
    failed.fail(error)
    failed.then(lambda reply, exc: late.append((reply, exc)))
    assert late[-1] == (None, error)


def test_sync_handler_answers_at_once_raises_or_returns_nothing() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):

            def upper(message: Message) -> Reply:
                return Reply({"Kind": "upper"}, message.body.upper())

            def refuse(message: Message) -> None:
                raise BlipErrorReply("HTTP", 409, "conflict")

            def crash(message: Message) -> None:
                raise RuntimeError("bug")

            b.register_sync_handler("upper", upper)
            b.register_sync_handler("refuse", refuse)
            b.register_sync_handler("crash", crash)
            b.register_sync_handler("nothing", lambda message: None)
            reply = await a.request({"Profile": "upper"}, b"hi")
            assert (reply.properties, reply.body) == ({"Kind": "upper"}, b"HI")
            with pytest.raises(BlipErrorReply) as info:
                await a.request({"Profile": "refuse"})
            assert (info.value.error_domain, info.value.code) == ("HTTP", 409)
            with pytest.raises(BlipErrorReply) as info:
                await a.request({"Profile": "crash"})
            assert (info.value.error_domain, info.value.code) == ("BLIP", 501)
            assert b.statistics()["handler_errors"] == 1
            reply = await a.request({"Profile": "nothing"})
            assert (reply.properties, reply.body) == ({}, b"")
            assert b.statistics()["running_handlers"] == 0

    logging.disable(logging.ERROR)  # the crash is logged with its traceback
    try:
        run(main())
    finally:
        logging.disable(logging.NOTSET)


def test_registering_one_kind_of_handler_replaces_the_other() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            b.register_sync_handler("p", lambda message: Reply(body=b"sync"))
            assert (await a.request({"Profile": "p"})).body == b"sync"
            b.register_handler("p", echo)
            assert (await a.request({"Profile": "p"}, b"async")).body == b"async"
            b.register_sync_handler("p", lambda message: Reply(body=b"sync again"))
            assert (await a.request({"Profile": "p"})).body == b"sync again"
            b.unregister_handler("p")
            with pytest.raises(BlipErrorReply) as info:
                await a.request({"Profile": "p"})
            assert info.value.code == 404

    run(main())


def test_deferred_reply_holds_its_slot_until_settled() -> None:
    async def main() -> None:
        async with connected_pair(max_concurrent_handlers=2) as (a, b, _, _):
            held: list[Deferred] = []

            def later(message: Message) -> Deferred:
                deferred = Deferred()
                held.append(deferred)
                return deferred

            b.register_sync_handler("later", later)
            first = asyncio.create_task(a.request({"Profile": "later"}, b"1"))
            second = asyncio.create_task(a.request({"Profile": "later"}, b"2"))
            third = asyncio.create_task(a.request({"Profile": "later"}, b"3"))
            async with asyncio.timeout(10):
                while len(held) < 2:
                    await asyncio.sleep(0.01)
            # both slots are held: the third request waits unread
            await asyncio.sleep(0.05)
            assert len(held) == 2
            assert b.statistics()["running_handlers"] == 2
            held[0].resolve(Reply(body=b"one"))
            assert (await first).body == b"one"
            async with asyncio.timeout(10):
                while len(held) < 3:
                    await asyncio.sleep(0.01)
            held[1].fail(BlipErrorReply("HTTP", 422, "no base"))
            with pytest.raises(BlipErrorReply) as info:
                await second
            assert info.value.code == 422
            held[2].fail(DatabaseClosedError("closed"))  # answered "try again later"
            with pytest.raises(BlipErrorReply) as info:
                await third
            assert (info.value.error_domain, info.value.code) == ("HTTP", 503)
            assert b.statistics()["running_handlers"] == 0

    run(main())


def test_sync_handler_hands_a_coroutine_to_a_task() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            gate = asyncio.Event()

            async def slow(message: Message) -> Reply:
                await gate.wait()
                return Reply(body=message.body + b"!")

            async def slow_refusal() -> Reply:
                raise BlipErrorReply("HTTP", 400, "bad")

            def handler(message: Message) -> Any:
                return slow(message) if message.body else slow_refusal()

            b.register_sync_handler("slow", handler)
            pending = asyncio.create_task(a.request({"Profile": "slow"}, b"x"))
            # another request is served while the first one waits in its task
            with pytest.raises(BlipErrorReply) as info:
                await a.request({"Profile": "slow"})
            assert info.value.code == 400
            assert b.statistics()["running_handlers"] == 1
            gate.set()
            assert (await pending).body == b"x!"
            assert b.statistics()["running_handlers"] == 0

    run(main())


def test_a_waiting_coroutine_is_cancelled_with_the_connection_and_frees_its_slot() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            started = asyncio.Event()
            cancelled = asyncio.Event()

            async def forever() -> Reply:
                started.set()
                try:
                    await asyncio.Event().wait()
                finally:
                    cancelled.set()
                return Reply()

            b.register_sync_handler("forever", lambda message: forever())
            pending = asyncio.create_task(a.request({"Profile": "forever"}))
            async with asyncio.timeout(10):
                await started.wait()
            await b.close()
            async with asyncio.timeout(10):
                await cancelled.wait()
            assert b.statistics()["running_handlers"] == 0
            with pytest.raises(ConnectionClosedError):
                await pending

    run(main())


def test_request_later_delivers_replies_and_errors_to_its_callback() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):

            def refuse(message: Message) -> None:
                raise BlipErrorReply("HTTP", 409, "conflict")

            b.register_handler("echo", echo)
            b.register_sync_handler("refuse", refuse)
            outcomes = Outcomes()
            assert a.request_later({"Profile": "echo"}, b"one", outcomes, compressed=True)
            assert a.request_later({"Profile": "refuse"}, b"", outcomes)
            await outcomes.wait(2)
            by_kind = {reply is not None: (reply, error) for reply, error in outcomes.items}
            reply, error = by_kind[True]
            assert reply is not None and reply.body == b"one" and error is None
            reply, error = by_kind[False]
            assert reply is None and isinstance(error, BlipErrorReply) and error.code == 409
            assert a.statistics()["pending_requests"] == 0

    run(main())


def test_request_later_times_out_and_fails_when_the_connection_ends() -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            b.register_sync_handler("never", lambda message: Deferred())
            outcomes = Outcomes()
            assert a.request_later({"Profile": "never"}, b"", outcomes, timeout=0.05)
            await outcomes.wait(1)
            assert outcomes.items[0][0] is None
            assert isinstance(outcomes.items[0][1], RequestTimeout)
            assert a.statistics()["pending_requests"] == 0
            # a request still unanswered when the connection ends gets its end
            assert a.request_later({"Profile": "never"}, b"", outcomes, timeout=None)
            await a.close()
            await outcomes.wait(2)
            assert outcomes.items[1][0] is None
            assert isinstance(outcomes.items[1][1], CouchliteError)
            with pytest.raises(ConnectionClosedError):
                a.request_later({"Profile": "never"}, b"", outcomes)

    run(main())


def test_request_later_refuses_to_wait_when_too_many_requests_are_outstanding() -> None:
    async def main() -> None:
        async with connected_pair(max_outstanding_requests=2) as (a, b, _, _):
            held: list[Deferred] = []

            def later(message: Message) -> Deferred:
                held.append(Deferred())
                return held[-1]

            b.register_sync_handler("later", later)
            outcomes = Outcomes()
            assert a.request_later({"Profile": "later"}, b"", outcomes)
            assert a.request_later({"Profile": "later"}, b"", outcomes)
            sent = a.statistics()["requests_sent"]
            assert not a.request_later({"Profile": "later"}, b"", outcomes)
            assert a.statistics()["requests_sent"] == sent  # nothing was queued
            async with asyncio.timeout(10):
                while len(held) < 2:
                    await asyncio.sleep(0.01)
            for deferred in held:
                deferred.resolve()
            await outcomes.wait(2)
            assert a.request_later({"Profile": "later"}, b"", outcomes)

    run(main())


def test_a_failing_reply_callback_is_logged_and_the_connection_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with connected_pair() as (a, b, _, _):
            b.register_handler("echo", echo)

            def broken(reply: Message | None, error: Exception | None) -> None:
                raise RuntimeError("callback bug")

            assert a.request_later({"Profile": "echo"}, b"x", broken)
            # the reader survived: a later request still gets its reply
            assert (await a.request({"Profile": "echo"}, b"y")).body == b"y"

    with caplog.at_level(logging.ERROR, logger="couchlite.transport.blip_connection"):
        run(main())
    assert any("reply callback" in r.getMessage() for r in caplog.records)
