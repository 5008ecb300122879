"""The active replicator's TLS client context (notes §11.2): default, trusted roots, pinned,
self-signed-only; and the client certificate it presents.

Theory of operation
-------------------
Python's ``ssl`` has no certificate-verification callback, but an ``SSLContext`` lets us choose
the class of the ``SSLObject`` that asyncio drives through the handshake (``sslobject_class``).
Ours runs after OpenSSL has finished its own checks: it records the peer's leaf certificate (for
``Replicator.server_certificate``) and, for the two special modes, applies the check OpenSSL
cannot express, raising ``ssl.SSLCertVerificationError`` *inside the handshake*. The connection
then fails exactly as an ordinary verification failure does, and the transport turns it into a
:class:`~couchlite.errors.TLSError` at its single translation boundary.

* default: system CAs, host name checked (``ssl.create_default_context``, with the same chain
  rules on every Python version: ``apply_chain_rules``);
* ``trusted_root_certificates``: the same checks, with the given roots as the only trust
  anchors (the system's CAs are not consulted);
* ``pinned_server_certificate``: OpenSSL verification off; the leaf's DER must equal the pinned
  certificate's (LiteCore's ``allow_only_certificate``: no CA chain, no host name needed);
* ``server_fingerprint`` and the pin of trust on first use (``expected``): the SHA-256 of the
  leaf's DER must equal each expected fingerprint; OpenSSL verification off unless trusted
  roots are given (then both apply). A mismatch is noted in the :class:`PeerCertificate` so
  that the replicator can report it as a ``CertificateMismatchError`` naming both
  fingerprints;
* ``accept_only_self_signed_server_certificate``: verification off; the leaf must be self-signed
  -- issuer equal to subject, and its signature verifying with its own public key -- and within
  its validity period. A CA-issued certificate is refused, as LiteCore's ``onlySelfSignedServer``.

With a ``ClientCertificateAuthenticator`` the identity's chain and key are loaded into the
context (:func:`couchlite.transport.tls_context.load_identity`), so OpenSSL presents them when
the listener asks.

A fresh context (and ``SSLObject`` class) is made per connection attempt, so the recorded
certificate always belongs to the attempt that made it.

Which error code a failure becomes is decided in one place, the transport's translation
(:func:`couchlite.transport.boundary.tls_error_code`): the refusals raised here carry OpenSSL's
own verification codes (``X509_V_ERR_CERT_HAS_EXPIRED`` -> ``TLS_CERT_EXPIRED``, anything else
-> ``TLS_CERT_UNTRUSTED``).
"""

from __future__ import annotations

import datetime as dt
import ssl
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from couchlite.tls.fingerprint import certificate_fingerprint
from couchlite.tls.identity import TLSIdentity
from couchlite.transport.tls_context import apply_chain_rules, load_identity

#: OpenSSL's X509_V_ERR_CERT_HAS_EXPIRED: the transport maps it to TLS_CERT_EXPIRED.
_VERIFY_EXPIRED = 10
#: Any other code: the transport reports TLS_CERT_UNTRUSTED.
_VERIFY_UNTRUSTED = 0


class PeerCertificate:
    """Where one connection attempt records the server's leaf certificate (DER)."""

    __slots__ = ("der", "mismatch")

    def __init__(self) -> None:
        self.der: bytes | None = None
        #: the expected fingerprint the leaf did not have: (expected, actual, pin key or None)
        self.mismatch: tuple[str, str, str | None] | None = None

    def certificate(self) -> x509.Certificate | None:
        return x509.load_der_x509_certificate(self.der) if self.der is not None else None


def _refuse(message: str, code: int = _VERIFY_UNTRUSTED) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(message)
    # The transport reads these, as it does on OpenSSL's own verification errors.
    error.verify_code = code
    error.verify_message = message
    return error


def self_signed_problem(der: bytes) -> tuple[str, int] | None:
    """Why the certificate ``der`` is not an acceptable self-signed leaf, or ``None`` if it is."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return "the server certificate cannot be parsed", _VERIFY_UNTRUSTED
    if cert.issuer != cert.subject:
        return "the server certificate is not self-signed", _VERIFY_UNTRUSTED
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        # Issuer == subject but signed by another key: a CA-issued cert posing as self-signed.
        return "the server certificate is not self-signed", _VERIFY_UNTRUSTED
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return "the server certificate has expired or is not yet valid", _VERIFY_EXPIRED
    return None


def client_context(
    record: PeerCertificate,
    *,
    pinned_der: bytes | None = None,
    only_self_signed: bool = False,
    trusted_roots: tuple[bytes, ...] | None = None,
    client_identity: TLSIdentity | None = None,
    expected: tuple[tuple[str, str | None], ...] = (),
    trust_any: bool = False,
) -> ssl.SSLContext:
    """A client context for one connection attempt; the leaf certificate goes to ``record``.

    ``expected``: ``(fingerprint, pin key or None)`` pairs the leaf must match. ``trust_any``:
    no chain check at all (trust on first use before anything is pinned).
    """
    custom = pinned_der is not None or only_self_signed or bool(expected) or trust_any
    if custom and trusted_roots is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # Our own check below replaces OpenSSL's chain and host-name verification.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif trusted_roots is not None:
        pem = "".join(
            x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode("ascii")
            for der in trusted_roots
        )
        # Only these anchors: create_default_context(cadata=...) loads no system CAs.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=pem)
    else:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if context.verify_mode != ssl.CERT_NONE:
        apply_chain_rules(context)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_identity is not None:
        load_identity(context, client_identity)

    class CheckedSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            # Raises SSLWantReadError until the handshake completes: checks run once, at the end.
            super().do_handshake()
            der = self.getpeercert(binary_form=True)
            if der is None:
                raise _refuse("the server sent no certificate")
            record.der = der
            if pinned_der is not None and der != pinned_der:
                raise _refuse("certificate does not match the pinned certificate")
            if expected:
                actual = certificate_fingerprint(der)
                for fingerprint, pin_key in expected:
                    if actual != fingerprint:
                        record.mismatch = (fingerprint, actual, pin_key)
                        raise _refuse(
                            f"certificate SHA-256 {actual} is not the expected {fingerprint}"
                        )
            if only_self_signed:
                problem = self_signed_problem(der)
                if problem is not None:
                    raise _refuse(*problem)

    object_class: Any = CheckedSSLObject
    context.sslobject_class = object_class
    return context


__all__ = ["PeerCertificate", "client_context", "self_signed_problem"]
