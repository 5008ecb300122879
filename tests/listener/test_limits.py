"""The listener's limits: connections, pending handshakes, authentication work, prompt stop.

Real listeners on 127.0.0.1 (with the stand-in session of ``conftest.py``), real sockets for
the clients, real threads for the password checks. Bounds on waits are hang guards, never
measurements.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from couchlite import (
    ConfigurationError,
    Database,
    ListenerPasswordAuthenticator,
    UrlEndpointListener,
)
from couchlite._tuning import (
    AUTH_MAX_CONCURRENT_CHECKS,
    AUTH_MAX_QUEUED_CHECKS,
    LISTENER_MAX_CONNECTIONS,
    LISTENER_MAX_PENDING_CONNECTIONS,
)
from couchlite.listener import handshake
from couchlite.listener.listener import AsyncUrlEndpointListener
from couchlite.listener.throttle import Busy, CheckRunner, FailureDelays, address_key
from couchlite.transport.websocket import HandshakeRequest
from tests.listener.conftest import StubRegistry
from tests.listener.helpers import UPGRADE_HEADERS, http_get, plain_config, wait_until
from tests.transport.helpers import run

pytestmark = pytest.mark.timeout(90)

#: Hang guard of the waits below.
WAIT_S = 20.0


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- configuration ----------------------------------------------------------------------------


def test_limits_have_defaults_and_are_validated(db: Database) -> None:
    config = plain_config(db)
    assert config.max_connections == LISTENER_MAX_CONNECTIONS
    assert config.max_pending_connections == LISTENER_MAX_PENDING_CONNECTIONS
    for name in ("max_connections", "max_pending_connections"):
        for bad in (0, -1, True, 2.5, "10", None, 10_000_001):
            with pytest.raises(ConfigurationError, match=name):
                UrlEndpointListener(plain_config(db, **{name: bad}))
    raised = UrlEndpointListener(
        plain_config(db, max_connections=5000, max_pending_connections=900)
    )
    assert raised.config.max_connections == 5000
    assert raised.config.max_pending_connections == 900


# --- connections ------------------------------------------------------------------------------


def test_max_connections_refuses_the_next_upgrade_with_503(
    db: Database, stub_sessions: StubRegistry
) -> None:
    with UrlEndpointListener(plain_config(db, max_connections=2)) as listener:
        port = listener.port
        assert port is not None
        held = [_open_websocket(port, "/test/_blipsync") for _ in range(2)]
        try:
            refused = http_get(port, "/test/_blipsync", UPGRADE_HEADERS)
            assert refused.status == 503
            assert refused.body == b"Too many connections"
            assert refused.header("Retry-After") is not None
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + WAIT_S
        while listener.status.connection_count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert http_get(port, "/test/_blipsync", UPGRADE_HEADERS).status == 101


def _open_websocket(port: int, path: str, headers: dict[str, str] | None = None) -> socket.socket:
    """A WebSocket opened by hand (blocking); it then neither reads nor writes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    fields = dict(UPGRADE_HEADERS, Host="x", **(headers or {}))
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    sock.sendall(request.encode() + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "closed during the upgrade"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_stop_with_200_stalled_peers_and_pending_sockets_returns_promptly(
    db: Database, stub_sessions: StubRegistry
) -> None:
    async def main() -> float:
        listener = AsyncUrlEndpointListener(plain_config(db, max_connections=300))
        await listener.start()
        port = listener.port
        assert port is not None
        loop = asyncio.get_running_loop()
        stalled = await asyncio.gather(
            *(
                loop.run_in_executor(None, _open_websocket, port, "/test/_blipsync")
                for _ in range(200)
            )
        )
        # mid-handshake: connected, but the HTTP request never comes
        pending = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
        try:
            await wait_until(lambda: listener.status.connection_count == 200, WAIT_S)
            started = time.monotonic()
            await listener.stop()
            elapsed = time.monotonic() - started
            assert listener.status.connection_count == 0
            assert [s.closed for s in stub_sessions.sessions] == [1] * 200
        finally:
            for sock in [*stalled, *pending]:
                sock.close()
        return elapsed

    elapsed = run(main(), timeout=60)
    # A hang guard: without the aborts, every stalled peer's closing handshake waits 5 s.
    assert elapsed < 10.0
    logging.getLogger(__name__).info("stop() with 200 stalled peers took %.2f s", elapsed)


# --- authentication ---------------------------------------------------------------------------


def test_password_checks_are_bounded_and_excess_is_answered_503_at_once(
    db: Database, stub_sessions: StubRegistry
) -> None:
    release = threading.Event()
    running: list[str] = []

    def check(user: str, password: str) -> bool:
        running.append(threading.current_thread().name)
        release.wait(WAIT_S)
        return (user, password) == ("alice", "right")

    junk = dict(UPGRADE_HEADERS, Authorization=_basic("mallory", "guess"))
    capacity = AUTH_MAX_CONCURRENT_CHECKS + AUTH_MAX_QUEUED_CHECKS
    config = plain_config(db, authenticator=ListenerPasswordAuthenticator(check))
    with UrlEndpointListener(config) as listener:
        port = listener.port
        assert port is not None
        with ThreadPoolExecutor(max_workers=capacity + 10) as pool:
            waiting = [
                pool.submit(http_get, port, "/test/_blipsync", junk) for _ in range(capacity)
            ]
            runner = listener._impl._guard.runner
            deadline = time.monotonic() + WAIT_S
            while runner.in_use < capacity and time.monotonic() < deadline:
                time.sleep(0.01)
            # every slot is taken (4 running, 16 waiting): the next ones are refused at once,
            # while the checks are still blocked
            excess = [pool.submit(http_get, port, "/test/_blipsync", junk) for _ in range(10)]
            statuses = [f.result(timeout=WAIT_S).status for f in excess]
            assert statuses == [503] * 10
            assert not release.is_set() and len(running) == AUTH_MAX_CONCURRENT_CHECKS
            release.set()
            assert [f.result(timeout=WAIT_S).status for f in waiting] == [401] * capacity
        # the listener's own threads, never more than its workers, never the default executor
        assert len(set(running)) <= AUTH_MAX_CONCURRENT_CHECKS
        assert all(name.startswith("couchlite-auth") for name in running)
        # the real user still gets in (after the delay the failures above earned the address)
        ok = dict(UPGRADE_HEADERS, Authorization=_basic("alice", "right"))
        assert http_get(port, "/test/_blipsync", ok).status == 101


def test_a_slot_stays_taken_until_a_timed_out_check_really_returns() -> None:
    async def main() -> None:
        runner = CheckRunner(workers=1, queued=0)
        release = threading.Event()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await runner.run(release.wait, WAIT_S)
        # the function still runs in its thread: no new check may start behind it
        with pytest.raises(Busy):
            await runner.run(lambda: True)
        assert runner.in_use == 1 and runner.refused == 1
        release.set()
        await wait_until(lambda: runner.in_use == 0, WAIT_S)
        assert await runner.run(lambda: "again") == "again"
        runner.shutdown()

    run(main())


def _request(address: str, user: str, password: str) -> HandshakeRequest:
    return HandshakeRequest(
        path="/test/_blipsync",
        headers=(("Authorization", _basic(user, password)),),
        remote_address=address,
    )


def test_failures_delay_the_next_check_from_that_address_without_holding_a_thread() -> None:
    async def main() -> None:
        calls: list[str] = []

        def check(user: str, password: str) -> bool:
            calls.append(user)
            return (user, password) == ("alice", "right")

        authenticator = ListenerPasswordAuthenticator(check)
        # a delay long enough that the ordering below cannot depend on timing
        guard = handshake.AuthGuard(delays=FailureDelays(base=60.0, cap=60.0))
        bad, also_bad = "10.0.0.1:5000", "10.0.0.3:5000"
        # wrong user and wrong password: the same refusal, the same failure of the address
        for address, user, password in ((bad, "nobody", "x"), (also_bad, "alice", "wrong")):
            refused = await handshake.authenticate(
                authenticator, _request(address, user, password), "t", guard
            )
            assert refused is handshake.UNAUTHORIZED
            assert guard.delays.failures(address_key(address)) == 1
        assert guard.delays.delay(address_key(bad)) == guard.delays.delay(address_key(also_bad))
        calls.clear()
        delayed = asyncio.ensure_future(
            handshake.authenticate(authenticator, _request(bad, "alice", "right"), "t", guard)
        )
        # another address is checked at once meanwhile...
        other = await handshake.authenticate(
            authenticator, _request("10.0.0.2:5000", "alice", "right"), "t", guard
        )
        assert other is None and calls == ["alice"]
        # ...while the delayed one waits on the loop: not checked, and no thread or slot held
        assert not delayed.done()
        assert guard.runner.in_use == 0
        delayed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await delayed
        guard.runner.shutdown()

    run(main())


def test_failure_delays_grow_are_capped_forgotten_and_bounded() -> None:
    now = [0.0]
    delays = FailureDelays(
        base=0.25, cap=4.0, forget_after=60.0, max_addresses=3, clock=lambda: now[0]
    )
    seen = []
    for _ in range(8):
        seen.append(delays.delay("a"))
        delays.failed("a")
    assert seen == [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    now[0] += 59.0
    assert delays.delay("a") == 4.0
    now[0] += 1.0  # quiet for 60 s since the last failure
    assert delays.delay("a") == 0.0 and len(delays) == 0
    for address in ("a", "b", "c", "d"):
        delays.failed(address)
        now[0] += 1.0
    assert len(delays) == 3 and delays.failures("a") == 0  # the oldest was evicted
    assert delays.failures("d") == 1


def test_address_keys_group_an_ipv6_host_by_its_64_prefix() -> None:
    assert address_key("192.0.2.7:51000") == "192.0.2.7"
    assert address_key("[2001:db8:1:2::5]:443") == address_key("[2001:db8:1:2:ffff::9]:1")
    assert address_key("[2001:db8:1:2::5]:443") == "2001:db8:1:2::/64"
    assert address_key("[2001:db8:1:3::5]:443") != address_key("[2001:db8:1:2::5]:443")
    assert address_key("[::ffff:192.0.2.7]:80") == "192.0.2.7"
    assert address_key(None) is None


def test_a_flood_of_refused_credentials_logs_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        authenticator = ListenerPasswordAuthenticator(lambda u, p: False)
        guard = handshake.AuthGuard(delays=FailureDelays(base=0.0, cap=0.0))
        for i in range(300):
            await handshake.authenticate(
                authenticator, _request(f"10.1.{i // 250}.{i % 250}:1", "u", "p"), "t", guard
            )
        guard.runner.shutdown()

    with caplog.at_level(logging.INFO, logger="couchlite.listener.handshake"):
        run(main())
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert 1 <= len(refusals) <= 10


def test_stop_with_tls_handshakes_in_progress_returns_promptly(
    db: Database, stub_sessions: StubRegistry
) -> None:
    async def main() -> float:
        config = plain_config(db, disable_tls=False, max_pending_connections=100)
        listener = AsyncUrlEndpointListener(config)
        await listener.start()
        port = listener.port
        assert port is not None
        # TCP connected, ClientHello never sent: each sits in the TLS handshake
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
        try:
            server = listener._server
            assert server is not None
            await wait_until(lambda: server.admission["pending"] == 50, WAIT_S)
            started = time.monotonic()
            await listener.stop()
            elapsed = time.monotonic() - started
            assert server.admission["live"] == 0
        finally:
            for sock in silent:
                sock.close()
        return elapsed

    elapsed = run(main(), timeout=60)
    assert elapsed < 10.0  # a hang guard: the handshakes alone would last 10 s
