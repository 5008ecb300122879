"""Certificates for the TLS tests, made with the public API (and ``cryptography`` for the
ones the API refuses to make, such as expired ones)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from couchlite import (
    Database,
    KeyUsage,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    TLSIdentity,
    UrlEndpoint,
)
from couchlite.replicator.replicator import AsyncReplicator
from couchlite.transport.websocket import serve_channels
from tests.replicator_api.helpers import FakeClock, StubSession, run
from tests.replicator_api.helpers import hold as _hold

LOCAL = {"CN": "127.0.0.1", "IP": "127.0.0.1", "hostname": "localhost"}


def ca(name: str = "Test Root") -> TLSIdentity:
    return TLSIdentity.create_identity([], {"CN": name, "O": "couchlite tests"}, is_ca=True)


def server(issuer: TLSIdentity | None = None, **attributes: Any) -> TLSIdentity:
    return TLSIdentity.create_identity(KeyUsage.SERVER_AUTH, attributes or LOCAL, issuer=issuer)


def client(issuer: TLSIdentity | None = None, cn: str = "device-1") -> TLSIdentity:
    return TLSIdentity.create_identity(KeyUsage.CLIENT_AUTH, {"CN": cn}, issuer=issuer)


def expired(issuer: TLSIdentity, usage: KeyUsage = KeyUsage.SERVER_AUTH) -> TLSIdentity:
    """A certificate for 127.0.0.1 that expired yesterday, issued by ``issuer``."""
    now = dt.datetime.now(dt.UTC)
    return bare(issuer, usage, now - dt.timedelta(days=30), now - dt.timedelta(days=1))


def bare(
    issuer: TLSIdentity,
    usage: KeyUsage = KeyUsage.SERVER_AUTH,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> TLSIdentity:
    """A certificate for 127.0.0.1 issued by ``issuer`` with no key identifiers (which strict
    RFC 5280 verification wants, as other tools may omit them); valid for a day by default."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    not_before = not_before or now - dt.timedelta(minutes=5)
    not_after = not_after or now + dt.timedelta(days=1)
    purpose = (
        ExtendedKeyUsageOID.SERVER_AUTH
        if usage == KeyUsage.SERVER_AUTH
        else ExtendedKeyUsageOID.CLIENT_AUTH
    )
    issuer_cert = issuer.certificates[0]
    issuer_key: Any = issuer.private_key
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return TLSIdentity([cert, *issuer.certificates], key)


def replicate_against(db: Database, context: ssl.SSLContext, **options: Any) -> AsyncReplicator:
    """A one-shot replicator (stub engine) run against a TLS server on 127.0.0.1 using
    ``context``; returns it stopped, after asserting it never retried."""

    async def main() -> AsyncReplicator:
        async with await serve_channels(_hold, "127.0.0.1", 0, ssl=context) as srv:
            return await replicate_to(db, f"wss://127.0.0.1:{srv.port}/db", **options)

    return run(main())


async def replicate_to(db: Database, url: str, **options: Any) -> AsyncReplicator:
    config = ReplicatorConfiguration(UrlEndpoint(url), **options)
    config.add_collection(db.default_collection())
    clock = FakeClock()
    repl = AsyncReplicator(config, clock=clock, _session_factory=StubSession)
    await repl.start()
    await repl.wait_for(ReplicatorActivityLevel.STOPPED)
    assert clock.delays == [], repr(repl.status.error)  # TLS failures are never retried
    return repl
