"""Attacks on a listener's connections and authentication, and on a replicator's redirects.

Each listener runs in its own process (``ListenerProcess``); the attackers are plain sockets
in the test's process: idle WebSockets, TLS handshakes that never start, floods of wrong
credentials, text messages, peers that stop reading. What is asserted is the bound (counts,
file descriptors, memory under generous ceilings) and that a real client still gets through;
durations are printed for the record, and only ever checked as hang guards.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from pathlib import Path

import pytest

from couchlite._tuning import LOG_REPEAT_BURST
from tests.adversarial.peers import ListenerProcess, ReplicatorProcess, raw_client
from tests.httpstub import redirect_server

pytestmark = pytest.mark.timeout(240)

MiB = 1024 * 1024
#: Bound of each wait for a socket (a hang guard).
SOCKET_WAIT_S = 30.0

DOCS = {"public": {"n": 1}, "other": {"n": 2}}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _upgrade_request(path: str = "/db/_blipsync", authorization: str | None = None) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Protocol: BLIP_3+CBMobile_3",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _connect(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def _status_of(sock: socket.socket, request: bytes) -> int:
    """Send an upgrade request on ``sock`` and return the HTTP status (0: closed first)."""
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request)
    head = b""
    try:
        async with asyncio.timeout(SOCKET_WAIT_S):
            while b"\r\n" not in head:
                chunk = await loop.sock_recv(sock, 64)
                if not chunk:
                    return 0
                head += chunk
    except ConnectionResetError:
        return 0
    return int(head.split(b" ", 2)[1])


async def _upgrade(port: int, request: bytes) -> tuple[int, socket.socket]:
    sock = await _connect(port)
    try:
        return await _status_of(sock, request), sock
    except BaseException:
        sock.close()
        raise


# --- connections ------------------------------------------------------------------------------


def test_idle_junk_websockets_are_capped_and_a_real_client_gets_in_once_they_leave(
    tmp_path: Path,
) -> None:
    with ListenerProcess(
        tmp_path, docs=DOCS, config={"max_connections": 20, "max_pending_connections": 64}
    ) as listener:
        before = listener.rss()

        async def flood() -> tuple[list[int], list[socket.socket]]:
            results = await asyncio.gather(
                *(_upgrade(listener.port, _upgrade_request()) for _ in range(300))
            )
            return [status for status, _ in results], [sock for _, sock in results]

        statuses, sockets = asyncio.run(flood())
        try:
            # 20 in; the others refused at the upgrade (503) or, beyond the pending slots,
            # closed at accept (0)
            assert statuses.count(101) == 20
            assert set(statuses) <= {101, 503, 0} and statuses.count(503) > 0
            print(f"300 junk upgrades: {statuses.count(503)} got 503, {statuses.count(0)} closed")
            assert listener.status()["connections"] == 20
            growth = listener.rss() - before
            print(f"300 junk upgrades: 20 accepted, RSS +{growth / MiB:.1f} MiB")
            assert growth < 64 * MiB
            # a real client meanwhile: refused with 503, a transient error, so it keeps trying
            with ReplicatorProcess(
                tmp_path, listener.url, type="pull", continuous=True
            ) as replicator:
                replicator.wait_status("OFFLINE")
                error = replicator.last_error()
                assert error is not None and error["code"] == 503 and error["transient"]
                for sock in sockets:
                    sock.close()
                sockets = []
                replicator.wait_status("IDLE", timeout=60)
                assert replicator.dump().keys() == DOCS.keys()
        finally:
            for sock in sockets:
                sock.close()


def test_stalled_tls_handshakes_are_bounded_while_a_real_client_syncs(tmp_path: Path) -> None:
    with ListenerProcess(
        tmp_path, tls=True, docs=DOCS, config={"max_pending_connections": 16}
    ) as listener:
        before_rss, before_fds = listener.rss(), listener.fd_count()

        async def stall() -> list[socket.socket]:
            return [await _connect(listener.port) for _ in range(1500)]

        stalled = asyncio.run(stall())
        try:
            time.sleep(0.5)  # let the listener accept (and refuse) what is in its backlog
            fds = listener.fd_count() - before_fds
            growth = listener.rss() - before_rss
            print(f"1500 stalled TLS handshakes: +{fds} fds, RSS +{growth / MiB:.1f} MiB")
            # 16 pending slots, plus what is being accepted and closed at this instant
            assert fds <= 16 + 32
            assert growth < 64 * MiB
            # the stalled ones hold no slot against a client whose handshake progresses
            with ReplicatorProcess(
                tmp_path,
                listener.url,
                type="pull",
                pinned_cert=listener.certificate_pem,
                config={"max_attempts": 10},
            ) as replicator:
                final = replicator.wait_status("STOPPED", timeout=120)
                assert final["error"] is None, final
                assert replicator.dump().keys() == DOCS.keys()
        finally:
            for sock in stalled:
                sock.close()
        assert listener.alive()


# --- authentication ---------------------------------------------------------------------------


def test_a_slow_password_check_and_junk_logins_do_not_lock_out_a_real_user(
    tmp_path: Path,
) -> None:
    auth = {"user": "alice", "password": "right", "delay": 1.0}
    with ListenerProcess(tmp_path, auth=auth, docs=DOCS) as listener:
        threads_before = listener.tasks()["threads"]

        async def junk() -> list[int]:
            junk_request = _upgrade_request(authorization=_basic("mallory", "guess"))
            results = await asyncio.gather(
                *(_upgrade(listener.port, junk_request) for _ in range(80))
            )
            for _, sock in results:
                sock.close()
            return [status for status, _ in results]

        async def both() -> tuple[list[int], float, dict[str, object]]:
            flood = asyncio.ensure_future(junk())
            await asyncio.sleep(0.2)  # the junk first: the real user arrives into a full queue
            started = time.monotonic()
            replicator = await asyncio.to_thread(
                ReplicatorProcess,
                tmp_path,
                listener.url,
                type="pull",
                auth=("alice", "right"),
                config={"max_attempts": 30},
            )
            try:
                final = await replicator.await_status("STOPPED", timeout=120)
                took = time.monotonic() - started
                docs = await replicator.adump()
            finally:
                await asyncio.to_thread(replicator.close)
            assert final["error"] is None, final
            assert docs.keys() == DOCS.keys()
            return await flood, took, final

        statuses, took, _final = asyncio.run(both())
        print(
            f"80 junk logins with a 1 s check: {statuses.count(503)} answered 503 at once, "
            f"{statuses.count(0)} closed at accept (no pending slot), {statuses.count(401)} "
            f"refused; the real user synced {took:.1f} s after starting"
        )
        assert set(statuses) <= {401, 503, 0}
        assert statuses.count(503) > 0  # the bounded queue turned the excess away at once
        # the listener's own checking threads: a few, however many logins wait (the rest of
        # the margin: asyncio's default executor, which serving the pull may have started)
        assert listener.tasks()["threads"] <= threads_before + 4 + 8


def test_repeated_failures_from_one_address_are_delayed(tmp_path: Path) -> None:
    with ListenerProcess(tmp_path, auth=("alice", "right")) as listener:

        async def attempts() -> list[tuple[int, float]]:
            results = []
            for _ in range(5):
                started = time.monotonic()
                status, sock = await _upgrade(
                    listener.port, _upgrade_request(authorization=_basic("alice", "wrong"))
                )
                sock.close()
                results.append((status, time.monotonic() - started))
            status, sock = await _upgrade(
                listener.port, _upgrade_request(authorization=_basic("alice", "right"))
            )
            sock.close()
            results.append((status, 0.0))
            return results

        results = asyncio.run(attempts())
        print("failed attempts took " + ", ".join(f"{t:.2f} s" for _, t in results[:-1]))
        assert [s for s, _ in results] == [401] * 5 + [101]
        # asyncio.sleep never returns early, so this lower bound cannot be a race: the failed
        # attempts waited at least 0 + 0.25 + 0.5 + 1 + 2 s before being checked
        assert sum(t for _, t in results[:-1]) >= 3.75


# --- redirects --------------------------------------------------------------------------------


@pytest.mark.parametrize("allowed", [False, True], ids=["refused", "allowed"])
def test_a_cross_origin_redirect_never_carries_credentials_or_headers(
    tmp_path: Path, allowed: bool
) -> None:
    async def main() -> tuple[dict[str, object] | None, list[dict[str, str]], list[dict[str, str]]]:
        async with redirect_server(None) as (second, received):
            target = f"ws://127.0.0.1:{second}/db/_blipsync"
            async with redirect_server(target) as (first, asked):
                replicator = await asyncio.to_thread(
                    ReplicatorProcess,
                    tmp_path,
                    f"ws://127.0.0.1:{first}/db",
                    type="pull",
                    auth=("alice", "s3cret"),
                    headers={"X-Api-Key": "k-123"},
                    config={"allow_cross_origin_redirects": allowed, "max_attempts": 1},
                )
                try:
                    await replicator.await_status("STOPPED", timeout=60)
                    error = replicator.last_error()
                finally:
                    await asyncio.to_thread(replicator.close)
        return error, asked, received

    error, asked, received = asyncio.run(main())
    assert asked and asked[0]["x-api-key"] == "k-123"  # the configured peer: as configured
    assert error is not None
    if not allowed:
        assert error["code"] == 302 and "refused" in str(error["message"])
        assert received == []
    else:
        assert error["code"] == 404  # it did go there...
        assert len(received) == 1
        assert "authorization" not in received[0]  # ...without the credentials
        assert "x-api-key" not in received[0]  # ...or the custom headers


# --- quiet, prompt failure --------------------------------------------------------------------


def test_a_flood_of_text_messages_logs_a_bounded_number_of_warnings(tmp_path: Path) -> None:
    with ListenerProcess(tmp_path, docs=DOCS) as listener:

        async def flood() -> None:
            async with raw_client(listener.url) as peer:
                for _ in range(20_000):
                    await peer.send_text("BLIP has no use for text")
                # still served after the flood
                reply = await peer.request({"Profile": "getCheckpoint", "client": "nobody"})
                assert reply is not None
                await peer.close()

        asyncio.run(flood())
        assert listener.alive()
        deadline = time.monotonic() + SOCKET_WAIT_S
        while "more like it suppressed" not in listener.stderr_text():
            assert time.monotonic() < deadline, "no summary line after the connection closed"
            time.sleep(0.05)
    lines = [line for line in listener.stderr_text().splitlines() if "text WebSocket" in line]
    print(f"20,000 text messages: {len(lines)} log lines")
    assert len(lines) <= LOG_REPEAT_BURST + 2


def test_stop_with_200_stalled_sockets_returns(tmp_path: Path) -> None:
    listener = ListenerProcess(
        tmp_path,
        docs=DOCS,
        config={"max_connections": 300, "max_pending_connections": 300},
        log_level="INFO",
    )
    sockets: list[socket.socket] = []
    try:

        async def stall() -> list[socket.socket]:
            opened = []
            for _ in range(200):
                sock = await _connect(listener.port)
                # a small receive buffer that the peer never reads
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                status = await _status_of(sock, _upgrade_request())
                assert status == 101
                opened.append(sock)
            # and peers mid-handshake: connected, silent
            opened += [await _connect(listener.port) for _ in range(30)]
            return opened

        sockets = asyncio.run(stall())
        assert listener.status()["connections"] == 200
        started = time.monotonic()
        reply = listener.close(timeout=60)
        elapsed = time.monotonic() - started
        assert reply is not None and reply.get("stopped")
        stopped = [line for line in listener.stderr_text().splitlines() if "stopped in" in line]
        print(
            f"stop() with 200 stalled WebSockets and 30 half-open sockets: {stopped[-1]} "
            f"(process exit after {elapsed:.2f} s)"
        )
        assert elapsed < 20.0  # a hang guard (the measured time is printed above)
    finally:
        for sock in sockets:
            sock.close()
        listener.kill()
