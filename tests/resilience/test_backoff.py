"""The retry supervisor as the status shows it: backoff delays and the next attempt's time
(with a fake clock, never timed), the failure count reset by a reconnection, permanent errors
not retried, and stop() while waiting."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from couchlite import (
    AuthenticationError,
    BasicAuthenticator,
    Database,
    ListenerPasswordAuthenticator,
    ReplicatorActivityLevel,
    ReplicatorChange,
    ReplicatorStatus,
)
from couchlite.replicator.replicator import AsyncReplicator
from couchlite.transport.channel import ChannelClosed
from couchlite.transport.websocket import (
    HandshakeRefused,
    HandshakeRejection,
    HandshakeRequest,
    WebSocketChannel,
    serve_channels,
)

from ..replicator_api.helpers import BlockedClock, StubSession, closed_port
from .helpers import FastClock, peers, replicator_config, run

Level = ReplicatorActivityLevel


def _offline(changes: list[ReplicatorChange]) -> list[ReplicatorStatus]:
    return [c.status for c in changes if c.status.activity is Level.OFFLINE]


def test_backoff_delays_and_next_attempt_in_the_status(db: Database) -> None:
    async def main() -> None:
        clock = FastClock(pause=0)
        config = replicator_config(db, closed_port(), max_attempts=7, max_attempt_wait_time=8.0)
        config.continuous = False
        repl = AsyncReplicator(config, clock=clock, _session_factory=StubSession)
        changes: list[ReplicatorChange] = []
        repl.add_change_listener(changes.append)
        await repl.start()
        final = await repl.wait_for(Level.STOPPED)
        await asyncio.sleep(0)
        offline = _offline(changes)
        # 1, 2, 4 ... capped at max_attempt_wait_time; no wait after the last attempt
        assert [s.retry_in for s in offline] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
        assert clock.delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
        # next_attempt_at is in the clock's time: when each wait started plus its delay
        started = 1_000_000.0
        expected = []
        for delay in clock.delays:
            expected.append(started + delay)
            started += delay
        assert [s.next_attempt_at for s in offline] == expected
        assert all(s.error is not None and s.error.is_transient for s in offline)
        # outside OFFLINE the fields are empty
        others = [c.status for c in changes if c.status.activity is not Level.OFFLINE]
        assert all(s.retry_in is None and s.next_attempt_at is None for s in others)
        assert final.retry_in is None and final.error is not None
        assert repl.connection_attempts == 7

    run(main())


def test_failure_count_resets_after_a_reconnection(db: Database) -> None:
    # attempts 1-3 refused (503), 4 opens and is closed at once (1001), 5-6 refused, 7 holds
    requests: list[HandshakeRequest] = []

    def gate(request: HandshakeRequest) -> HandshakeRejection | None:
        requests.append(request)
        return None if len(requests) in (4, 7) else HandshakeRejection(503, "busy")

    async def handler(channel: WebSocketChannel) -> None:
        if len(requests) == 4:
            await channel.close(1001, "going away")
            return
        try:
            while True:
                await channel.recv()
        except ChannelClosed:
            pass

    async def main() -> None:
        async with await serve_channels(handler, "127.0.0.1", 0, process_request=gate) as srv:
            clock = FastClock(pause=0)
            repl = AsyncReplicator(
                replicator_config(db, srv.port), clock=clock, _session_factory=StubSession
            )
            changes: list[ReplicatorChange] = []
            repl.add_change_listener(changes.append)
            await repl.start()
            while repl.connection_attempts < 7 or repl.status.activity is not Level.IDLE:
                await repl.wait_for(Level.IDLE)
                await asyncio.sleep(0.01)
            await repl.stop()
            await asyncio.sleep(0)
            assert clock.delays == [1.0, 2.0, 4.0, 1.0, 2.0, 4.0]
            offline = _offline(changes)
            assert [s.retry_in for s in offline] == clock.delays
            assert [type(s.error) for s in offline] == [HandshakeRefused] * 3 + [ChannelClosed] + [
                HandshakeRefused
            ] * 2

    run(main())


def test_stop_is_immediate_while_waiting_a_long_backoff(db: Database) -> None:
    async def main() -> None:
        clock = BlockedClock()  # a wait that only a stop can end
        config = replicator_config(db, closed_port(), max_attempt_wait_time=3600.0)
        repl = AsyncReplicator(config, clock=clock, _session_factory=StubSession)
        await repl.start()
        await asyncio.wait_for(clock.sleeping.wait(), 10)
        assert repl.status.activity is Level.OFFLINE and repl.status.retry_in == 1.0
        await asyncio.wait_for(repl.stop(), 10)
        assert repl.status.activity is Level.STOPPED and repl.status.error is None
        assert repl.status.retry_in is None

    run(main())


def test_wrong_password_is_not_retried(tmp_path: Path) -> None:
    async def main() -> None:
        async with peers(tmp_path) as (_server, client, start):
            checks: list[str] = []

            def check(user: str, password: str) -> bool:
                checks.append(user)
                return (user, password) == ("alice", "secret")

            listener = await start(authenticator=ListenerPasswordAuthenticator(check))
            assert listener.port is not None
            clock = FastClock(pause=0)
            config = replicator_config(client, listener.port, max_attempts=5)
            config.authenticator = BasicAuthenticator("alice", "wrong")
            repl = AsyncReplicator(config, clock=clock)
            await repl.start()
            status = await repl.wait_for(Level.STOPPED)
            assert isinstance(status.error, AuthenticationError) and status.error.code == 401
            assert not status.error.is_transient
            assert clock.delays == [] and repl.connection_attempts == 1 and checks == ["alice"]
            assert listener.status.connection_count == 0

    run(main())


def test_listener_heartbeat_is_configurable_and_validated(db: Database) -> None:
    from couchlite import ConfigurationError, UrlEndpointListener

    from .helpers import listener_config

    assert listener_config(db).heartbeat == 300.0  # LiteCore's default
    listener = UrlEndpointListener(listener_config(db, heartbeat=2.5))
    assert listener.config.heartbeat == 2.5
    for bad in (0, -1.0, "5", True, None):
        with pytest.raises(ConfigurationError):
            UrlEndpointListener(listener_config(db, heartbeat=bad))
