"""Connection bookkeeping: status counts, misbehaving clients, stop() with 1001, no leaks.

The passive session is the stand-in of ``conftest.py``; the clients are real ``BlipConnection``s
over real sockets, and raw ``websockets`` clients where a client has to misbehave.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from couchlite import AsyncUrlEndpointListener, ConnectionStatus, Database
from couchlite.blip import BlipProtocol
from couchlite.transport.blip_connection import BlipConnection
from couchlite.transport.channel import ChannelClosed
from couchlite.transport.websocket import connect_channel
from tests.listener.conftest import StubRegistry
from tests.listener.helpers import plain_config, wait_until
from tests.transport.helpers import run

pytestmark = pytest.mark.timeout(60)


async def _client(listener: AsyncUrlEndpointListener) -> BlipConnection:
    channel = await connect_channel(f"{listener.urls[0]}/_blipsync")
    connection = BlipConnection(channel, BlipProtocol(), name="client")
    connection.start()
    return connection


async def _echo(connection: BlipConnection, body: bytes) -> bytes:
    reply = await connection.request({"Profile": "echo"}, body, timeout=10)
    return bytes(reply.body)


def _other_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


def test_status_counts_connections_and_busy_sessions(
    db: Database, stub_sessions: StubRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="couchlite.listener")

    async def main() -> None:
        async with AsyncUrlEndpointListener(plain_config(db)) as listener:
            assert listener.status == ConnectionStatus(0, 0)
            a = await _client(listener)
            b = await _client(listener)
            await wait_until(lambda: listener.status.connection_count == 2)
            assert listener.status.active_connection_count == 0
            assert await _echo(a, b"a") == b"a"
            await a.request({"Profile": "setBusy", "busy": "1"})
            assert listener.status == ConnectionStatus(2, 1)
            await b.request({"Profile": "setBusy", "busy": "1"})
            assert listener.status == ConnectionStatus(2, 2)
            await a.request({"Profile": "setBusy", "busy": "0"})
            assert listener.status == ConnectionStatus(2, 1)
            await a.close()
            await wait_until(lambda: listener.status.connection_count == 1)
            assert listener.status == ConnectionStatus(1, 1)
            await b.close()
            await wait_until(lambda: listener.status == ConnectionStatus(0, 0))
            assert [s.attached for s in stub_sessions.sessions] == [True, True]
            await wait_until(lambda: all(s.closed == 1 for s in stub_sessions.sessions))
            assert all(s.allow_push for s in stub_sessions.sessions)

    run(main())
    # each connection logs under its own id
    ids = {r.getMessage().split(":")[0] for r in caplog.records if "connected" in r.getMessage()}
    assert len(ids) == 2 and all(i.startswith("listener-") and "#" in i for i in ids)


def test_garbage_frames_close_only_that_connection(
    db: Database, stub_sessions: StubRegistry
) -> None:
    async def main() -> None:
        async with AsyncUrlEndpointListener(plain_config(db)) as listener:
            good = await _client(listener)
            async with ws_connect(
                f"{listener.urls[0]}/_blipsync",
                subprotocols=["BLIP_3+CBMobile_3"],  # type: ignore[list-item]
                compression=None,
                proxy=None,
            ) as bad:
                await wait_until(lambda: listener.status.connection_count == 2)
                # an over-long varint message number: a fatal BLIP framing error
                await bad.send(b"\xff" * 12 + b"garbage")
                with pytest.raises(ConnectionClosed):
                    async with asyncio.timeout(10):
                        while True:
                            await bad.recv()
                assert bad.close_code == 1002
            await wait_until(lambda: listener.status.connection_count == 1)
            for i in range(20):
                assert await _echo(good, b"still here %d" % i) == b"still here %d" % i
            await good.close()
            await wait_until(lambda: listener.status.connection_count == 0)

    run(main())


def test_abrupt_disconnect_mid_message(db: Database, stub_sessions: StubRegistry) -> None:
    async def main() -> None:
        async with AsyncUrlEndpointListener(plain_config(db)) as listener:
            good = await _client(listener)
            raw = await ws_connect(
                f"{listener.urls[0]}/_blipsync",
                subprotocols=["BLIP_3+CBMobile_3"],  # type: ignore[list-item]
                compression=None,
                proxy=None,
            )
            await wait_until(lambda: listener.status.connection_count == 2)
            # the first frame of a multi-frame request, then the TCP connection just dies
            protocol = BlipProtocol()
            protocol.send_request({"Profile": "echo"}, b"x" * 100_000)
            first = protocol.next_frame()
            assert first is not None
            await raw.send(first)
            raw.transport.abort()
            await wait_until(lambda: listener.status.connection_count == 1)
            assert await _echo(good, b"unaffected") == b"unaffected"
            await good.close()
            await wait_until(lambda: listener.status.connection_count == 0)
            await wait_until(lambda: all(s.closed == 1 for s in stub_sessions.sessions))

    run(main())


def test_stop_closes_clients_with_going_away_and_leaks_nothing(
    db: Database, stub_sessions: StubRegistry
) -> None:
    async def main() -> None:
        before = _other_tasks()
        listener = AsyncUrlEndpointListener(plain_config(db))
        await listener.start()
        clients = [await _client(listener) for _ in range(3)]
        await wait_until(lambda: listener.status.connection_count == 3)
        await clients[0].request({"Profile": "setBusy", "busy": "1"})
        await listener.stop()
        assert listener.status == ConnectionStatus(0, 0)
        for client in clients:
            with pytest.raises(ChannelClosed) as info:
                await client.wait_closed(timeout=10)
            assert info.value.code == 1001 and info.value.is_transient
        assert [s.closed for s in stub_sessions.sessions] == [1, 1, 1]
        # every task the listener started has finished
        await wait_until(lambda: _other_tasks() <= before)

    run(main())


def test_connections_after_restart(db: Database, stub_sessions: StubRegistry) -> None:
    async def main() -> None:
        listener = AsyncUrlEndpointListener(plain_config(db))
        for _round in range(2):
            await listener.start()
            client = await _client(listener)
            assert await _echo(client, b"hello") == b"hello"
            await listener.stop()
            with pytest.raises(ChannelClosed):
                await client.wait_closed(timeout=10)

    run(main())


def test_a_failing_session_factory_closes_only_that_connection(
    db: Database, stub_sessions: StubRegistry, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    async def main() -> None:
        async with AsyncUrlEndpointListener(plain_config(db)) as listener:
            good = await _client(listener)
            assert listener._session_factory is not None
            real = listener._session_factory
            calls = 0

            def flaky(connection: BlipConnection):  # type: ignore[no-untyped-def]
                nonlocal calls
                calls += 1
                raise RuntimeError("session bug")

            monkeypatch.setattr(listener, "_session_factory", flaky)
            channel = await connect_channel(f"{listener.urls[0]}/_blipsync")
            with pytest.raises(ChannelClosed) as info:
                await channel.recv()
            assert info.value.code == 1011
            monkeypatch.setattr(listener, "_session_factory", real)
            assert calls == 1
            assert await _echo(good, b"fine") == b"fine"
            assert listener.status.connection_count == 1
            await good.close()

    run(main())
    assert "session bug" in caplog.text
