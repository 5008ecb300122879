"""The retry supervisor against real WebSocket servers on 127.0.0.1 (the engine stubbed out).

Each test runs its own event loop; backoff waits go to a fake clock, so retries are instant and
the delays asked for can be checked exactly.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.server import serve as ws_serve

from couchlite import (
    AuthenticationError,
    BasicAuthenticator,
    Database,
    NetworkError,
    ProtocolError,
    ReplicatorActivityLevel,
    ReplicatorChange,
    ReplicatorConfiguration,
    UrlEndpoint,
)
from couchlite.errors import NetworkCode
from couchlite.replicator.replicator import AsyncReplicator
from couchlite.transport.channel import ChannelClosed
from couchlite.transport.websocket import (
    HandshakeRefused,
    HandshakeRejection,
    HandshakeRequest,
    WebSocketChannel,
    serve_channels,
)

from .helpers import BlockedClock, FakeClock, StubSession, closed_port, run
from .helpers import hold as _hold

Level = ReplicatorActivityLevel


def _config(db: Database, port: int, **options: Any) -> ReplicatorConfiguration:
    config = ReplicatorConfiguration(UrlEndpoint(f"ws://127.0.0.1:{port}/db"), **options)
    config.add_collection(db.default_collection())
    return config


def _replicator(config: ReplicatorConfiguration, clock: Any = None) -> AsyncReplicator:
    return AsyncReplicator(config, clock=clock or FakeClock(), _session_factory=StubSession)


def _activities(changes: list[ReplicatorChange]) -> list[Level]:
    levels: list[Level] = []
    for change in changes:
        if not levels or levels[-1] is not change.status.activity:
            levels.append(change.status.activity)
    return levels


def test_one_shot_success_and_request(db: Database) -> None:
    seen: list[HandshakeRequest] = []

    async def main() -> None:
        async with await serve_channels(_hold, "127.0.0.1", 0, process_request=seen.append) as srv:
            config = _config(db, srv.port, headers={"X-Trace": "t1"})
            config.authenticator = BasicAuthenticator("valid.user", "valid.pass")
            repl = _replicator(config)
            changes: list[ReplicatorChange] = []
            repl.add_change_listener(changes.append)
            await repl.start()
            status = await repl.wait_for(Level.STOPPED)
            assert status.error is None
            await asyncio.sleep(0)  # listener deliveries are dispatched with call_soon
            assert _activities(changes) == [Level.CONNECTING, Level.BUSY, Level.STOPPED]
            assert all(c.replicator is repl for c in changes)
            assert repl.connection_attempts == 1
            assert repl.server_certificate is None  # not TLS

    run(main())
    assert len(seen) == 1
    request = seen[0]
    assert request.path == "/db/_blipsync"
    assert request.header("Authorization") == "Basic dmFsaWQudXNlcjp2YWxpZC5wYXNz"
    assert request.header("X-Trace") == "t1"
    assert (request.header("User-Agent") or "").startswith("couchlite/")
    assert request.header("Sec-WebSocket-Protocol") == "BLIP_3+CBMobile_3, BLIP_3+CBMobile_2"


def test_user_agent_override(db: Database) -> None:
    seen: list[HandshakeRequest] = []

    async def main() -> None:
        async with await serve_channels(_hold, "127.0.0.1", 0, process_request=seen.append) as srv:
            repl = _replicator(_config(db, srv.port, headers={"User-Agent": "app/1"}))
            await repl.start()
            await repl.wait_for(Level.STOPPED)

    run(main())
    assert seen[0].header("User-Agent") == "app/1"


def test_401_stops_without_retry(db: Database) -> None:
    seen: list[HandshakeRequest] = []

    def refuse(request: HandshakeRequest) -> HandshakeRejection:
        seen.append(request)
        return HandshakeRejection(401, headers=(("WWW-Authenticate", 'Basic charset="UTF-8"'),))

    async def main() -> None:
        async with await serve_channels(_hold, "127.0.0.1", 0, process_request=refuse) as srv:
            clock = FakeClock()
            repl = _replicator(_config(db, srv.port), clock)
            await repl.start()
            with pytest.raises(AuthenticationError):
                await repl.wait_for(Level.IDLE)
            assert repl.status.activity is Level.STOPPED
            assert isinstance(repl.status.error, AuthenticationError)
            assert repl.status.error.code == 401
            # wait_for(STOPPED) returns the final status, error included
            assert (await repl.wait_for(Level.STOPPED)).error is repl.status.error
            assert clock.delays == []

    run(main())
    assert len(seen) == 1


def test_503_goes_offline_and_retries(db: Database) -> None:
    attempts: list[HandshakeRequest] = []

    def unavailable(request: HandshakeRequest) -> HandshakeRejection | None:
        attempts.append(request)
        return HandshakeRejection(503, "busy") if len(attempts) <= 2 else None

    async def main() -> None:
        async with await serve_channels(_hold, "127.0.0.1", 0, process_request=unavailable) as srv:
            clock = FakeClock()
            repl = _replicator(_config(db, srv.port), clock)
            changes: list[ReplicatorChange] = []
            repl.add_change_listener(changes.append)
            await repl.start()
            status = await repl.wait_for(Level.STOPPED)
            await asyncio.sleep(0)
            assert status.error is None
            assert clock.delays == [1.0, 2.0]
            assert repl.connection_attempts == 3
            offline = [c.status for c in changes if c.status.activity is Level.OFFLINE]
            assert len(offline) == 2
            assert all(isinstance(s.error, HandshakeRefused) for s in offline)
            assert all(s.error is not None and s.error.code == 503 for s in offline)
            assert _activities(changes) == [
                Level.CONNECTING,
                Level.OFFLINE,
                Level.CONNECTING,
                Level.OFFLINE,
                Level.CONNECTING,
                Level.BUSY,
                Level.STOPPED,
            ]

    run(main())
    assert len(attempts) == 3


def test_403_is_permanent(db: Database) -> None:
    async def main() -> None:
        refuse = lambda _r: HandshakeRejection(403, "forbidden")  # noqa: E731
        async with await serve_channels(_hold, "127.0.0.1", 0, process_request=refuse) as srv:
            clock = FakeClock()
            repl = _replicator(_config(db, srv.port), clock)
            await repl.start()
            status = await repl.wait_for(Level.STOPPED)
            assert isinstance(status.error, HandshakeRefused) and status.error.code == 403
            assert not status.error.is_transient
            assert clock.delays == [] and repl.connection_attempts == 1

    run(main())


def test_no_common_subprotocol_is_permanent(db: Database) -> None:
    async def main() -> None:
        async with await serve_channels(
            _hold, "127.0.0.1", 0, subprotocols=("BLIP_3+CBMobile_9",)
        ) as srv:
            repl = _replicator(_config(db, srv.port))
            await repl.start()
            status = await repl.wait_for(Level.STOPPED)
            assert isinstance(status.error, HandshakeRefused) and status.error.code == 400
            assert repl.connection_attempts == 1

    run(main())


def test_server_without_subprotocol_is_a_protocol_error(db: Database) -> None:
    async def handler(connection: Any) -> None:
        await connection.wait_closed()

    async def main() -> None:
        async with ws_serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            repl = _replicator(_config(db, port))
            await repl.start()
            status = await repl.wait_for(Level.STOPPED)
            assert isinstance(status.error, ProtocolError)
            assert repl.connection_attempts == 1

    run(main())


def test_connection_refused_retries_up_to_max_attempts(db: Database) -> None:
    async def main() -> None:
        clock = FakeClock()
        repl = _replicator(_config(db, closed_port(), max_attempts=4), clock)
        await repl.start()
        status = await repl.wait_for(Level.STOPPED)
        assert isinstance(status.error, NetworkError) and status.error.is_transient
        assert status.error.code == NetworkCode.CONNECTION_REFUSED
        assert repl.connection_attempts == 4
        assert clock.delays == [1.0, 2.0, 4.0]

    run(main())


def test_default_max_attempts_and_cap(db: Database) -> None:
    async def main() -> None:
        clock = FakeClock()
        repl = _replicator(_config(db, closed_port(), max_attempt_wait_time=5.0), clock)
        await repl.start()
        await repl.wait_for(Level.STOPPED)
        assert repl.connection_attempts == 10  # one-shot default
        assert clock.delays == [1.0, 2.0, 4.0] + [5.0] * 6

    run(main())


def test_max_attempts_one_means_no_retry(db: Database) -> None:
    async def main() -> None:
        clock = FakeClock()
        repl = _replicator(_config(db, closed_port(), max_attempts=1), clock)
        await repl.start()
        await repl.wait_for(Level.STOPPED)
        assert repl.connection_attempts == 1 and clock.delays == []

    run(main())


def test_stop_during_backoff_is_prompt(db: Database) -> None:
    async def main() -> None:
        clock = BlockedClock()
        repl = _replicator(_config(db, closed_port(), continuous=True), clock)
        await repl.start()
        await asyncio.wait_for(clock.sleeping.wait(), 10)
        assert repl.status.activity is Level.OFFLINE
        await repl.stop()  # the clock never wakes: only the stop can end the wait
        assert repl.status.activity is Level.STOPPED
        assert repl.status.error is None

    run(main())


def test_stop_during_real_backoff(db: Database) -> None:
    async def main() -> None:
        config = _config(db, closed_port(), continuous=True)
        repl = AsyncReplicator(config, _session_factory=StubSession)  # the real clock
        await repl.start()
        await repl.wait_for(Level.OFFLINE, timeout=10)
        await repl.stop()
        assert repl.status.activity is Level.STOPPED

    run(main())


def test_stop_while_connecting(db: Database) -> None:
    async def main() -> None:
        started, release = asyncio.Event(), asyncio.Event()

        async def slow(_request: HandshakeRequest) -> None:
            started.set()
            await release.wait()  # no answer to the upgrade until the test is over

        async with await serve_channels(_hold, "127.0.0.1", 0, process_request=slow) as srv:
            repl = _replicator(_config(db, srv.port))
            await repl.start()
            await asyncio.wait_for(started.wait(), 10)
            assert repl.status.activity is Level.CONNECTING
            await repl.stop()
            assert repl.status.activity is Level.STOPPED and repl.status.error is None
            release.set()

    run(main())


def test_continuous_reconnects_after_peer_goes_away(db: Database) -> None:
    connections: list[WebSocketChannel] = []

    async def handler(channel: WebSocketChannel) -> None:
        connections.append(channel)
        if len(connections) == 1:
            await channel.close(1001, "going away")
            return
        await _hold(channel)

    async def main() -> None:
        async with await serve_channels(handler, "127.0.0.1", 0) as srv:
            clock = FakeClock()
            repl = _replicator(_config(db, srv.port, continuous=True), clock)
            changes: list[ReplicatorChange] = []
            repl.add_change_listener(changes.append)
            await repl.start()
            await repl.wait_for(Level.OFFLINE)
            offline = repl.status
            assert isinstance(offline.error, ChannelClosed) and offline.error.code == 1001
            status = await repl.wait_for(Level.IDLE)
            while repl.connection_attempts < 2:
                status = await repl.wait_for(Level.IDLE)
            assert status.error is None
            assert clock.delays == [1.0]
            await repl.stop()
            await asyncio.sleep(0)
            assert _activities(changes)[-1] is Level.STOPPED

    run(main())


def test_changes_iterator_and_context_manager(db: Database) -> None:
    async def main() -> None:
        async with await serve_channels(_hold, "127.0.0.1", 0) as srv:
            async with _replicator(_config(db, srv.port, continuous=True)) as repl:
                await repl.start()
                levels = []
                async for change in repl.changes():
                    levels.append(change.status.activity)
                    if change.status.activity is Level.IDLE:
                        break
                assert levels[-1] is Level.IDLE
            assert repl.status.activity is Level.STOPPED
            # once stopped, an iterator yields the final status and ends
            assert [c.status.activity async for c in repl.changes()] == [Level.STOPPED]

    run(main())


def test_wait_for_times_out(db: Database) -> None:
    async def main() -> None:
        repl = _replicator(_config(db, closed_port(), continuous=True), BlockedClock())
        await repl.start()
        with pytest.raises(TimeoutError):
            await repl.wait_for(Level.IDLE, timeout=0.05)
        await repl.stop()
        assert (await repl.wait_for(Level.STOPPED, timeout=1)).activity is Level.STOPPED

    run(main())


def test_restart_after_stop(db: Database) -> None:
    async def main() -> None:
        async with await serve_channels(_hold, "127.0.0.1", 0) as srv:
            repl = _replicator(_config(db, srv.port))
            for _ in range(2):
                await repl.start()
                status = await repl.wait_for(Level.STOPPED)
                assert status.error is None
            await repl.start()
            await repl.start()  # already running: ignored
            await repl.wait_for(Level.STOPPED)

    run(main())
