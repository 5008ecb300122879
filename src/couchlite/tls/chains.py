"""Checking that a client's certificate chain holds together, before anyone judges its trust.

Theory of operation
-------------------
``ListenerCertificateAuthenticator(fn)`` lets the application decide whom to trust, so OpenSSL is
told to accept any chain (:mod:`couchlite.transport.openssl_verify`). What OpenSSL still
guarantees is only that the client holds the private key of the first certificate it sent (TLS
``CertificateVerify``). Everything else the client sent is a claim. :func:`verify_client_chain`
checks the claims that do not depend on whom one trusts, so that ``fn`` only ever sees a chain
that is *internally valid*:

* **shape** -- at least one certificate, at most :data:`MAX_CLIENT_CHAIN_LENGTH`, none twice;
* **links** -- every certificate is issued by the next one: the issuer name is the next one's
  subject and the signature verifies with the next one's public key
  (``Certificate.verify_directly_issued_by``); MD5 and SHA-1 signatures do not count;
* **issuers** -- every certificate after the first is a CA (basic constraints ``cA``), may sign
  certificates when it has a key usage (``keyCertSign``), respects its path length, and, when it
  has an extended key usage, allows client authentication (as OpenSSL checks a purpose along the
  whole chain);
* **leaf** -- allows client authentication when it has an extended key usage (``clientAuth`` or
  ``anyExtendedKeyUsage``) and signing when it has a key usage (``digitalSignature`` or
  ``keyAgreement``);
* **dates** -- every certificate is valid now;
* **extensions** -- no critical extension other than the four checked here (an extension marked
  critical that a verifier does not understand must fail it, RFC 5280 §4.2);
* **the top** -- when the last certificate claims to be self-issued, its self-signature verifies.
  When it names an issuer that was not sent, nothing can be said about that issuer: that is for
  ``fn`` to check (``chain[-1].verify_directly_issued_by(ca)``).

What this deliberately does not decide: whether any certificate is trusted. A self-signed client
certificate is internally valid; so is a chain to a CA nobody has heard of.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from couchlite._tuning import MAX_CLIENT_CHAIN_LENGTH

_E = TypeVar("_E", bound=x509.ExtensionType)

#: Critical extensions this module understands (and checks, or for SAN: hands to ``fn``).
_UNDERSTOOD_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)
_CLIENT_PURPOSES = frozenset(
    {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
)
#: Hashes too weak for a signature anyone relies on.
_WEAK_HASHES = (hashes.MD5, hashes.SHA1)


class ChainError(ValueError):
    """Why a client's chain is not internally valid (a sentence for the log, no secrets)."""


def _name(certificate: x509.Certificate) -> str:
    try:
        return certificate.subject.rfc4514_string()
    except ValueError:
        return "<unreadable subject>"


def _extension(certificate: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_extensions(certificate: x509.Certificate) -> None:
    try:
        extensions = certificate.extensions
    except ValueError as exc:  # a duplicate or malformed extension
        raise ChainError(f"{_name(certificate)}: malformed extensions ({exc})") from exc
    for extension in extensions:
        if extension.critical and extension.oid not in _UNDERSTOOD_CRITICAL:
            raise ChainError(
                f"{_name(certificate)}: unsupported critical extension "
                f"{extension.oid.dotted_string}"
            )


def _check_dates(certificate: x509.Certificate, now: dt.datetime) -> None:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise ChainError(
            f"{_name(certificate)}: not valid now (valid from "
            f"{certificate.not_valid_before_utc.isoformat()} to "
            f"{certificate.not_valid_after_utc.isoformat()})"
        )


def _check_leaf(leaf: x509.Certificate) -> None:
    eku = _extension(leaf, x509.ExtendedKeyUsage)
    if eku is not None and not _CLIENT_PURPOSES.intersection(eku):
        raise ChainError(f"{_name(leaf)}: its extended key usage does not allow clientAuth")
    usage = _extension(leaf, x509.KeyUsage)
    if usage is not None and not (usage.digital_signature or usage.key_agreement):
        raise ChainError(f"{_name(leaf)}: its key usage does not allow digitalSignature")


def _check_issuer(issuer: x509.Certificate, below: int) -> None:
    """``issuer`` signs the certificate before it; ``below`` CA certificates sit under that one."""
    constraints = _extension(issuer, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise ChainError(f"{_name(issuer)}: signs another certificate but is not a CA")
    if constraints.path_length is not None and below > constraints.path_length:
        raise ChainError(f"{_name(issuer)}: path length {constraints.path_length} exceeded")
    usage = _extension(issuer, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        raise ChainError(f"{_name(issuer)}: its key usage does not allow keyCertSign")
    eku = _extension(issuer, x509.ExtendedKeyUsage)
    if eku is not None and not _CLIENT_PURPOSES.intersection(eku):
        raise ChainError(f"{_name(issuer)}: its extended key usage does not allow clientAuth")


def _check_signature(child: x509.Certificate, issuer: x509.Certificate) -> None:
    if isinstance(child.signature_hash_algorithm, _WEAK_HASHES):
        raise ChainError(f"{_name(child)}: signed with {child.signature_hash_algorithm.name}")
    try:
        child.verify_directly_issued_by(issuer)
    except InvalidSignature as exc:
        raise ChainError(f"{_name(child)}: its signature is not {_name(issuer)}'s") from exc
    except ValueError as exc:  # names do not chain, or an unsupported signature algorithm
        raise ChainError(f"{_name(child)}: not issued by {_name(issuer)} ({exc})") from exc
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise ChainError(f"{_name(child)}: unsupported signature ({exc})") from exc


def verify_client_chain(
    chain: Sequence[x509.Certificate], *, now: dt.datetime | None = None
) -> None:
    """Raise :class:`ChainError` unless ``chain`` (leaf first) is internally valid.

    See the module docstring for what that means and what it leaves to the caller.
    """
    if not chain:
        raise ChainError("no client certificate")
    if len(chain) > MAX_CLIENT_CHAIN_LENGTH:
        raise ChainError(f"{len(chain)} certificates (at most {MAX_CLIENT_CHAIN_LENGTH})")
    fingerprints = {c.fingerprint(hashes.SHA256()) for c in chain}
    if len(fingerprints) != len(chain):
        raise ChainError("the same certificate appears twice")
    moment = now if now is not None else dt.datetime.now(dt.UTC)
    for certificate in chain:
        _check_extensions(certificate)
        _check_dates(certificate, moment)
    _check_leaf(chain[0])
    for index in range(1, len(chain)):
        _check_issuer(chain[index], below=index - 1)
        _check_signature(chain[index - 1], chain[index])
    top = chain[-1]
    if top.issuer == top.subject:
        # A self-issued top: its own signature is the only one that can be checked.
        try:
            top.verify_directly_issued_by(top)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ChainError(f"{_name(top)}: its self-signature does not verify") from exc


__all__ = ["ChainError", "verify_client_chain"]
