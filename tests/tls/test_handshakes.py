"""Real TLS handshakes on 127.0.0.1 for every server-verification rule of the replicator, and
for client-certificate authentication by the listener (callback and roots)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography import x509

from couchlite import (
    AsyncUrlEndpointListener,
    ClientCertificateAuthenticator,
    ConfigurationError,
    Database,
    KeyUsage,
    ListenerCertificateAuthenticator,
    TLSError,
    TLSIdentity,
)
from couchlite.errors import NetworkCode
from tests.listener.conftest import StubRegistry
from tests.listener.helpers import plain_config
from tests.replicator_api.helpers import run

from .helpers import bare, ca, client, expired, replicate_against, replicate_to, server

pytestmark = pytest.mark.timeout(60)


def _tls_error(repl: Any) -> TLSError:
    error = repl.status.error
    assert isinstance(error, TLSError), repr(error)
    assert not error.is_transient
    assert repl.connection_attempts == 1
    return error


# --- the replicator verifying the server ---------------------------------------------------


def test_trusted_roots_accept_a_ca_chain(db: Database) -> None:
    root = ca()
    identity = server(root)
    repl = replicate_against(
        db, identity.server_ssl_context(), trusted_root_certificates=[root.certificates[0]]
    )
    assert repl.status.error is None
    assert repl.server_certificate == identity.certificates[0]


def test_trusted_roots_in_pem_and_der(db: Database) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    root = ca()
    context = server(root).server_ssl_context()
    for form in (root.certificates_pem(), root.certificates[0].public_bytes(Encoding.DER)):
        repl = replicate_against(db, context, trusted_root_certificates=[form])
        assert repl.status.error is None


def test_a_ca_issued_certificate_without_key_identifiers_is_accepted(db: Database) -> None:
    # the same on every Python version (3.13 turns strict RFC 5280 checks on by default)
    root = ca()
    repl = replicate_against(
        db, bare(root).server_ssl_context(), trusted_root_certificates=[root.certificates[0]]
    )
    assert repl.status.error is None


def test_a_trusted_intermediate_is_an_anchor(db: Database) -> None:
    root = ca()
    intermediate = TLSIdentity.create_identity(
        [], {"CN": "Intermediate", "O": "couchlite tests"}, issuer=root, is_ca=True
    )
    identity = server(intermediate)
    context = identity.server_ssl_context()
    repl = replicate_against(db, context, trusted_root_certificates=[intermediate.certificates[0]])
    assert repl.status.error is None
    # and a stranger's root is still no anchor for it
    repl = replicate_against(db, context, trusted_root_certificates=[ca().certificates[0]])
    assert _tls_error(repl).code == NetworkCode.TLS_CERT_UNKNOWN_ROOT


def test_host_name_mismatch(db: Database) -> None:
    root = ca()
    identity = server(root, CN="elsewhere", hostname="elsewhere.example")
    repl = replicate_against(
        db, identity.server_ssl_context(), trusted_root_certificates=[root.certificates[0]]
    )
    assert _tls_error(repl).code == NetworkCode.TLS_CERT_NAME_MISMATCH


def test_expired_server_certificate(db: Database) -> None:
    root = ca()
    repl = replicate_against(
        db,
        expired(root).server_ssl_context(),
        trusted_root_certificates=[root.certificates[0]],
    )
    assert _tls_error(repl).code == NetworkCode.TLS_CERT_EXPIRED


def test_chain_to_an_unknown_root(db: Database) -> None:
    identity = server(ca("Their Root"))
    repl = replicate_against(
        db,
        identity.server_ssl_context(),
        trusted_root_certificates=[ca("Our Root").certificates[0]],
    )
    assert _tls_error(repl).code == NetworkCode.TLS_CERT_UNKNOWN_ROOT
    # and the system's CAs do not know our test root either
    repl = replicate_against(db, identity.server_ssl_context())
    assert _tls_error(repl).code in (
        NetworkCode.TLS_CERT_UNKNOWN_ROOT,
        NetworkCode.TLS_CERT_UNTRUSTED,
    )


def test_self_signed_only_accepts_self_signed_and_refuses_ca_issued(db: Database) -> None:
    own = server()
    repl = replicate_against(
        db, own.server_ssl_context(), accept_only_self_signed_server_certificate=True
    )
    assert repl.status.error is None
    issued = server(ca())
    repl = replicate_against(
        db, issued.server_ssl_context(), accept_only_self_signed_server_certificate=True
    )
    error = _tls_error(repl)
    assert error.code == NetworkCode.TLS_CERT_UNTRUSTED
    assert "not self-signed" in str(error)


def test_pinned_certificate_whatever_its_name_and_issuer(db: Database) -> None:
    identity = server(ca(), CN="elsewhere", hostname="elsewhere.example")
    repl = replicate_against(
        db, identity.server_ssl_context(), pinned_server_certificate=identity.certificates[0]
    )
    assert repl.status.error is None
    repl = replicate_against(
        db, identity.server_ssl_context(), pinned_server_certificate=server().certificates[0]
    )
    assert _tls_error(repl).code == NetworkCode.TLS_CERT_UNTRUSTED


def test_incompatible_certificate_options(db: Database) -> None:
    from couchlite import Replicator, ReplicatorConfiguration

    root = ca().certificates[0]
    for options in (
        {"accept_only_self_signed_server_certificate": True},
        {"pinned_server_certificate": root},
    ):
        config = ReplicatorConfiguration(
            "wss://127.0.0.1:4984/db", trusted_root_certificates=[root], **options
        )
        config.add_collection(db.default_collection())
        with pytest.raises(ConfigurationError):
            Replicator(config)
    config = ReplicatorConfiguration(
        "ws://127.0.0.1:4984/db", authenticator=ClientCertificateAuthenticator(client())
    )
    config.add_collection(db.default_collection())
    with pytest.raises(ConfigurationError):
        Replicator(config)


# --- the listener authenticating clients ---------------------------------------------------


def _listen_and_replicate(
    db: Database,
    authenticator: ListenerCertificateAuthenticator,
    client_identity: x509.Certificate | Any,
) -> Any:
    """Start a listener (stub sessions) with ``authenticator``; run a replicator presenting
    ``client_identity`` (None: no certificate) that pins the listener's certificate."""
    identity = server()

    async def main() -> Any:
        config = plain_config(
            db, disable_tls=False, tls_identity=identity, authenticator=authenticator
        )
        async with AsyncUrlEndpointListener(config) as listener:
            options: dict[str, Any] = {"pinned_server_certificate": identity.certificates[0]}
            if client_identity is not None:
                options["authenticator"] = ClientCertificateAuthenticator(client_identity)
            return await replicate_to(db, listener.urls[0], **options)

    return run(main())


def test_client_certificate_accepted_by_roots(db: Database, stub_sessions: StubRegistry) -> None:
    root = ca("Devices")
    repl = _listen_and_replicate(
        db, ListenerCertificateAuthenticator.from_roots([root.certificates_pem()]), client(root)
    )
    assert repl.status.error is None
    assert len(stub_sessions.sessions) == 1


def test_client_certificate_issued_by_a_trusted_intermediate(
    db: Database, stub_sessions: StubRegistry
) -> None:
    root = ca("Company")
    devices = TLSIdentity.create_identity(
        [], {"CN": "Devices", "O": "couchlite tests"}, issuer=root, is_ca=True
    )
    authenticator = ListenerCertificateAuthenticator.from_roots(devices.certificates[:1])
    repl = _listen_and_replicate(db, authenticator, client(devices))
    assert repl.status.error is None
    repl = _listen_and_replicate(db, authenticator, bare(devices, KeyUsage.CLIENT_AUTH))
    assert repl.status.error is None
    assert len(stub_sessions.sessions) == 2


def test_client_certificate_untrusted_by_roots(db: Database, stub_sessions: StubRegistry) -> None:
    authenticator = ListenerCertificateAuthenticator.from_roots(ca("Devices").certificates)
    repl = _listen_and_replicate(db, authenticator, client(ca("Strangers")))
    assert _tls_error(repl).code == NetworkCode.TLS_CERT_REJECTED_BY_PEER
    repl = _listen_and_replicate(db, authenticator, client())  # self-signed
    assert _tls_error(repl).code == NetworkCode.TLS_CERT_REJECTED_BY_PEER
    assert stub_sessions.sessions == []  # never reached a replication session


def test_client_certificate_required_by_roots(db: Database, stub_sessions: StubRegistry) -> None:
    authenticator = ListenerCertificateAuthenticator.from_roots(ca().certificates)
    repl = _listen_and_replicate(db, authenticator, None)
    assert _tls_error(repl).code == NetworkCode.TLS_CERT_REQUIRED_BY_PEER
    assert stub_sessions.sessions == []


def test_client_certificate_accepted_by_callback(db: Database, stub_sessions: StubRegistry) -> None:
    root = ca("Devices")
    seen: list[list[x509.Certificate]] = []

    def check(chain: list[x509.Certificate]) -> bool:
        seen.append(chain)
        return chain[0].subject.rfc4514_string() == "CN=device-1"

    device = client(root)
    repl = _listen_and_replicate(db, ListenerCertificateAuthenticator(check), device)
    assert repl.status.error is None
    assert [c.subject for c in seen[0]] == [c.subject for c in device.certificates]
    # a self-signed client certificate reaches the callback too
    repl = _listen_and_replicate(db, ListenerCertificateAuthenticator(check), client())
    assert repl.status.error is None
    assert len(stub_sessions.sessions) == 2


def test_async_callback_and_refusals(db: Database, stub_sessions: StubRegistry) -> None:
    async def only_alice(chain: list[x509.Certificate]) -> bool:
        await asyncio.sleep(0)
        return chain[0].subject.rfc4514_string() == "CN=alice"

    authenticator = ListenerCertificateAuthenticator(only_alice)
    assert _listen_and_replicate(db, authenticator, client(cn="alice")).status.error is None
    repl = _listen_and_replicate(db, authenticator, client(cn="mallory"))
    assert _tls_error(repl).code == NetworkCode.TLS_CERT_REJECTED_BY_PEER

    def broken(chain: list[x509.Certificate]) -> bool:
        raise RuntimeError("database down")

    repl = _listen_and_replicate(db, ListenerCertificateAuthenticator(broken), client())
    assert _tls_error(repl).code == NetworkCode.TLS_CERT_REJECTED_BY_PEER
    assert len(stub_sessions.sessions) == 1  # alice only


def test_callback_requires_a_certificate_and_refuses_expired_ones(
    db: Database, stub_sessions: StubRegistry
) -> None:
    calls: list[object] = []

    def accept_all(chain: list[x509.Certificate]) -> bool:
        calls.append(chain)
        return True

    authenticator = ListenerCertificateAuthenticator(accept_all)
    repl = _listen_and_replicate(db, authenticator, None)
    assert _tls_error(repl).code == NetworkCode.TLS_CERT_REQUIRED_BY_PEER
    from couchlite import KeyUsage

    repl = _listen_and_replicate(db, authenticator, expired(ca(), KeyUsage.CLIENT_AUTH))
    assert _tls_error(repl).code == NetworkCode.TLS_CERT_REJECTED_BY_PEER
    assert calls == [] and stub_sessions.sessions == []


def test_certificate_authenticator_needs_tls(db: Database) -> None:
    for authenticator in (
        ListenerCertificateAuthenticator(lambda chain: True),
        ListenerCertificateAuthenticator.from_roots(ca().certificates[0]),
    ):
        with pytest.raises(ConfigurationError):
            AsyncUrlEndpointListener(plain_config(db, authenticator=authenticator))
    with pytest.raises(ConfigurationError):
        ListenerCertificateAuthenticator.from_roots(b"not a certificate")
    with pytest.raises(ConfigurationError):
        ListenerCertificateAuthenticator("not callable")  # type: ignore[arg-type]


def test_expired_listener_identity_is_refused_at_start(db: Database) -> None:
    config = plain_config(db, disable_tls=False, tls_identity=expired(ca()))

    async def main() -> None:
        with pytest.raises(TLSError) as info:
            await AsyncUrlEndpointListener(config).start()
        assert info.value.code == NetworkCode.TLS_CERT_EXPIRED

    run(main())
