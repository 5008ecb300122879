"""``TLSIdentity``: a certificate chain and its private key, as a TLS peer presents them.

Theory of operation
-------------------
An identity is immutable: the leaf certificate first, then any intermediates, and the leaf's
private key. It comes from

* :meth:`TLSIdentity.create_identity` -- a new RSA-2048 key and a certificate with Couchbase
  Lite's attribute names (:mod:`couchlite.tls.certificates`), self-signed or signed by an
  ``issuer`` identity the caller holds (a CA certificate and its key);
* :meth:`TLSIdentity.from_pem` (key + chain) or :meth:`TLSIdentity.import_identity` (PKCS#12);
* :meth:`TLSIdentity.identity` -- one kept under a label in a
  :class:`~couchlite.tls.keystore.KeyStore`
  (``create_identity`` and ``import_identity`` with a ``label`` save it there);
* :meth:`TLSIdentity.create_anonymous` -- the self-signed identity a listener uses when none is
  configured (notes §11.2).

It leaves as PEM (:meth:`certificates_pem`, :meth:`private_key_pem`) or PKCS#12
(:meth:`to_pkcs12`); these export the private key only encrypted, with a password the caller
chooses. :meth:`load_into` and :meth:`server_ssl_context` hand it to Python's ``ssl``.

Errors: a malformed input or a wrong password is an :class:`InvalidArgumentError` (cryptography
cannot always tell the two apart for PKCS#12, so neither do we), a missing label a
:class:`NotFoundError`, an expired certificate a :class:`TLSError` with code
``TLS_CERT_EXPIRED`` (7) where one is about to be used or imported.

The ``ssl`` contexts themselves are the transport's to build
(:mod:`couchlite.transport.tls_server`, :mod:`couchlite.transport.tls_context`): these two
methods hand the identity to them.

Anonymous identities follow LiteCore's defaults (notes §11.2): RSA-2048 (what Couchbase Lite's
TLS-identity API generates by default, and what every CBL client's mbedTLS accepts), self-signed,
valid one year. Persisting them with a database is :mod:`couchlite.tls.anonymous`'s job.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from couchlite.errors import InvalidArgumentError, NetworkCode, TLSError
from couchlite.tls.certificates import (
    CLOCK_SKEW_ALLOWANCE,
    DEFAULT_VALIDITY,
    KeyUsage,
    build_certificate,
    is_ca_certificate,
    key_usage_flags,
    order_chain,
    subject_and_names,
)
from couchlite.tls.keyfolder import KeyFolder
from couchlite.tls.keyprotection import set_default_passphrase
from couchlite.transport.tls_context import load_identity
from couchlite.transport.tls_server import server_context

if TYPE_CHECKING:
    import ssl

    from couchlite.tls.keystore import KeyStore

#: The common name of generated anonymous certificates.
ANONYMOUS_COMMON_NAME = "couchlite-anonymous"
#: The label of the anonymous identity (CBL exposes its own as ``AnonymousLabel``).
ANONYMOUS_LABEL = "couchlite-anonymous"
#: RSA key size of generated identities (CBL's default, notes §11.2).
RSA_KEY_BITS = 2048

#: PBKDF2 rounds of exported PKCS#12 files (the password may be a human one).
PKCS12_KDF_ROUNDS = 100_000

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
    def create_identity(
        cls,
        key_usages: KeyUsage | Iterable[KeyUsage],
        attributes: Mapping[str, str | Sequence[str]],
        expiration: dt.datetime | dt.timedelta | None = None,
        label: str | None = None,
        *,
        issuer: TLSIdentity | None = None,
        is_ca: bool = False,
        keystore: KeyStore | None = None,
    ) -> TLSIdentity:
        """A new identity: an RSA-2048 key and a certificate for ``attributes``.

        ``key_usages``: :class:`KeyUsage` flags (``SERVER_AUTH``, ``CLIENT_AUTH``, both).
        ``attributes``: Couchbase Lite's attribute names (:class:`CertAttribute`; ``CN`` is
        required). ``expiration``: when it expires (a datetime, or a timedelta from now); one
        year by default. ``issuer``: sign with this CA identity instead of self-signing (the
        chain becomes the new leaf followed by the issuer's chain; the expiry is capped at the
        issuer's). ``is_ca``: make a CA certificate, to issue others with; it issues server and
        client identities alike, so ``key_usages`` (which may be empty) do not restrict it: a CA
        certificate carries no extended key usage, as Couchbase Lite's do. ``label``: also save
        it in ``keystore`` (the default key store when ``None``) under that label --
        :class:`ConflictError` if the label is taken.

        Generating the key takes a noticeable fraction of a second: call it off the event loop.
        """
        usages = key_usage_flags(key_usages)
        if not usages and not is_ca:
            raise InvalidArgumentError("an identity needs KeyUsage.SERVER_AUTH and/or CLIENT_AUTH")
        subject, alt_names = subject_and_names(attributes)
        if issuer is not None:
            if not isinstance(issuer, TLSIdentity):
                raise InvalidArgumentError("issuer must be a TLSIdentity (a CA and its key)")
            if not is_ca_certificate(issuer._certificates[0]):
                raise InvalidArgumentError("the issuer's certificate is not a CA certificate")
            if issuer.is_expired():
                raise TLSError(
                    "the issuer's certificate has expired", code=NetworkCode.TLS_CERT_EXPIRED
                )
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        signing_key = key if issuer is None else issuer._private_key
        assert isinstance(signing_key, _SUPPORTED_KEYS)  # checked by the constructor
        certificate = build_certificate(
            subject=subject,
            alt_names=alt_names,
            public_key=key.public_key(),
            signing_key=signing_key,
            issuer=issuer._certificates[0] if issuer is not None else None,
            key_usages=usages,
            expiration=expiration,
            is_ca=is_ca,
        )
        chain = [certificate] + (list(issuer._certificates) if issuer is not None else [])
        identity = cls(chain, key, label=label)
        if label is not None:
            _folder(keystore)._write(identity, label)
        return identity

    @classmethod
    def import_identity(
        cls,
        pkcs12_data: bytes,
        password: str | bytes | None,
        label: str | None = None,
        *,
        keystore: KeyStore | None = None,
    ) -> TLSIdentity:
        """An identity from PKCS#12 data (``.p12``/``.pfx``) encrypted with ``password``.

        With a ``label`` it is also saved in ``keystore`` (default: the default key store).
        Raises :class:`InvalidArgumentError` for a wrong password or data that is not PKCS#12
        with a key and a certificate, :class:`TLSError` (``TLS_CERT_EXPIRED``) if the
        certificate has expired.
        """
        if not isinstance(pkcs12_data, (bytes, bytearray)):
            raise InvalidArgumentError("pkcs12_data must be bytes")
        secret = password.encode("utf-8") if isinstance(password, str) else password
        try:
            key, certificate, others = pkcs12.load_key_and_certificates(bytes(pkcs12_data), secret)
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(
                "cannot read the PKCS#12 data: wrong password, or not PKCS#12"
            ) from exc
        if key is None or certificate is None:
            raise InvalidArgumentError("the PKCS#12 data holds no private key or no certificate")
        chain = order_chain(certificate, others)
        identity = cls(chain, key, label=label)
        if identity.is_expired():
            raise TLSError(
                f"the imported certificate expired on {identity.expiration.isoformat()}",
                code=NetworkCode.TLS_CERT_EXPIRED,
            )
        if label is not None:
            _folder(keystore)._write(identity, label)
        return identity

    @classmethod
    def identity(
        cls, label: str, *, keystore: KeyStore | None = None, allow_expired: bool = False
    ) -> TLSIdentity:
        """The identity saved under ``label`` in ``keystore`` (default: the default key store).

        Raises :class:`NotFoundError` if there is none, :class:`InvalidArgumentError` if its key
        cannot be decrypted (wrong passphrase, keyring entry gone), :class:`TLSError`
        (``TLS_CERT_EXPIRED``) if it has expired, unless ``allow_expired``.
        """
        chain, key = _folder(keystore)._read(label)
        identity = cls(chain, key, label=label)
        if not allow_expired and identity.is_expired():
            raise TLSError(
                f"TLS identity {label!r} expired on {identity.expiration.isoformat()}",
                code=NetworkCode.TLS_CERT_EXPIRED,
            )
        return identity

    @classmethod
    def delete_identity(cls, label: str, *, keystore: KeyStore | None = None) -> None:
        """Delete the identity saved under ``label``; :class:`NotFoundError` if there is none."""
        _folder(keystore).delete(label)

    @staticmethod
    def set_keystore_passphrase(passphrase: str | bytes | None) -> None:
        """Set (``None``: forget) the passphrase protecting keys in key stores of this process.

        Used when no OS keyring is available (or a store is made with ``use_keyring=False``);
        ``COUCHLITE_KEYSTORE_PASSPHRASE`` is the fallback. Never logged.
        """
        set_default_passphrase(passphrase)

    @classmethod
    def create_anonymous(
        cls,
        *,
        common_name: str = ANONYMOUS_COMMON_NAME,
        validity: dt.timedelta = DEFAULT_VALIDITY,
        label: str | None = ANONYMOUS_LABEL,
    ) -> TLSIdentity:
        """A new self-signed RSA-2048 server identity, valid for ``validity`` from now.

        ``common_name``: its certificate's subject. ``label`` only names the identity (its
        :attr:`label`): nothing is saved in a key store -- keeping an anonymous identity with
        its database is :mod:`couchlite.tls.anonymous`'s job.

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
        """The leaf's private key, a ``cryptography`` RSA or EC key object: keep it secret."""
        return self._private_key

    @property
    def label(self) -> str | None:
        """The identity's name, or ``None``: the one it was created with, or the key-store
        label it was loaded under; also the default friendly name of :meth:`to_pkcs12`."""
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

        Deliberately, no method of an identity exports the key in the clear.
        """
        if not password:
            raise InvalidArgumentError("a non-empty password is required to export a key")
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )

    def to_pkcs12(self, password: str | bytes, *, name: str | None = None) -> bytes:
        """The identity as PKCS#12 (key, leaf, chain), encrypted with ``password``.

        AES-256-CBC with PBKDF2-SHA256 (:data:`PKCS12_KDF_ROUNDS` rounds) and a SHA-256 MAC:
        what OpenSSL 3, macOS and Windows import. ``name``: the friendly name (default: label).
        """
        secret = password.encode("utf-8") if isinstance(password, str) else password
        if not secret:
            raise InvalidArgumentError("a non-empty password is required to export an identity")
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(PKCS12_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(secret)
        )
        friendly = name if name is not None else self._label
        key = self._private_key
        assert isinstance(key, _SUPPORTED_KEYS)  # checked by the constructor
        return pkcs12.serialize_key_and_certificates(
            friendly.encode("utf-8") if friendly else None,
            key,
            self._certificates[0],
            list(self._certificates[1:]) or None,
            encryption,
        )

    # --- ssl ----------------------------------------------------------------------------------

    def server_ssl_context(self) -> ssl.SSLContext:
        """A server-side ``ssl.SSLContext`` presenting this identity (TLS 1.2 minimum)."""
        return server_context(self)

    def load_into(self, context: ssl.SSLContext) -> None:
        """Make ``context`` present this identity (a server's certificate, a client's)."""
        load_identity(context, self)

    def __repr__(self) -> str:
        subject = self._certificates[0].subject.rfc4514_string()
        return (
            f"TLSIdentity({subject!r}, label={self._label!r}, "
            f"expires={self.expiration.isoformat()})"
        )


def _folder(keystore: KeyStore | None) -> KeyFolder:
    # A KeyStore is the KeyFolder that also hands out TLSIdentity objects; identities are
    # built here, by the class asked for them, so the folder below needs no identity class.
    if keystore is None:
        return KeyFolder()
    if not isinstance(keystore, KeyFolder):
        raise InvalidArgumentError("keystore must be a KeyStore")
    return keystore


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
    "PKCS12_KDF_ROUNDS",
    "KeyUsage",
    "TLSIdentity",
]
