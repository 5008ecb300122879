"""TLS of the active replicator against real TLS servers on 127.0.0.1: default verification,
pinned certificates, self-signed-only; the server certificate the replicator reports."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from couchlite import (
    Database,
    ReplicatorActivityLevel,
    TLSError,
)
from couchlite.errors import NetworkCode
from couchlite.transport.tls_client import self_signed_problem
from tests.tls.helpers import replicate_against

from .helpers import der, make_certificate, pem, server_context

Level = ReplicatorActivityLevel


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[x509.Certificate, ssl.SSLContext]:
    cert, key = make_certificate()
    return cert, server_context(tmp_path, cert, key)


@pytest.fixture
def ca_issued(tmp_path: Path) -> tuple[x509.Certificate, x509.Certificate, ssl.SSLContext]:
    ca = make_certificate("Test CA", ca=True)
    leaf, key = make_certificate(issuer=ca)
    return ca[0], leaf, server_context(tmp_path, leaf, key, chain=[ca[0]])


def test_self_signed_accepted_with_accept_only_self_signed(db: Database, self_signed: Any) -> None:
    cert, context = self_signed
    repl = replicate_against(db, context, accept_only_self_signed_server_certificate=True)
    assert repl.status.error is None
    assert repl.connection_attempts == 1
    assert repl.server_certificate == cert


def test_pinned_certificate_accepted(db: Database, self_signed: Any) -> None:
    cert, context = self_signed
    for form in (cert, pem(cert), der(cert)):
        repl = replicate_against(db, context, pinned_server_certificate=form)
        assert repl.status.error is None
        assert repl.server_certificate == cert


def test_other_pinned_certificate_refused(db: Database, self_signed: Any) -> None:
    _, context = self_signed
    other, _ = make_certificate()
    repl = replicate_against(db, context, pinned_server_certificate=other, max_attempts=5)
    error = repl.status.error
    assert isinstance(error, TLSError) and not error.is_transient
    assert "does not match the pinned certificate" in str(error)
    assert repl.connection_attempts == 1
    # the certificate we were shown is still reported, for diagnosis
    assert repl.server_certificate is not None


def test_self_signed_refused_by_default_verification(db: Database, self_signed: Any) -> None:
    _, context = self_signed
    repl = replicate_against(db, context)
    error = repl.status.error
    assert isinstance(error, TLSError)
    assert error.code == NetworkCode.TLS_CERT_UNTRUSTED
    assert repl.connection_attempts == 1


def test_ca_issued_refused_by_self_signed_only(db: Database, ca_issued: Any) -> None:
    _, _, context = ca_issued
    repl = replicate_against(db, context, accept_only_self_signed_server_certificate=True)
    error = repl.status.error
    assert isinstance(error, TLSError) and "not self-signed" in str(error)
    assert repl.connection_attempts == 1


def test_ca_issued_accepted_when_pinned(db: Database, ca_issued: Any) -> None:
    _, leaf, context = ca_issued
    repl = replicate_against(db, context, pinned_server_certificate=leaf)
    assert repl.status.error is None
    assert repl.server_certificate == leaf


def test_self_signed_check() -> None:
    ca = make_certificate("CA", ca=True)
    leaf, _ = make_certificate(issuer=ca)
    assert self_signed_problem(der(ca[0])) is None
    assert self_signed_problem(der(make_certificate()[0])) is None
    assert self_signed_problem(der(leaf)) is not None
    # same subject as the issuer, but signed by another key: not self-signed
    impostor_ca = make_certificate("Impostor", ca=True)
    impostor, _ = make_certificate("Impostor", issuer=impostor_ca)
    assert impostor.issuer == impostor.subject
    assert self_signed_problem(der(impostor)) is not None
    assert self_signed_problem(b"garbage") is not None


def test_tls_error_codes_from_openssl_errors() -> None:
    import ssl as ssl_module

    from couchlite.transport.boundary import tls_error_code

    def verification(code: int | None) -> ssl_module.SSLCertVerificationError:
        error = ssl_module.SSLCertVerificationError("verify failed")
        if code is not None:
            error.verify_code = code
        return error

    assert tls_error_code(verification(10)) == NetworkCode.TLS_CERT_EXPIRED
    assert tls_error_code(verification(62)) == NetworkCode.TLS_CERT_NAME_MISMATCH
    assert tls_error_code(verification(64)) == NetworkCode.TLS_CERT_NAME_MISMATCH
    assert tls_error_code(verification(20)) == NetworkCode.TLS_CERT_UNKNOWN_ROOT
    assert tls_error_code(verification(18)) == NetworkCode.TLS_CERT_UNTRUSTED
    # our own refusals, or a Python that sets no verify_code
    assert (
        tls_error_code(ssl_module.SSLCertVerificationError("x")) == NetworkCode.TLS_CERT_UNTRUSTED
    )
    required = ssl_module.SSLError(
        1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required"
    )
    assert tls_error_code(required) == NetworkCode.TLS_CERT_REQUIRED_BY_PEER
    bad = ssl_module.SSLError(1, "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate")
    assert tls_error_code(bad) == NetworkCode.TLS_CERT_REJECTED_BY_PEER
    assert tls_error_code(ssl_module.SSLError(1, "wrong version number")) == (
        NetworkCode.TLS_HANDSHAKE_FAILED
    )
