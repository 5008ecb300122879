"""``ListenerCertificateAuthenticator(fn)``: forged client chains are refused before ``fn`` is
called, honest ones reach it and its verdict is what counts (real TLS handshakes on 127.0.0.1),
and the chain checks themselves, one rule at a time."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from couchlite import (
    AsyncUrlEndpointListener,
    ClientCertificateAuthenticator,
    Database,
    ListenerCertificateAuthenticator,
    TLSError,
    TLSIdentity,
    UrlEndpointListener,
)
from couchlite._tuning import MAX_CLIENT_CHAIN_LENGTH
from couchlite.errors import NetworkCode
from couchlite.tls.chains import ChainError, verify_client_chain
from tests.listener.conftest import StubRegistry
from tests.listener.helpers import UPGRADE_HEADERS, http_get, pinned_context, plain_config
from tests.replicator_api.helpers import run

from .forgeries import CLIENT, Pki, certificate, forgeries, new_key
from .helpers import replicate_to, server

pytestmark = pytest.mark.timeout(60)

PKI = Pki.create()
FORGERIES = forgeries(PKI)
SERVER_IDENTITY = server()


class Judge:
    """``fn``: trusts chains whose top is the real root (the check the issue found forgeable)."""

    def __init__(self, verdict: bool = True) -> None:
        self.verdict = verdict
        self.calls: list[list[x509.Certificate]] = []

    def __call__(self, chain: list[x509.Certificate]) -> bool:
        self.calls.append(chain)
        return self.verdict and chain[-1] == PKI.root


def _replicate(db: Database, judge: Judge, identity: TLSIdentity) -> Any:
    async def main() -> Any:
        config = plain_config(
            db,
            disable_tls=False,
            tls_identity=SERVER_IDENTITY,
            authenticator=ListenerCertificateAuthenticator(judge),
        )
        async with AsyncUrlEndpointListener(config) as listener:
            return await replicate_to(
                db,
                listener.urls[0],
                pinned_server_certificate=SERVER_IDENTITY.certificates[0],
                authenticator=ClientCertificateAuthenticator(identity),
            )

    return run(main())


def _rejected(repl: Any) -> bool:
    error = repl.status.error
    return isinstance(error, TLSError) and error.code == NetworkCode.TLS_CERT_REJECTED_BY_PEER


def _upgrade(db: Database, judge: Judge, identity: TLSIdentity) -> int:
    """The HTTP status a raw TLS client presenting ``identity`` gets for a WebSocket upgrade
    (a raw client: the replicator itself refuses to present a certificate not for clientAuth)."""
    config = plain_config(
        db,
        disable_tls=False,
        tls_identity=SERVER_IDENTITY,
        authenticator=ListenerCertificateAuthenticator(judge),
    )
    context = pinned_context(SERVER_IDENTITY)
    identity.load_into(context)
    with UrlEndpointListener(config) as listener:
        return http_get(listener.port, "/test/_blipsync", UPGRADE_HEADERS, context=context).status


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_chain_is_refused_before_fn(
    db: Database, stub_sessions: StubRegistry, forgery: str, caplog: pytest.LogCaptureFixture
) -> None:
    judge = Judge()
    caplog.set_level("INFO", logger="couchlite.listener.certauth")
    assert _upgrade(db, judge, FORGERIES[forgery]) == 401
    assert judge.calls == []  # never asked
    assert stub_sessions.sessions == []  # never reached a replication session
    assert "refused" in caplog.text  # and the reason is logged


def test_a_forged_chain_is_a_rejected_certificate_to_the_replicator(
    db: Database, stub_sessions: StubRegistry
) -> None:
    judge = Judge()
    repl = _replicate(db, judge, FORGERIES["self-signed leaf + real CA appended"])
    assert _rejected(repl), repr(repl.status.error)  # not retried (replicate_to checks)
    assert judge.calls == []


def test_every_forgery_would_fool_the_naive_check() -> None:
    # What makes the refusals above meaningful: without the chain checks, fn says yes.
    judge = Judge()
    for identity in FORGERIES.values():
        assert judge(identity.certificates)


def test_an_honest_chain_reaches_fn_and_its_verdict_counts(
    db: Database, stub_sessions: StubRegistry
) -> None:
    judge = Judge()
    assert _upgrade(db, judge, PKI.device) == 101
    repl = _replicate(db, judge, PKI.device)
    assert repl.status.error is None
    assert len(judge.calls) == 2
    assert [c.fingerprint(hashes.SHA256()) for c in judge.calls[1]] == [
        c.fingerprint(hashes.SHA256()) for c in PKI.device.certificates
    ]
    assert len(stub_sessions.sessions) == 2
    # fn saying no is a no, on the same honest chain
    refusing = Judge(verdict=False)
    repl = _replicate(db, refusing, PKI.honest())
    assert _rejected(repl)
    assert len(refusing.calls) == 1
    assert len(stub_sessions.sessions) == 2


def test_a_self_signed_client_reaches_fn(db: Database, stub_sessions: StubRegistry) -> None:
    # Internally valid, trusted by nobody yet: fn decides (here: a pinned device).
    key = new_key()
    device = certificate("pinned-device", key, eku=[CLIENT])
    identity = TLSIdentity([device], key)
    calls: list[object] = []

    def pinned(chain: list[x509.Certificate]) -> bool:
        calls.append(chain)
        return chain[0] == device

    judge: Any = pinned
    assert _replicate(db, judge, identity).status.error is None
    assert len(calls) == 1


# --- the rules, without a handshake ----------------------------------------------------------


def _refused(chain: list[x509.Certificate], match: str, **kwargs: Any) -> None:
    with pytest.raises(ChainError, match=match):
        verify_client_chain(chain, **kwargs)


def test_rules_one_at_a_time() -> None:
    verify_client_chain(PKI.device.certificates)
    verify_client_chain(PKI.device.certificates[:2])  # the root may be left out (RFC 8446)
    _refused([], "no client certificate")
    for forgery, match in [
        ("self-signed leaf + real CA appended", "not issued by"),
        ("leaf signed by another key under the CA's name", "signature"),
        ("self-signed leaf claiming the intermediate", "signature"),
        ("expired intermediate", "not valid now"),
        ("leaf without clientAuth", "clientAuth"),
        ("a non-CA signs the leaf", "not a CA"),
        ("issuer without keyCertSign", "keyCertSign"),
        ("path length exceeded", "path length"),
        ("too many certificates", f"at most {MAX_CLIENT_CHAIN_LENGTH}"),
    ]:
        _refused(FORGERIES[forgery].certificates, match)
    # dates are checked for every certificate, against the moment given
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    _refused(PKI.device.certificates, "not valid now", now=later)
    _refused([PKI.device.certificates[0], PKI.device.certificates[0]], "twice")


def test_rules_on_extensions_and_signatures() -> None:
    key = new_key()
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    leaf = certificate(
        "device-1",
        key,
        issuer=(PKI.intermediate, PKI.intermediate_key),
        eku=[CLIENT],
        extra=[(unknown, True)],
    )
    _refused([leaf, PKI.intermediate], "unsupported critical extension")
    # the same extension, not critical, may be ignored
    leaf = certificate(
        "device-1",
        key,
        issuer=(PKI.intermediate, PKI.intermediate_key),
        eku=[CLIENT],
        extra=[(unknown, False)],
    )
    verify_client_chain([leaf, PKI.intermediate])
    # anyExtendedKeyUsage allows client authentication; no EKU at all does too
    any_usage = x509.oid.ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE
    for eku in ([any_usage], None):
        leaf = certificate(
            "device-1", key, issuer=(PKI.intermediate, PKI.intermediate_key), eku=eku
        )
        verify_client_chain([leaf, PKI.intermediate, PKI.root])
    # a self-issued top whose signature does not verify
    forged_root = certificate("Devices Root", new_key(), ca=True)
    tampered = x509.load_der_x509_certificate(_flip_last_byte(forged_root.public_bytes(_DER)))
    _refused([tampered], "self-signature")


_DER = serialization.Encoding.DER


def _flip_last_byte(der: bytes) -> bytes:
    # The signature is the last field: changing its final byte keeps the DER well formed.
    return der[:-1] + bytes([der[-1] ^ 0x01])


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool")
def test_a_sha1_signature_does_not_count_as_a_link(tmp_path: Path) -> None:
    # cryptography no longer signs with SHA-1; the openssl tool still does.
    ca_pem = tmp_path / "ca.pem"
    ca_key = tmp_path / "ca.key"
    ca_pem.write_bytes(PKI.intermediate.public_bytes(serialization.Encoding.PEM))
    ca_key.write_bytes(
        PKI.intermediate_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key = tmp_path / "leaf.key"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-subj", "/CN=device-1", "-out", str(tmp_path / "csr")],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "x509", "-req", "-in", str(tmp_path / "csr"), "-CA", str(ca_pem),
         "-CAkey", str(ca_key), "-CAcreateserial", "-sha1", "-days", "2",
         "-out", str(tmp_path / "leaf.pem")],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    leaf = x509.load_pem_x509_certificate((tmp_path / "leaf.pem").read_bytes())
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA1)
    _refused([leaf, PKI.intermediate], "sha1")
