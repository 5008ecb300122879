"""TLS: the anonymous identity (real handshakes, persistence, a private key file), configured
identities with a chain, TLSIdentity itself."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from couchlite import (
    AsyncUrlEndpointListener,
    Database,
    DatabaseConfiguration,
    InvalidArgumentError,
    TLSError,
    TLSIdentity,
    UrlEndpointListener,
)
from couchlite.tls import keyprotection as store_module
from couchlite.tls.anonymous import IDENTITY_FILE_NAME, load_or_create_anonymous_identity
from couchlite.transport.tls_context import apply_chain_rules
from couchlite.transport.websocket import connect_channel
from tests.listener.conftest import StubRegistry
from tests.listener.helpers import UPGRADE_HEADERS, http_get, pinned_context, plain_config
from tests.transport.helpers import run

pytestmark = pytest.mark.timeout(60)


def _fingerprint(certificate: x509.Certificate) -> bytes:
    return certificate.fingerprint(hashes.SHA256())


def _tls_config(db: Database, **kwargs: object):
    return plain_config(db, disable_tls=False, **kwargs)


def test_anonymous_identity_real_handshake(db: Database, stub_sessions: StubRegistry) -> None:
    async def main() -> None:
        async with AsyncUrlEndpointListener(_tls_config(db)) as listener:
            identity = listener.tls_identity
            assert identity is not None
            leaf = identity.certificates[0]
            assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
                "couchlite-anonymous"
            )
            assert leaf.issuer == leaf.subject  # self-signed
            assert isinstance(identity.private_key, rsa.RSAPrivateKey)
            assert identity.private_key.key_size == 2048
            lifetime = identity.expiration - dt.datetime.now(dt.UTC)
            assert dt.timedelta(days=364) < lifetime <= dt.timedelta(days=365)
            url = listener.urls[0]
            assert url.startswith("wss://127.0.0.1:")
            channel = await connect_channel(f"{url}/_blipsync", ssl=pinned_context(identity))
            assert channel.subprotocol == "BLIP_3+CBMobile_3"
            await channel.close()
            # a client trusting only the system CAs refuses the self-signed certificate
            with pytest.raises(TLSError):
                await connect_channel(f"{url}/_blipsync", ssl=ssl.create_default_context())

    run(main())


def test_strict_verifiers_accept_the_pinned_anonymous_certificate(
    db: Database, stub_sessions: StubRegistry
) -> None:
    with UrlEndpointListener(_tls_config(db)) as listener:
        identity = listener.tls_identity
        assert identity is not None
        context = pinned_context(identity)
        context.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        result = http_get(listener.port, "/test/_blipsync", UPGRADE_HEADERS, context=context)
        assert result.status == 101


def test_anonymous_identity_survives_restarts(
    tmp_path, db: Database, stub_sessions: StubRegistry
) -> None:
    first = UrlEndpointListener(_tls_config(db))
    assert first.tls_identity is None  # the anonymous identity is loaded by start()
    with first:
        assert first.tls_identity is not None
        fingerprint = _fingerprint(first.tls_identity.certificates[0])
    with UrlEndpointListener(_tls_config(db)) as second:
        assert second.tls_identity is not None
        assert _fingerprint(second.tls_identity.certificates[0]) == fingerprint
        # and it is what the server really presents
        with socket.create_connection(("127.0.0.1", second.port)) as raw:
            context = pinned_context(second.tls_identity)
            with context.wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
        assert der is not None
        assert _fingerprint(x509.load_der_x509_certificate(der)) == fingerprint
    # a reopened database (another Database object) has the same identity
    reopened = Database("test", DatabaseConfiguration(directory=db.path.parent))
    try:
        config = plain_config(reopened, disable_tls=False)
        with UrlEndpointListener(config) as third:
            assert third.tls_identity is not None
            assert _fingerprint(third.tls_identity.certificates[0]) == fingerprint
    finally:
        reopened.close()


@pytest.fixture
def no_keystore_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither a key-store passphrase nor an OS keyring: the key is kept by file permissions."""
    monkeypatch.delenv(store_module.PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr(store_module, "_working_keyring", lambda: None)
    TLSIdentity.set_keystore_passphrase(None)


def test_identity_file_is_private_and_says_how_the_key_is_kept(
    db: Database, stub_sessions: StubRegistry, no_keystore_secret: None
) -> None:
    with UrlEndpointListener(_tls_config(db)) as listener:
        identity = listener.tls_identity
        assert identity is not None
    path = db.path / IDENTITY_FILE_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(db.path).st_mode) == 0o700
    record = json.loads(path.read_text("ascii"))
    # no pretend encryption: the key is in the clear, protected by the file's mode alone
    assert record["protection"] == "file-permissions"
    assert "ENCRYPTED" not in record["private_key"]
    key = serialization.load_pem_private_key(record["private_key"].encode(), password=None)
    assert _public(key) == _public(identity.private_key)
    certificates = x509.load_pem_x509_certificates(record["certificates"].encode())
    assert [_fingerprint(c) for c in certificates] == [
        _fingerprint(c) for c in identity.certificates
    ]
    # no temporary files left next to it, and no key derived from the database's UUID
    assert [p.name for p in db.path.iterdir() if "listener-identity" in p.name] == [
        IDENTITY_FILE_NAME
    ]


def _public(key: object) -> bytes:
    public = key.public_key()  # type: ignore[attr-defined]
    return public.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_keystore_renews_expired_and_replaces_unreadable(
    tmp_path, caplog, no_keystore_secret: None
) -> None:
    first = load_or_create_anonymous_identity(tmp_path)
    again = load_or_create_anonymous_identity(tmp_path)
    assert _fingerprint(again.certificates[0]) == _fingerprint(first.certificates[0])
    # a year and a day later it has expired: a new one replaces it, and is kept
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=366)
    renewed = load_or_create_anonymous_identity(tmp_path, now=later)
    assert _fingerprint(renewed.certificates[0]) != _fingerprint(first.certificates[0])
    kept = load_or_create_anonymous_identity(tmp_path)
    assert _fingerprint(kept.certificates[0]) == _fingerprint(renewed.certificates[0])
    # the day before expiry counts as expired (renewal margin)
    almost = renewed.expiration - dt.timedelta(hours=12)
    near_expiry = load_or_create_anonymous_identity(tmp_path, now=almost)
    assert _fingerprint(near_expiry.certificates[0]) != _fingerprint(renewed.certificates[0])
    # a damaged file is replaced, with a warning
    (tmp_path / IDENTITY_FILE_NAME).write_bytes(b"garbage")
    fresh = load_or_create_anonymous_identity(tmp_path)
    assert "unreadable" in caplog.text
    assert _fingerprint(fresh.certificates[0]) != _fingerprint(near_expiry.certificates[0])


def test_keystore_write_failure_is_a_tls_error(tmp_path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(TLSError) as info:
        load_or_create_anonymous_identity(missing)
    assert info.value.domain == "POSIX"


def _ca_and_leaf() -> tuple[TLSIdentity, x509.Certificate]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test root")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "configured")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    return TLSIdentity([leaf, ca], leaf_key, label="configured"), ca


def test_configured_identity_is_used_with_its_chain(
    db: Database, stub_sessions: StubRegistry
) -> None:
    identity, ca = _ca_and_leaf()

    async def main() -> None:
        async with AsyncUrlEndpointListener(_tls_config(db, tls_identity=identity)) as listener:
            assert listener.tls_identity is identity
            context = ssl.create_default_context(
                cadata=ca.public_bytes(serialization.Encoding.PEM).decode()
            )
            context.check_hostname = False
            apply_chain_rules(context)  # as the replicator verifies, on every Python version
            channel = await connect_channel(f"{listener.urls[0]}/_blipsync", ssl=context)
            await channel.close()

    run(main())
    assert not (db.path / IDENTITY_FILE_NAME).exists()


def test_disabled_tls_has_no_identity(db: Database, stub_sessions: StubRegistry) -> None:
    identity, _ca = _ca_and_leaf()
    with UrlEndpointListener(plain_config(db, tls_identity=identity)) as listener:
        assert listener.tls_identity is None
        assert listener.urls[0].startswith("ws://")
    assert not (db.path / IDENTITY_FILE_NAME).exists()


def test_tls_identity_pem_round_trip_and_checks() -> None:
    identity, ca = _ca_and_leaf()
    key_pem = identity.private_key_pem(b"pw")
    assert b"ENCRYPTED PRIVATE KEY" in key_pem
    loaded = TLSIdentity.from_pem(identity.certificates_pem(), key_pem, password=b"pw")
    assert [_fingerprint(c) for c in loaded.certificates] == [
        _fingerprint(c) for c in identity.certificates
    ]
    assert loaded.expiration == identity.expiration
    assert "configured" in repr(loaded)
    clear_key = identity.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert TLSIdentity.from_pem(identity.certificates_pem().decode(), clear_key.decode())
    with pytest.raises(InvalidArgumentError):
        TLSIdentity.from_pem(identity.certificates_pem(), key_pem)  # password missing
    with pytest.raises(InvalidArgumentError):
        TLSIdentity.from_pem(b"not pem", clear_key)
    with pytest.raises(InvalidArgumentError, match="does not match"):
        TLSIdentity([ca], identity.private_key)
    with pytest.raises(InvalidArgumentError):
        TLSIdentity([], identity.private_key)
    with pytest.raises(InvalidArgumentError):
        identity.private_key_pem(b"")
    context = identity.server_ssl_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_plain_client_on_a_tls_listener_does_not_disturb_it(
    db: Database, stub_sessions: StubRegistry
) -> None:
    with UrlEndpointListener(_tls_config(db)) as listener:
        assert listener.tls_identity is not None
        with pytest.raises(Exception):  # noqa: B017 - any failure: the server speaks TLS
            http_get(listener.port, "/test/_blipsync", UPGRADE_HEADERS)
        result = http_get(
            listener.port,
            "/test/_blipsync",
            UPGRADE_HEADERS,
            context=pinned_context(listener.tls_identity),
        )
        assert result.status == 101


def test_certificate_authenticator_requires_tls(db: Database) -> None:
    from couchlite import ConfigurationError, ListenerCertificateAuthenticator

    authenticator = ListenerCertificateAuthenticator(lambda chain: True)
    with pytest.raises(ConfigurationError, match="needs TLS"):
        UrlEndpointListener(plain_config(db, authenticator=authenticator))
    # with TLS it is accepted, and the roots form too
    UrlEndpointListener(_tls_config(db, authenticator=authenticator))
    _identity, ca = _ca_and_leaf()
    roots = ListenerCertificateAuthenticator.from_roots(ca.public_bytes(serialization.Encoding.PEM))
    assert roots.roots == [ca] and roots.fn is None
    UrlEndpointListener(_tls_config(db, authenticator=roots))
