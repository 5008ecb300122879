"""Forged client certificate chains against a listener in its own process.

The listener trusts clients with the naive callback the issue found forgeable,
``chain[-1] == ca`` (``ListenerProcess(cert_auth={"chain_ends_with": ca})``). Each forgery is
presented over a real TLS connection by a client in the test's process; before the chain checks,
the first one (a self-signed leaf with the real CA appended) was let in. Now every forgery gets
401 and nothing is stored, while an honest device still connects and replicates.

The last test presents a *stolen* chain: the honest device's certificates, but not its private
key. A TLS client library will not even send a certificate without its key, so a proxy between
the client and the listener swaps the client's TLS 1.2 ``Certificate`` message (sent in the
clear) for the stolen chain. The listener's TLS layer then checks the client's
``CertificateVerify`` signature against the stolen leaf's key, and the handshake fails: a
certificate is worth nothing without its key, whatever the callback would have said.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from couchlite import (
    ClientCertificateAuthenticator,
    Database,
    DatabaseConfiguration,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    ReplicatorType,
    TLSIdentity,
)
from tests.adversarial.peers import ListenerProcess
from tests.listener.helpers import UPGRADE_HEADERS, http_get
from tests.tls.forgeries import Pki, forgeries

pytestmark = pytest.mark.timeout(120)

#: Bound on every socket operation of the proxy and the raw client.
IO_TIMEOUT_S = 10.0


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _client_context(listener: ListenerProcess, identity: TLSIdentity) -> ssl.SSLContext:
    context = listener.client_ssl_context()
    assert context is not None
    identity.load_into(context)
    return context


def _upgrade_status(listener: ListenerProcess, identity: TLSIdentity) -> int:
    context = _client_context(listener, identity)
    return http_get(listener.port, "/db/_blipsync", UPGRADE_HEADERS, context=context).status


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.create()


@pytest.fixture
def listener(tmp_path: Path, pki: Pki) -> Iterator[ListenerProcess]:
    with ListenerProcess(
        tmp_path,
        tls=True,
        cert_auth={"chain_ends_with": _pem(pki.root)},
        docs={"public": {"v": 1}},
        log_level="INFO",
    ) as process:
        yield process


def test_every_forged_chain_is_refused_and_honest_devices_still_get_in(
    listener: ListenerProcess, pki: Pki, tmp_path: Path
) -> None:
    statuses = {name: _upgrade_status(listener, forged) for name, forged in forgeries(pki).items()}
    assert statuses == dict.fromkeys(statuses, 401), statuses
    assert listener.alive()
    assert listener.status()["connections"] == 0
    # an honest device is let in, over a raw upgrade and with a real replicator
    assert _upgrade_status(listener, pki.device) == 101
    local = Database("device", DatabaseConfiguration(directory=tmp_path / "device"))
    try:
        config = ReplicatorConfiguration(
            target=listener.url,
            replicator_type=ReplicatorType.PULL,
            pinned_server_certificate=(listener.certificate_pem or "").encode("ascii"),
            authenticator=ClientCertificateAuthenticator(pki.device),
        )
        config.add_collection(local.default_collection())
        replicator = Replicator(config)
        replicator.start()
        status = replicator.wait_for(ReplicatorActivityLevel.STOPPED, timeout=60)
        assert status.error is None
        assert local.default_collection().get("public") is not None
    finally:
        local.close()
    assert set(listener.dump()) == {"public"}  # nothing written by anyone


# --- a stolen chain, without its key ----------------------------------------------------------

_HANDSHAKE = 22
_CHANGE_CIPHER_SPEC = 20
_CERTIFICATE = 11


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _read_record(sock: socket.socket) -> tuple[int, bytes, bytes]:
    header = _read_exactly(sock, 5)
    (length,) = struct.unpack("!H", header[3:5])
    return header[0], header[1:3], _read_exactly(sock, length)


def _record(kind: int, version: bytes, payload: bytes) -> bytes:
    return bytes([kind]) + version + struct.pack("!H", len(payload)) + payload


def _certificate_message(chain_der: list[bytes]) -> bytes:
    entries = b"".join(len(der).to_bytes(3, "big") + der for der in chain_der)
    body = len(entries).to_bytes(3, "big") + entries
    return bytes([_CERTIFICATE]) + len(body).to_bytes(3, "big") + body


class CertificateSwappingProxy:
    """Forwards one TLS 1.2 connection, replacing the client's Certificate message by
    ``stolen_chain`` (``None``: forwarding it unchanged, to show the proxy itself is sound)."""

    def __init__(self, target_port: int, stolen_chain: list[bytes] | None) -> None:
        self._target_port = target_port
        self._stolen = stolen_chain
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(IO_TIMEOUT_S)
        self.port = self._server.getsockname()[1]
        self.swapped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.close()
        self._thread.join(IO_TIMEOUT_S)

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            client, _ = self._server.accept()
            upstream = socket.create_connection(("127.0.0.1", self._target_port), IO_TIMEOUT_S)
            client.settimeout(IO_TIMEOUT_S)
            back = threading.Thread(target=self._pipe, args=(upstream, client), daemon=True)
            back.start()
            with client, upstream:
                self._client_to_server(client, upstream)
                back.join(IO_TIMEOUT_S)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _client_to_server(self, client: socket.socket, upstream: socket.socket) -> None:
        pending = b""  # handshake bytes not yet forming a whole message
        try:
            while True:
                kind, version, payload = _read_record(client)
                if kind != _HANDSHAKE:
                    upstream.sendall(_record(kind, version, payload))
                    if kind == _CHANGE_CIPHER_SPEC:
                        break  # from here on everything is encrypted: pass it through
                    continue
                pending += payload
                while len(pending) >= 4:
                    size = int.from_bytes(pending[1:4], "big")
                    if len(pending) < 4 + size:
                        break
                    message, pending = pending[: 4 + size], pending[4 + size :]
                    if message[0] == _CERTIFICATE and self._stolen is not None:
                        message = _certificate_message(self._stolen)
                        self.swapped.set()
                    upstream.sendall(_record(_HANDSHAKE, version, message))
            self._pipe(client, upstream)
        except (OSError, EOFError):
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)


def test_a_stolen_chain_without_its_key_cannot_complete_tls(
    listener: ListenerProcess, pki: Pki
) -> None:
    stolen = [
        c.public_bytes(serialization.Encoding.DER) for c in pki.device.certificates
    ]  # what anyone who saw the device connect has
    attacker = pki.honest("attacker")  # a key of its own, so its TLS library sends a certificate
    context = _client_context(listener, attacker)
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 encrypts the Certificate message
    control = CertificateSwappingProxy(listener.port, None)
    try:  # through the proxy, untouched, the attacker's own honest identity gets in
        assert (
            http_get(control.port, "/db/_blipsync", UPGRADE_HEADERS, context=context).status == 101
        )
    finally:
        control.close()
    proxy = CertificateSwappingProxy(listener.port, stolen)
    try:
        # OpenSSL answers the bad CertificateVerify with a "decrypt error" alert
        with pytest.raises((ssl.SSLError, OSError)):  # never an HTTP response
            http_get(proxy.port, "/db/_blipsync", UPGRADE_HEADERS, context=context)
        assert proxy.swapped.is_set()  # the listener really was shown the stolen chain
    finally:
        proxy.close()
    # the listener is unharmed and the real device still gets in
    assert listener.alive()
    assert _upgrade_status(listener, pki.device) == 101
