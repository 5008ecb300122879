"""Certificate helpers: Couchbase Lite's attribute names, key usages, building and reading.

Theory of operation
-------------------
:meth:`TLSIdentity.create_identity` takes the subject as a mapping keyed by Couchbase Lite's
certificate attribute names (``kCBLCertAttrKey*`` in couchbase-lite-C's ``CBLTLSIdentity.h``):
the distinguished-name keys ``CN``, ``pseudonym``, ``GN``, ``SN``, ``O``, ``OU``,
``postalAddress``, ``L``, ``postalCode``, ``ST``, ``C``, and the subject-alternative-name keys
``rfc822Name``, ``dNSName``, ``uniformResourceIdentifier``, ``iPAddress``, ``registeredID``.
:class:`CertAttribute` names them; the friendlier aliases ``email``/``emailAddress``,
``hostname``, ``URL`` and ``IP``/``ipAddress`` are accepted too. A SAN value may be a string or a
list of strings (several host names, say); a distinguished-name value is one string.

:class:`KeyUsage` is what the certificate may be used for, written as the *extended* key usage
(``serverAuth``, ``clientAuth``) that TLS stacks check; ``KeyUsage.SERVER_AUTH |
KeyUsage.CLIENT_AUTH`` makes an identity usable on both ends. A CA certificate (``is_ca``) gets
none: TLS stacks check the purpose on every certificate of a chain, so an extended key usage on
the CA would limit the certificates it issues to that purpose; without one it issues server and
client certificates alike, as LiteCore's CA certificates do (basic constraints ``cA``, key usage
``keyCertSign``/``cRLSign``, no extended key usage).

:func:`build_certificate` signs a new certificate -- self-signed, or by an issuer identity the
caller holds (a CA certificate and its key) -- following LiteCore's defaults (notes §11.2): the
subject and authority key identifiers strict verifiers want, a 5-minute backdated start so a peer
whose clock runs a little behind accepts it, and one year of validity unless told otherwise.

:func:`load_certificates` reads certificates in every form the API accepts
(``x509.Certificate``, PEM -- possibly several -- or DER, or a list of those).
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from couchlite.errors import InvalidArgumentError

#: LiteCore's default certificate validity (``kOneYear``, notes §11.2).
DEFAULT_VALIDITY = dt.timedelta(days=365)
#: Backdating of ``not_valid_before``, so that a peer whose clock runs a little behind ours
#: does not reject a certificate generated a moment ago as "not yet valid".
CLOCK_SKEW_ALLOWANCE = dt.timedelta(minutes=5)


class KeyUsage(enum.Flag):
    """What an identity's certificate may authenticate (its extended key usage).

    The values are couchbase-lite-C's ``kCBLKeyUsages*``.
    """

    CLIENT_AUTH = 0x80
    SERVER_AUTH = 0x40


class CertAttribute(enum.StrEnum):
    """Couchbase Lite's certificate attribute keys (``kCBLCertAttrKey*``)."""

    COMMON_NAME = "CN"
    PSEUDONYM = "pseudonym"
    GIVEN_NAME = "GN"
    SURNAME = "SN"
    ORGANIZATION = "O"
    ORGANIZATION_UNIT = "OU"
    POSTAL_ADDRESS = "postalAddress"
    LOCALITY = "L"
    POSTAL_CODE = "postalCode"
    STATE_OR_PROVINCE = "ST"
    COUNTRY = "C"
    EMAIL_ADDRESS = "rfc822Name"
    HOSTNAME = "dNSName"
    URL = "uniformResourceIdentifier"
    IP_ADDRESS = "iPAddress"
    REGISTERED_ID = "registeredID"


_NAME_OIDS: dict[str, ObjectIdentifier] = {
    CertAttribute.COMMON_NAME: NameOID.COMMON_NAME,
    CertAttribute.PSEUDONYM: NameOID.PSEUDONYM,
    CertAttribute.GIVEN_NAME: NameOID.GIVEN_NAME,
    CertAttribute.SURNAME: NameOID.SURNAME,
    CertAttribute.ORGANIZATION: NameOID.ORGANIZATION_NAME,
    CertAttribute.ORGANIZATION_UNIT: NameOID.ORGANIZATIONAL_UNIT_NAME,
    CertAttribute.POSTAL_ADDRESS: NameOID.POSTAL_ADDRESS,
    CertAttribute.LOCALITY: NameOID.LOCALITY_NAME,
    CertAttribute.POSTAL_CODE: NameOID.POSTAL_CODE,
    CertAttribute.STATE_OR_PROVINCE: NameOID.STATE_OR_PROVINCE_NAME,
    CertAttribute.COUNTRY: NameOID.COUNTRY_NAME,
}
#: Aliases people write instead of the X.509 names (and that the issue uses).
_ALIASES: dict[str, str] = {
    "email": CertAttribute.EMAIL_ADDRESS,
    "emailAddress": CertAttribute.EMAIL_ADDRESS,
    "hostname": CertAttribute.HOSTNAME,
    "URL": CertAttribute.URL,
    "IP": CertAttribute.IP_ADDRESS,
    "ipAddress": CertAttribute.IP_ADDRESS,
}
_SAN_KEYS = frozenset(
    {
        CertAttribute.EMAIL_ADDRESS,
        CertAttribute.HOSTNAME,
        CertAttribute.URL,
        CertAttribute.IP_ADDRESS,
        CertAttribute.REGISTERED_ID,
    }
)


_PURPOSES = (
    (KeyUsage.SERVER_AUTH, ExtendedKeyUsageOID.SERVER_AUTH),
    (KeyUsage.CLIENT_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
)


def key_usage_flags(key_usages: KeyUsage | Iterable[KeyUsage]) -> KeyUsage:
    """``key_usages`` (one flag, flags or'ed together, or an iterable of them) as one flag."""
    if isinstance(key_usages, KeyUsage):
        return key_usages
    flags = KeyUsage(0)
    try:
        for usage in key_usages:
            if not isinstance(usage, KeyUsage):
                raise InvalidArgumentError(f"not a KeyUsage: {usage!r}")
            flags |= usage
    except TypeError as exc:
        raise InvalidArgumentError(f"key_usages must be KeyUsage flags: {exc}") from exc
    return flags


def _values(key: str, value: object) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not items or not all(isinstance(v, str) for v in items):
        raise InvalidArgumentError(f"certificate attribute {key!r} needs a string value")
    return list(items)


def _general_name(key: str, value: str) -> x509.GeneralName:
    try:
        if key == CertAttribute.EMAIL_ADDRESS:
            return x509.RFC822Name(value)
        if key == CertAttribute.HOSTNAME:
            return x509.DNSName(value)
        if key == CertAttribute.URL:
            return x509.UniformResourceIdentifier(value)
        if key == CertAttribute.IP_ADDRESS:
            return x509.IPAddress(ipaddress.ip_address(value))
        return x509.RegisteredID(ObjectIdentifier(value))
    except ValueError as exc:
        raise InvalidArgumentError(f"invalid {key} {value!r}: {exc}") from exc


def subject_and_names(
    attributes: Mapping[str, str | Sequence[str]],
) -> tuple[x509.Name, list[x509.GeneralName]]:
    """The subject name and the subject alternative names described by ``attributes``."""
    if not isinstance(attributes, Mapping):
        raise InvalidArgumentError("attributes must be a mapping of certificate attribute names")
    name_parts: list[x509.NameAttribute[str]] = []
    alt_names: list[x509.GeneralName] = []
    for raw_key, value in attributes.items():
        key = _ALIASES.get(str(raw_key), str(raw_key))
        if key in _SAN_KEYS:
            alt_names.extend(_general_name(key, v) for v in _values(key, value))
        elif key in _NAME_OIDS:
            (text,) = _values(key, value)[:1]
            try:
                name_parts.append(x509.NameAttribute(_NAME_OIDS[key], text))
            except ValueError as exc:  # e.g. a country code that is not 2 letters
                raise InvalidArgumentError(f"invalid {key} {text!r}: {exc}") from exc
        else:
            raise InvalidArgumentError(
                f"unknown certificate attribute {raw_key!r} (expected one of "
                f"{', '.join(sorted({*_NAME_OIDS, *_SAN_KEYS, *_ALIASES}))})"
            )
    if not any(part.oid == NameOID.COMMON_NAME for part in name_parts):
        # Couchbase Lite requires a common name too: it is what peers display.
        raise InvalidArgumentError("certificate attributes need a common name (CN)")
    return x509.Name(name_parts), alt_names


def _expiry(expiration: dt.datetime | dt.timedelta | None, now: dt.datetime) -> dt.datetime:
    if expiration is None:
        return now + DEFAULT_VALIDITY
    if isinstance(expiration, dt.timedelta):
        when = now + expiration
    elif isinstance(expiration, dt.datetime):
        # A naive datetime is taken as UTC: certificates carry UTC times.
        when = expiration if expiration.tzinfo else expiration.replace(tzinfo=dt.UTC)
    else:
        raise InvalidArgumentError("expiration must be a datetime, a timedelta or None")
    if when <= now:
        raise InvalidArgumentError(f"expiration {when.isoformat()} is not in the future")
    return when


def build_certificate(
    *,
    subject: x509.Name,
    alt_names: Sequence[x509.GeneralName],
    public_key: CertificatePublicKeyTypes,
    signing_key: CertificateIssuerPrivateKeyTypes,
    issuer: x509.Certificate | None,
    key_usages: KeyUsage,
    expiration: dt.datetime | dt.timedelta | None,
    is_ca: bool = False,
) -> x509.Certificate:
    """A certificate for ``public_key``: self-signed when ``issuer`` is None, else issued by it.

    An issued certificate never outlives its issuer (its expiry is capped at the issuer's).
    """
    now = dt.datetime.now(dt.UTC)
    not_after = _expiry(expiration, now)
    if issuer is not None:
        not_after = min(not_after, issuer.not_valid_after_utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    if issuer is None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    else:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW_ALLOWANCE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=not is_ca,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(aki, critical=False)
    )
    # No extended key usage on a CA: OpenSSL (like mbedTLS) checks the purpose on every
    # certificate of a chain, so one here would restrict what the CA's certificates may do.
    # LiteCore's CA certificates carry only keyCertSign (and the Netscape "SSL CA" type) and
    # issue server and client certificates alike.
    purposes = [] if is_ca else [oid for flag, oid in _PURPOSES if flag in key_usages]
    if purposes:
        builder = builder.add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def key_usages_of(certificate: x509.Certificate) -> KeyUsage:
    """The :class:`KeyUsage` flags a certificate's extended key usage grants."""
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return KeyUsage(0)
    flags = KeyUsage(0)
    if ExtendedKeyUsageOID.SERVER_AUTH in eku:
        flags |= KeyUsage.SERVER_AUTH
    if ExtendedKeyUsageOID.CLIENT_AUTH in eku:
        flags |= KeyUsage.CLIENT_AUTH
    return flags


def is_ca_certificate(certificate: x509.Certificate) -> bool:
    """Whether ``certificate`` is a CA certificate (basic constraints ``cA``)."""
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def order_chain(
    leaf: x509.Certificate, others: Iterable[x509.Certificate]
) -> list[x509.Certificate]:
    """``leaf`` followed by its issuers among ``others`` (PKCS#12 bags have no order), then
    whatever is left over."""
    remaining = list(others)
    chain = [leaf]
    while remaining:
        current = chain[-1]
        if current.issuer == current.subject:
            break
        parent = next((c for c in remaining if c.subject == current.issuer), None)
        if parent is None:
            break
        chain.append(parent)
        remaining.remove(parent)
    return chain + remaining


CertificateInput = x509.Certificate | bytes | bytearray | str


def load_certificates(
    value: CertificateInput | Iterable[CertificateInput],
) -> list[x509.Certificate]:
    """Certificates from an ``x509.Certificate``, PEM (one or several), DER, or a list of these.

    Raises :class:`InvalidArgumentError` for anything else or unparsable data.
    """
    if isinstance(value, x509.Certificate):
        return [value]
    if isinstance(value, str):
        value = value.encode("ascii", "replace")
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        try:
            if b"-----BEGIN" in data:
                return x509.load_pem_x509_certificates(data)
            return [x509.load_der_x509_certificate(data)]
        except ValueError as exc:
            raise InvalidArgumentError(f"not a valid X.509 certificate: {exc}") from exc
    if isinstance(value, Iterable):
        result: list[x509.Certificate] = []
        for item in value:
            if not isinstance(item, (x509.Certificate, bytes, bytearray, str)):
                raise InvalidArgumentError(f"not a certificate: {type(item).__name__}")
            result.extend(load_certificates(item))
        return result
    raise InvalidArgumentError(
        "certificates must be x509.Certificate objects, PEM or DER bytes, "
        f"not {type(value).__name__}"
    )


__all__ = [
    "CLOCK_SKEW_ALLOWANCE",
    "DEFAULT_VALIDITY",
    "CertAttribute",
    "CertificateInput",
    "KeyUsage",
    "build_certificate",
    "is_ca_certificate",
    "key_usage_flags",
    "key_usages_of",
    "load_certificates",
    "order_chain",
    "subject_and_names",
]
