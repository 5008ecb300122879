"""Real replication through the listener, between two processes.

The passive peer (``listener_peer.py``) runs a ``UrlEndpointListener`` with the real
``PassiveSession`` in a child process; this process runs the active ``AsyncReplicator``. Every
connection is a real socket on 127.0.0.1, TLS handshakes included.
"""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from couchlite import AuthenticationError, Database, DatabaseConfiguration, MutableDocument

pytest.importorskip("couchlite.replicator.passive")
pytest.importorskip("couchlite.replicator.active")

from couchlite.replicator.config import (
    BasicAuthenticator,
    ReplicatorConfiguration,
)
from couchlite.replicator.replicator import AsyncReplicator
from couchlite.replicator.types import ReplicatorActivityLevel, ReplicatorType
from tests.transport.helpers import run

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

PEER = Path(__file__).with_name("listener_peer.py")
EVENT_TIMEOUT_S = 20.0
REPLICATION_TIMEOUT_S = 30.0


class PassivePeer:
    """The child process running the listener, and the JSON events it prints."""

    def __init__(self, directory: Path, **options: Any) -> None:
        options["directory"] = str(directory)
        self.process = subprocess.Popen(
            [sys.executable, str(PEER), json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        first = self.next_event()
        assert first["event"] == "listening", first
        self.port: int = first["port"]
        self.url: str = first["urls"][0]
        self.certificate: str | None = first["certificate"]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))

    def next_event(self) -> dict[str, Any]:
        return self.events.get(timeout=EVENT_TIMEOUT_S)

    def command(self, name: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(name + "\n")
        self.process.stdin.flush()
        event = self.next_event()
        assert event["event"] == name, event
        return event

    def stop(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._thread.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def start_peer(tmp_path: Path) -> Iterator[Any]:
    peers: list[PassivePeer] = []

    def start(**options: Any) -> PassivePeer:
        peer = PassivePeer(tmp_path / f"passive{len(peers)}", **options)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.stop()
        assert peer.process.returncode == 0


@pytest.fixture
def active(tmp_path: Path) -> Iterator[Database]:
    database = Database("active", DatabaseConfiguration(directory=tmp_path / "active"))
    yield database
    database.close()


def _replicate(config: ReplicatorConfiguration) -> Any:
    async def main() -> Any:
        replicator = AsyncReplicator(config)
        await replicator.start()
        try:
            return await replicator.wait_for(
                ReplicatorActivityLevel.STOPPED, timeout=REPLICATION_TIMEOUT_S
            )
        finally:
            await replicator.stop()

    return run(main(), timeout=REPLICATION_TIMEOUT_S + 10)


def test_push_and_pull_over_tls_with_password(start_peer, active: Database) -> None:
    peer = start_peer(tls=True, auth=["alice", "s3cret"], docs={"p-1": {"from": "passive"}})
    assert peer.url.startswith("wss://") and peer.certificate
    collection = active.default_collection()
    collection.save(MutableDocument("a-1", {"n": 1, "text": "héllo"}))
    collection.save(MutableDocument("a-2", {"nested": {"list": [1, 2, 3]}}))
    config = ReplicatorConfiguration(
        peer.url,
        authenticator=BasicAuthenticator("alice", "s3cret"),
        pinned_server_certificate=peer.certificate.encode(),
    )
    config.add_collection(collection)
    status = _replicate(config)
    assert status.error is None
    assert collection.get("p-1") is not None
    assert collection["p-1"].to_dict() == {"from": "passive"}
    docs = peer.command("dump")["docs"]
    assert docs == {
        "a-1": {"n": 1, "text": "héllo"},
        "a-2": {"nested": {"list": [1, 2, 3]}},
        "p-1": {"from": "passive"},
    }
    # The replicator is STOPPED once its side is closed; the listener counts the connection
    # until it has seen the close, a moment later on a loaded machine.
    deadline = time.monotonic() + 10
    while peer.command("status")["connections"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert peer.command("status")["connections"] == 0


def test_wrong_password_is_refused(start_peer, active: Database) -> None:
    peer = start_peer(auth=["alice", "s3cret"])
    config = ReplicatorConfiguration(
        peer.url, authenticator=BasicAuthenticator("alice", "wrong"), max_attempts=1
    )
    config.add_collection(active.default_collection())
    error = _replicate(config).error
    assert isinstance(error, AuthenticationError) and error.code == 401
    assert peer.command("dump")["docs"] == {}


def test_read_only_listener_refuses_pushes_but_serves_pulls(start_peer, active: Database) -> None:
    peer = start_peer(read_only=True, docs={"p-1": {"v": 1}})
    collection = active.default_collection()
    collection.save(MutableDocument("a-1", {"v": 2}))
    push = ReplicatorConfiguration(peer.url, replicator_type=ReplicatorType.PUSH, max_attempts=1)
    push.add_collection(collection)
    error = _replicate(push).error
    assert error is not None and error.code == 403, error
    assert peer.command("dump")["docs"] == {"p-1": {"v": 1}}
    pull = ReplicatorConfiguration(peer.url, replicator_type=ReplicatorType.PULL)
    pull.add_collection(collection)
    assert _replicate(pull).error is None
    assert collection["p-1"].to_dict() == {"v": 1}


def test_stopping_the_listener_is_a_transient_error_for_replicators(
    start_peer, active: Database
) -> None:
    peer = start_peer(docs={"p-1": {"v": 1}})
    collection = active.default_collection()
    config = ReplicatorConfiguration(peer.url, continuous=True, max_attempts=1)
    config.add_collection(collection)

    async def main() -> Any:
        replicator = AsyncReplicator(config)
        await replicator.start()
        try:
            await replicator.wait_for(ReplicatorActivityLevel.IDLE, timeout=REPLICATION_TIMEOUT_S)
            assert collection.get("p-1") is not None
            # a connected, idle replicator counts as a connection, not an active one
            status = await asyncio.to_thread(peer.command, "status")
            assert (status["connections"], status["active"]) == (1, 0)
            await asyncio.to_thread(peer.stop)
            return await replicator.wait_for(
                ReplicatorActivityLevel.STOPPED, timeout=REPLICATION_TIMEOUT_S
            )
        finally:
            await replicator.stop()

    final = run(main(), timeout=REPLICATION_TIMEOUT_S + 10)
    assert final.error is not None
    assert final.error.code == 1001 and final.error.is_transient, final.error
