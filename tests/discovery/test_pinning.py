"""Certificate pinning against real TLS listeners on 127.0.0.1: ``server_fingerprint``, and
trust on first use with the pin kept in the database (no discovery needed here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from couchlite import (
    BasicAuthenticator,
    CertificateMismatchError,
    ConfigurationError,
    Database,
    DatabaseConfiguration,
    KeyUsage,
    ListenerPasswordAuthenticator,
    MutableDocument,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    ReplicatorStatus,
    TLSError,
    TLSIdentity,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
)
from couchlite.errors import NetworkCode
from couchlite.tls.fingerprint import certificate_fingerprint

pytestmark = pytest.mark.timeout(90)

WAIT_S = 30.0


def _identity() -> TLSIdentity:
    return TLSIdentity.create_identity(KeyUsage.SERVER_AUTH, {"CN": "laptop", "IP": "127.0.0.1"})


def _fingerprint(identity: TLSIdentity) -> str:
    return certificate_fingerprint(identity.certificates[0].public_bytes(Encoding.DER))


def _listener(
    db: Database,
    identity: TLSIdentity,
    port: int | None = None,
    authenticator: ListenerPasswordAuthenticator | None = None,
) -> UrlEndpointListener:
    config = UrlEndpointListenerConfiguration(
        collections=[db.default_collection()],
        network_interface="127.0.0.1",
        tls_identity=identity,
        port=port,
        authenticator=authenticator,
    )
    return UrlEndpointListener(config)


def _replicate(phone: Database, url: str, **options: object) -> ReplicatorStatus:
    config = ReplicatorConfiguration(url, max_attempts=1, **options)  # type: ignore[arg-type]
    config.add_collection(phone.default_collection())
    with Replicator(config) as replicator:
        return replicator.wait_for(ReplicatorActivityLevel.STOPPED, timeout=WAIT_S)


@pytest.fixture
def dbs(tmp_path: Path):  # type: ignore[no-untyped-def]
    laptop = Database("laptop", DatabaseConfiguration(directory=tmp_path))
    phone = Database("phone", DatabaseConfiguration(directory=tmp_path))
    laptop.default_collection().save(MutableDocument("doc-1", {"from": "laptop"}))
    yield laptop, phone
    phone.close()
    laptop.close()


def test_the_right_fingerprint_is_accepted_in_any_spelling(dbs) -> None:  # type: ignore[no-untyped-def]
    laptop, phone = dbs
    identity = _identity()
    fingerprint = _fingerprint(identity)
    colons = ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    with _listener(laptop, identity) as listener:
        for spelling in (fingerprint, colons):
            status = _replicate(phone, listener.urls[0], server_fingerprint=spelling)
            assert status.error is None
    assert phone.default_collection().get("doc-1") is not None
    assert phone.pins() == {}  # no trust on first use: nothing stored


def test_another_fingerprint_is_refused_before_any_credentials(dbs) -> None:  # type: ignore[no-untyped-def]
    laptop, phone = dbs
    identity = _identity()
    wrong = "0" * 64
    with _listener(laptop, identity) as listener:
        status = _replicate(phone, listener.urls[0], server_fingerprint=wrong)
    error = status.error
    assert isinstance(error, CertificateMismatchError) and isinstance(error, TLSError)
    assert error.code == NetworkCode.TLS_CERT_UNTRUSTED and not error.is_transient
    assert error.expected == wrong and error.actual == _fingerprint(identity)
    assert error.pin_key is None
    assert wrong in str(error) and _fingerprint(identity) in str(error)
    assert phone.default_collection().get("doc-1") is None


def test_a_refused_certificate_never_sees_the_password(dbs) -> None:  # type: ignore[no-untyped-def]
    laptop, phone = dbs
    first, second = _identity(), _identity()
    offered: list[str] = []

    def check(user: str, password: str) -> bool:
        offered.append(password)
        return password == "s3cret"

    def listener(identity: TLSIdentity, port: int | None = None) -> UrlEndpointListener:
        return _listener(laptop, identity, port, ListenerPasswordAuthenticator(check))

    auth = BasicAuthenticator("phone", "s3cret")
    with listener(first) as served:
        url, port = served.urls[0], served.port
        status = _replicate(phone, url, authenticator=auth, server_fingerprint="0" * 64)
        assert isinstance(status.error, CertificateMismatchError)
        assert offered == []  # refused inside the TLS handshake, before the upgrade request
        pin = {"trust_on_first_use": True, "peer_id": "cafe0002"}
        assert _replicate(phone, url, authenticator=auth, **pin).error is None
        assert offered == ["s3cret"]  # first use: the password goes where TOFU trusts
    with listener(second, port):
        status = _replicate(phone, url, authenticator=auth, **pin)
        assert isinstance(status.error, CertificateMismatchError)
        assert status.error.pin_key == "cafe0002"
    assert offered == ["s3cret"]  # never to the changed certificate


def test_trust_on_first_use_pins_then_refuses_a_changed_certificate(dbs) -> None:  # type: ignore[no-untyped-def]
    laptop, phone = dbs
    first, second = _identity(), _identity()
    with _listener(laptop, first) as listener:
        url, port = listener.urls[0], listener.port
        status = _replicate(phone, url, trust_on_first_use=True, peer_id="cafe0001")
        assert status.error is None
    assert phone.pins() == {"cafe0001": _fingerprint(first)}
    with _listener(laptop, first, port) as listener:  # the same certificate: accepted
        assert _replicate(phone, url, trust_on_first_use=True, peer_id="cafe0001").error is None

    with _listener(laptop, second, port) as listener:  # a new identity: refused
        status = _replicate(phone, url, trust_on_first_use=True, peer_id="cafe0001")
        error = status.error
        assert isinstance(error, CertificateMismatchError)
        assert (error.expected, error.actual) == (_fingerprint(first), _fingerprint(second))
        assert error.pin_key == "cafe0001"
        assert "forget_pin('cafe0001')" in str(error) and "changed" in str(error)
        # even when told the new fingerprint (as a discovered peer's record would)
        status = _replicate(
            phone,
            url,
            trust_on_first_use=True,
            peer_id="cafe0001",
            server_fingerprint=_fingerprint(second),
        )
        assert isinstance(status.error, CertificateMismatchError)
        assert status.error.pin_key == "cafe0001"
        assert phone.pins() == {"cafe0001": _fingerprint(first)}  # the pin stays

        assert phone.forget_pin("cafe0001") and not phone.forget_pin("cafe0001")
        assert _replicate(phone, url, trust_on_first_use=True, peer_id="cafe0001").error is None
    assert phone.pins() == {"cafe0001": _fingerprint(second)}


def test_without_a_peer_id_the_url_keys_the_pin(dbs) -> None:  # type: ignore[no-untyped-def]
    laptop, phone = dbs
    with _listener(laptop, _identity()) as listener:
        url = listener.urls[0]
        assert _replicate(phone, url, trust_on_first_use=True).error is None
    assert list(phone.pins()) == [url]


def test_trust_on_first_use_keeps_self_signed_only_semantics(dbs) -> None:  # type: ignore[no-untyped-def]
    laptop, phone = dbs
    ca = TLSIdentity.create_identity([], {"CN": "CA"}, is_ca=True)
    issued = TLSIdentity.create_identity(
        KeyUsage.SERVER_AUTH, {"CN": "laptop", "IP": "127.0.0.1"}, issuer=ca
    )
    with _listener(laptop, issued) as listener:
        status = _replicate(
            phone,
            listener.urls[0],
            trust_on_first_use=True,
            accept_only_self_signed_server_certificate=True,
        )
    assert isinstance(status.error, TLSError)
    assert not isinstance(status.error, CertificateMismatchError)
    assert "self-signed" in str(status.error)
    assert phone.pins() == {}  # nothing pinned from a refused handshake


def test_pin_options_are_checked_when_a_replicator_is_made(dbs) -> None:  # type: ignore[no-untyped-def]
    _, phone = dbs
    cases = [
        ("wss://127.0.0.1:1/db", {"server_fingerprint": "abc"}, "64 hex"),
        ("ws://127.0.0.1:1/db", {"server_fingerprint": "a" * 64}, "wss://"),
        ("ws://127.0.0.1:1/db", {"trust_on_first_use": True}, "wss://"),
        ("wss://127.0.0.1:1/db", {"trust_on_first_use": "yes"}, "bool"),
        ("wss://127.0.0.1:1/db", {"trust_on_first_use": True, "peer_id": " "}, "peer_id"),
        (
            "wss://127.0.0.1:1/db",
            {
                "server_fingerprint": "a" * 64,
                "pinned_server_certificate": _identity().certificates[0],
            },
            "cannot both",
        ),
        (
            "wss://127.0.0.1:1/db",
            {
                "server_fingerprint": "a" * 64,
                "trusted_root_certificates": [_identity().certificates[0]],
            },
            "cannot be combined",
        ),
        (
            "wss://127.0.0.1:1/db",
            {"trust_on_first_use": True, "allow_cross_origin_redirects": True},
            "cannot be combined with allow_cross_origin_redirects",
        ),
    ]
    for url, options, message in cases:
        config = ReplicatorConfiguration(url, **options)  # type: ignore[arg-type]
        config.add_collection(phone.default_collection())
        with pytest.raises(ConfigurationError, match=message):
            Replicator(config)
    with pytest.raises(Exception, match="string"):
        phone.forget_pin(5)  # type: ignore[arg-type]
