"""``TLSIdentity``: a certificate chain and its private key, as a TLS server presents them.

Theory of operation
-------------------
An identity is immutable: the leaf certificate first, then any intermediates, and the leaf's
private key. It is built from PEM (:meth:`TLSIdentity.from_pem`) or generated
(:meth:`TLSIdentity.create_anonymous`, the self-signed identity a listener uses when none is
configured, notes §11.2), and turned into what Python's ``ssl`` module needs with
:meth:`TLSIdentity.server_ssl_context`.

``ssl.SSLContext.load_cert_chain`` reads only files, so the context is built through a
short-lived file in a private temporary folder: the key in it is encrypted with a one-time random
password, so the private key never reaches the disk in the clear, not even briefly.

Anonymous identities follow LiteCore's defaults (notes §11.2): RSA-2048 (what Couchbase Lite's
TLS-identity API generates by default, and what every CBL client's mbedTLS accepts), self-signed,
valid one year. Persisting them with a database is :mod:`couchlite.tls.keystore`'s job.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from couchlite.errors import InvalidArgumentError, TLSError

#: The common name of generated anonymous certificates.
ANONYMOUS_COMMON_NAME = "couchlite-anonymous"
#: The label of the anonymous identity (CBL exposes its own as ``AnonymousLabel``).
ANONYMOUS_LABEL = "couchlite-anonymous"
#: LiteCore's default certificate validity (``kOneYear``, notes §11.2).
DEFAULT_VALIDITY = dt.timedelta(days=365)
#: Backdating of ``not_valid_before``, so that a peer whose clock runs a little behind ours
#: does not reject a certificate generated a moment ago as "not yet valid".
CLOCK_SKEW_ALLOWANCE = dt.timedelta(minutes=5)
#: RSA key size of generated identities (CBL's default, notes §11.2).
RSA_KEY_BITS = 2048

_SUPPORTED_KEYS = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TLSIdentity:
    """A certificate chain (leaf first) with the leaf's private key.

    ``certificates``: ``cryptography.x509.Certificate`` objects; ``private_key``: an RSA or EC
    private key matching the leaf; ``label``: an optional name (for the key store).
    """

    __slots__ = ("_certificates", "_label", "_private_key")

    def __init__(
        self,
        certificates: Sequence[x509.Certificate],
        private_key: PrivateKeyTypes,
        *,
        label: str | None = None,
    ) -> None:
        chain = list(certificates)
        if not chain or not all(isinstance(c, x509.Certificate) for c in chain):
            raise InvalidArgumentError("a TLS identity needs at least one x509.Certificate")
        if not isinstance(private_key, _SUPPORTED_KEYS):
            raise InvalidArgumentError(
                f"unsupported private key type {type(private_key).__name__} (RSA or EC expected)"
            )
        if _public_der(chain[0].public_key()) != _public_der(private_key.public_key()):
            raise InvalidArgumentError("the private key does not match the leaf certificate")
        self._certificates = tuple(chain)
        self._private_key = private_key
        self._label = label

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_pem(
        cls,
        cert_chain_pem: bytes | str,
        key_pem: bytes | str,
        *,
        password: bytes | None = None,
        label: str | None = None,
    ) -> TLSIdentity:
        """An identity from PEM: the chain (leaf first) and the key (``password`` if encrypted)."""
        chain_bytes = cert_chain_pem.encode() if isinstance(cert_chain_pem, str) else cert_chain_pem
        key_bytes = key_pem.encode() if isinstance(key_pem, str) else key_pem
        try:
            certificates = x509.load_pem_x509_certificates(chain_bytes)
        except ValueError as exc:
            raise InvalidArgumentError(f"invalid PEM certificate chain: {exc}") from exc
        try:
            key = serialization.load_pem_private_key(key_bytes, password=password)
        except (ValueError, TypeError) as exc:
            # TypeError: a password for an unencrypted key or none for an encrypted one.
            raise InvalidArgumentError(f"cannot load the PEM private key: {exc}") from exc
        return cls(certificates, key, label=label)

    @classmethod
    def create_anonymous(
        cls,
        *,
        common_name: str = ANONYMOUS_COMMON_NAME,
        validity: dt.timedelta = DEFAULT_VALIDITY,
        label: str | None = ANONYMOUS_LABEL,
    ) -> TLSIdentity:
        """A new self-signed RSA-2048 server identity, valid for ``validity`` from now.

        Generating the key takes a noticeable fraction of a second: call it off the event loop.
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _utcnow()
        public = key.public_key()
        ski = x509.SubjectKeyIdentifier.from_public_key(public)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW_ALLOWANCE)
            .not_valid_after(now + validity)
            # A server leaf, not a CA; the key identifiers keep strict verifiers (Python 3.13's
            # VERIFY_X509_STRICT, mbedTLS) happy when the certificate is pinned as a trust root.
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=True,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        return cls([certificate], key, label=label)

    # --- properties ---------------------------------------------------------------------------

    @property
    def certificates(self) -> list[x509.Certificate]:
        """The chain, leaf first (a new list each time; the certificates are immutable)."""
        return list(self._certificates)

    @property
    def private_key(self) -> PrivateKeyTypes:
        return self._private_key

    @property
    def label(self) -> str | None:
        return self._label

    @property
    def expiration(self) -> dt.datetime:
        """When the leaf certificate stops being valid (timezone-aware, UTC)."""
        return self._certificates[0].not_valid_after_utc

    def is_expired(
        self, at: dt.datetime | None = None, *, margin: dt.timedelta | None = None
    ) -> bool:
        """Whether the leaf has expired at ``at`` (default now), or will within ``margin``."""
        moment = at if at is not None else _utcnow()
        return moment + (margin or dt.timedelta(0)) >= self.expiration

    # --- serialization ------------------------------------------------------------------------

    def certificates_pem(self) -> bytes:
        """The chain as concatenated PEM blocks, leaf first."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self._certificates)

    def private_key_pem(self, password: bytes) -> bytes:
        """The private key as encrypted PKCS#8 PEM (``ENCRYPTED PRIVATE KEY``).

        There is deliberately no way to get the key in the clear from an identity.
        """
        if not password:
            raise InvalidArgumentError("a non-empty password is required to export a key")
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )

    # --- ssl ----------------------------------------------------------------------------------

    def server_ssl_context(self) -> ssl.SSLContext:
        """A server-side ``ssl.SSLContext`` presenting this identity (TLS 1.2 minimum)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        password = secrets.token_bytes(32).hex().encode("ascii")
        pem = self.certificates_pem() + self.private_key_pem(password)
        # load_cert_chain() only reads files: use one in a private folder, readable by us
        # alone, removed at once; the key in it is encrypted with a throw-away password.
        with tempfile.TemporaryDirectory(prefix="couchlite-tls-") as folder:
            path = Path(folder) / "identity.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(pem)
            try:
                context.load_cert_chain(path, password=password)
            except ssl.SSLError as exc:
                raise TLSError(f"cannot use the TLS identity: {exc}") from exc
        return context

    def __repr__(self) -> str:
        subject = self._certificates[0].subject.rfc4514_string()
        return (
            f"TLSIdentity({subject!r}, label={self._label!r}, "
            f"expires={self.expiration.isoformat()})"
        )


def _public_der(key: object) -> bytes:
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        return b""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


__all__ = [
    "ANONYMOUS_COMMON_NAME",
    "ANONYMOUS_LABEL",
    "DEFAULT_VALIDITY",
    "TLSIdentity",
]
