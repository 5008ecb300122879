"""A listener advertised by another process, found by name, synced from this one; its
certificate pinned on first use, a changed one refused; its unregistration seen here."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from couchlite import (
    BasicAuthenticator,
    CertificateMismatchError,
    Database,
    DatabaseConfiguration,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    ReplicatorStatus,
)
from couchlite.discovery import DiscoveredPeer, browse, find_peer

from .conftest import FIND_TIMEOUT_S, LOOPBACK

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PEER = Path(__file__).with_name("advertised_peer.py")
PASSWORD = "pw-for-tests"
WAIT_S = 30.0


class Peer:
    """The other process, and the JSON lines it prints."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.hello = self.read()
        assert self.hello["event"] == "listening", self.hello

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(WAIT_S)
        assert result and result[0], "the peer process said nothing in time"
        return json.loads(result[0])  # type: ignore[no-any-return]

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(WAIT_S)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def peer_process(directory: Path, name: str, **options: Any) -> Iterator[Peer]:
    peer = Peer({"directory": str(directory), "name": name, **options})
    try:
        yield peer
    finally:
        peer.close()


def _sync(phone: Database, peer: DiscoveredPeer, **options: Any) -> ReplicatorStatus:
    config = ReplicatorConfiguration.for_peer(peer, max_attempts=1, **options)
    config.add_collection(phone.default_collection())
    with Replicator(config) as replicator:
        return replicator.wait_for(ReplicatorActivityLevel.STOPPED, timeout=WAIT_S)


def test_found_by_name_synced_pinned_and_a_new_certificate_refused(
    tmp_path: Path, service_name: str
) -> None:
    laptop_dir = tmp_path / "laptop"
    docs = {"note-1": {"text": "from the laptop"}}
    with Database("phone", DatabaseConfiguration(directory=tmp_path / "phone")) as phone:
        with peer_process(laptop_dir, service_name, password=PASSWORD, docs=docs) as laptop:
            assert laptop.hello["service_name"] == service_name
            found = find_peer(service_name, interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S)
            assert found.port == laptop.hello["port"] and found.addresses == ("127.0.0.1",)
            assert found.tls and found.auth == "password"
            assert found.fingerprint == laptop.hello["fingerprint"]
            assert found.peer_id is not None

            status = _sync(phone, found, authenticator=BasicAuthenticator("me", PASSWORD))
            assert status.error is None, status.error
            assert phone.default_collection().get("note-1") is not None
            assert phone.pins() == {found.peer_id: found.fingerprint}

            with browse(interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S) as events:
                for event in events:
                    if event.peer.name == service_name:
                        break
                assert laptop.ask("stop")["event"] == "stopped"
                removal = next((e for e in events if e.peer.name == service_name), None)
                assert removal is not None and removal.kind == "removed"

        # The same database behind a listener with a new identity: same peer ID, new certificate.
        with peer_process(laptop_dir, service_name, password=PASSWORD, new_identity=True) as laptop:
            again = find_peer(service_name, interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S)
            assert again.peer_id == found.peer_id
            assert again.fingerprint == laptop.hello["fingerprint"] != found.fingerprint
            status = _sync(phone, again, authenticator=BasicAuthenticator("me", PASSWORD))
            error = status.error
            assert isinstance(error, CertificateMismatchError), error
            assert error.expected == found.fingerprint and error.actual == again.fingerprint
            assert error.pin_key == found.peer_id
            assert f"forget_pin({found.peer_id!r})" in str(error)

            assert phone.forget_pin(found.peer_id)
            status = _sync(phone, again, authenticator=BasicAuthenticator("me", PASSWORD))
            assert status.error is None, status.error
            assert phone.pins() == {found.peer_id: again.fingerprint}


def test_a_ws_listener_is_found_and_synced_without_pins(tmp_path: Path, service_name: str) -> None:
    docs = {"plain-1": {"tls": False}}
    with (
        Database("phone", DatabaseConfiguration(directory=tmp_path / "phone")) as phone,
        peer_process(tmp_path / "laptop", service_name, tls=False, docs=docs) as laptop,
    ):
        found = find_peer(service_name, interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S)
        assert not found.tls and found.fingerprint is None and found.auth == "none"
        assert found.url == f"ws://127.0.0.1:{laptop.hello['port']}/laptop"
        config = found.replicator_configuration()
        assert config.server_fingerprint is None and not config.trust_on_first_use
        status = _sync(phone, found)
        assert status.error is None, status.error
        assert phone.default_collection().get("plain-1") is not None
        assert phone.pins() == {}
