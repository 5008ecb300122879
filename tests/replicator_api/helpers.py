"""Shared helpers of the replicator API tests: servers on 127.0.0.1, certificates, fake clocks."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from couchlite.transport.blip_connection import BlipConnection
from couchlite.transport.channel import ChannelClosed
from couchlite.transport.websocket import HandshakeRequest, WebSocketChannel

T = TypeVar("T")

#: Bound on every test body (a hang is a failure; pytest-timeout backs it up).
TEST_TIMEOUT_S = 30.0


def run(coro: Coroutine[Any, Any, T], timeout: float = TEST_TIMEOUT_S) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def hold(channel: WebSocketChannel) -> None:
    """A passive side that says nothing and waits for the client to close (a server handler)."""
    try:
        while True:
            await channel.recv()
    except ChannelClosed:
        pass


class FakeClock:
    """A backoff clock that records the delays asked for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


class BlockedClock:
    """A backoff clock whose sleeps never end by themselves (only a cancellation ends them)."""

    def __init__(self) -> None:
        self.sleeping = asyncio.Event()
        self.delays: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.sleeping.set()
        await asyncio.Event().wait()


@dataclass
class RequestLog:
    """Records the upgrade requests a test server saw (and refuses them if told to)."""

    requests: list[HandshakeRequest] = field(default_factory=list)

    def __call__(self, request: HandshakeRequest) -> None:
        self.requests.append(request)


class StubSession:
    """Stands in for the engine's ActiveSession: one-shot sessions end at once; continuous
    ones last until the connection ends (raising its error, as the engine does)."""

    instances: list[StubSession] = []

    def __init__(self, connection: BlipConnection, db: Any, collections: Any, **kwargs: Any):
        self.connection = connection
        self.db = db
        self.collections = collections
        self.kwargs = kwargs
        StubSession.instances.append(self)

    async def run(self) -> None:
        events = self.kwargs["events"]
        events.activity_changed(True)
        events.progress(0, 0)
        if not self.kwargs["continuous"]:
            events.activity_changed(False)
            return
        events.activity_changed(False)
        await self.connection.wait_closed()


# --- certificates --------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certificate(
    cn: str = "127.0.0.1",
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    ca: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for ``cn`` (with an IP SAN for 127.0.0.1): self-signed, or by ``issuer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    issuer_name = issuer[0].subject if issuer else _name(cn)
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA256()), key


def server_context(
    directory: Path,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    chain: list[x509.Certificate] | None = None,
) -> ssl.SSLContext:
    cert_path = directory / f"cert-{cert.serial_number}.pem"
    key_path = directory / f"key-{cert.serial_number}.pem"
    pem = cert.public_bytes(serialization.Encoding.PEM)
    for extra in chain or []:
        pem += extra.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
