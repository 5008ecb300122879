"""A replicator facing redirects, and stopping while its peer stalls (real servers, 127.0.0.1).

The engine is stubbed out (``StubSession``): what matters here is where the connection goes,
what it carries there, and how long ``stop()`` can be held up.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from couchlite import (
    BasicAuthenticator,
    ConfigurationError,
    Database,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    UrlEndpoint,
)
from couchlite.replicator.replicator import AsyncReplicator
from couchlite.transport.websocket import (
    HandshakeRejection,
    HandshakeRequest,
    RedirectRefused,
    WebSocketChannel,
    serve_channels,
)
from tests.httpstub import redirect_server

from .helpers import FakeClock, StubSession, run
from .helpers import hold as _hold

pytestmark = pytest.mark.timeout(60)

Level = ReplicatorActivityLevel


def _config(db: Database, port: int, path: str = "db", **options: Any) -> ReplicatorConfiguration:
    config = ReplicatorConfiguration(UrlEndpoint(f"ws://127.0.0.1:{port}/{path}"), **options)
    config.add_collection(db.default_collection())
    config.authenticator = BasicAuthenticator("alice", "s3cret")
    config.headers = {"X-Api-Key": "k-123"}
    return config


def _replicator(config: ReplicatorConfiguration) -> AsyncReplicator:
    return AsyncReplicator(config, clock=FakeClock(), _session_factory=StubSession)


def test_the_option_defaults_to_refusing_and_is_validated(db: Database) -> None:
    config = _config(db, 1)
    assert config.allow_cross_origin_redirects is False
    assert config._validated().allow_cross_origin_redirects is False
    config.allow_cross_origin_redirects = "yes"  # type: ignore[assignment]
    with pytest.raises(ConfigurationError, match="allow_cross_origin_redirects"):
        config._validated()


def test_a_cross_origin_redirect_stops_the_replicator_and_leaks_nothing(db: Database) -> None:
    seen: list[HandshakeRequest] = []

    async def main() -> None:
        async with await serve_channels(_hold, "127.0.0.1", 0, process_request=seen.append) as srv:
            elsewhere = f"ws://127.0.0.1:{srv.port}/db/_blipsync"
            async with redirect_server(elsewhere) as (port, heads):
                repl = _replicator(_config(db, port, continuous=True))
                await repl.start()
                status = await repl.wait_for(Level.STOPPED)
                assert heads[0]["x-api-key"] == "k-123"  # the configured peer got them
        error = status.error
        assert isinstance(error, RedirectRefused) and error.code == 302
        assert not error.is_transient  # permanent: not retried, even when continuous
        assert error.location == elsewhere

    run(main())
    assert seen == []  # the other origin heard nothing


def test_an_allowed_cross_origin_redirect_carries_no_credentials_or_headers(
    db: Database,
) -> None:
    seen: list[HandshakeRequest] = []

    async def main() -> None:
        async with (
            await serve_channels(_hold, "127.0.0.1", 0, process_request=seen.append) as srv,
            redirect_server(f"ws://127.0.0.1:{srv.port}/db/_blipsync") as (port, _heads),
        ):
            repl = _replicator(_config(db, port, allow_cross_origin_redirects=True))
            await repl.start()
            status = await repl.wait_for(Level.STOPPED)
            assert status.error is None

    run(main())
    assert len(seen) == 1
    assert seen[0].header("Authorization") is None
    assert seen[0].header("X-Api-Key") is None
    assert (seen[0].header("User-Agent") or "").startswith("couchlite/")


def test_a_same_origin_redirect_is_followed_with_credentials(db: Database) -> None:
    seen: list[HandshakeRequest] = []

    def route(request: HandshakeRequest) -> HandshakeRejection | None:
        seen.append(request)
        if request.path.startswith("/old/"):
            return HandshakeRejection(301, "", (("Location", "/db/_blipsync"),))
        return None

    async def main() -> None:
        async with await serve_channels(_hold, "127.0.0.1", 0, process_request=route) as srv:
            repl = _replicator(_config(db, srv.port, path="old"))
            await repl.start()
            status = await repl.wait_for(Level.STOPPED)
            assert status.error is None

    run(main())
    assert [r.path for r in seen] == ["/old/_blipsync", "/db/_blipsync"]
    assert seen[1].header("Authorization") == seen[0].header("Authorization") is not None
    assert seen[1].header("X-Api-Key") == "k-123"


def test_stop_returns_promptly_while_the_peer_has_stopped_reading(db: Database) -> None:
    async def stalled(channel: WebSocketChannel) -> None:
        # Reads nothing more, so never sees (nor answers) our close frame.
        channel._ws.transport.pause_reading()
        await _hold(channel)  # until the connection is gone

    async def main() -> float:
        async with await serve_channels(stalled, "127.0.0.1", 0) as srv:
            repl = _replicator(_config(db, srv.port, continuous=True))
            await repl.start()
            await repl.wait_for(Level.IDLE)
            started = time.monotonic()
            await repl.stop()
            elapsed = time.monotonic() - started
            assert repl.status.activity is Level.STOPPED and repl.status.error is None
        return elapsed

    elapsed = run(main(), timeout=50)
    print(f"stop() with a stalled peer took {elapsed:.2f} s")
    # A hang guard: the closing handshake alone would wait 5 s for the stalled peer.
    assert elapsed < 10.0
