"""Which server certificates a replicator accepts: the checks of its TLS options.

``pinned_server_certificate``, ``server_fingerprint``, ``accept_only_self_signed_server_
certificate``, ``trusted_root_certificates`` and ``trust_on_first_use`` are validated together
here (api.md "Replicator"); the TLS client context (:mod:`couchlite.transport.tls_client`)
applies them. ``server_fingerprint`` and the pin stored by trust on first use are compared with
the SHA-256 of the server's leaf certificate; both leave OpenSSL's chain and host-name checks
off, as a pinned certificate does (the pin *is* the trust), unless trusted roots are given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from couchlite.errors import ConfigurationError, CouchliteError
from couchlite.replicator.endpoint import UrlEndpoint
from couchlite.tls.certificates import load_certificates
from couchlite.tls.fingerprint import normalize_fingerprint

#: What ``pinned_server_certificate`` accepts (api.md "TLS identities": one of all three forms).
CertificateLike = bytes | bytearray | str | x509.Certificate


def certificate_der(value: object, what: str = "certificate") -> bytes:
    """The DER form of a certificate given as a ``cryptography`` object, PEM or DER bytes.

    Raises :class:`ConfigurationError` if ``value`` is not a certificate.
    """
    if isinstance(value, x509.Certificate):
        return value.public_bytes(Encoding.DER)
    if isinstance(value, str):
        value = value.encode("ascii", "replace")
    if not isinstance(value, (bytes, bytearray)):
        raise ConfigurationError(
            f"{what} must be a cryptography x509.Certificate, PEM or DER bytes, "
            f"not {type(value).__name__}"
        )
    data = bytes(value)
    try:
        if b"-----BEGIN" in data:
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ConfigurationError(f"{what} is not a valid X.509 certificate: {exc}") from exc
    return cert.public_bytes(Encoding.DER)


@dataclass(frozen=True, slots=True)
class ServerTrust:
    """The checked TLS options of a configuration."""

    pinned_der: bytes | None
    roots: tuple[bytes, ...] | None
    fingerprint: str | None
    #: the key of the trust-on-first-use pin (``None`` without trust on first use)
    pin_key: str | None


def _roots(
    value: CertificateLike | Iterable[CertificateLike] | None,
) -> tuple[bytes, ...] | None:
    if value is None:
        return None
    try:
        roots = load_certificates(value)
    except CouchliteError as exc:
        raise ConfigurationError(f"trusted_root_certificates: {exc}") from exc
    if not roots:
        raise ConfigurationError("trusted_root_certificates is empty (None: the system's)")
    return tuple(c.public_bytes(Encoding.DER) for c in roots)


def _pin_key(endpoint: UrlEndpoint, peer_id: object) -> str:
    if peer_id is None:
        return endpoint.url
    if not isinstance(peer_id, str) or not peer_id.strip() or not peer_id.isprintable():
        raise ConfigurationError(f"peer_id must be a non-empty string or None, not {peer_id!r}")
    return peer_id.strip()


def validated_server_trust(
    endpoint: UrlEndpoint,
    *,
    pinned: object,
    roots: CertificateLike | Iterable[CertificateLike] | None,
    only_self_signed: bool,
    fingerprint: object,
    trust_on_first_use: object,
    peer_id: object,
) -> ServerTrust:
    """Check the TLS options together; :class:`ConfigurationError` when they conflict."""
    if not isinstance(trust_on_first_use, bool):
        raise ConfigurationError(
            f"trust_on_first_use must be a bool, not {type(trust_on_first_use).__name__}"
        )
    pinned_der = None if pinned is None else certificate_der(pinned, "pinned_server_certificate")
    if pinned_der is not None and only_self_signed:
        raise ConfigurationError(
            "pinned_server_certificate and accept_only_self_signed_server_certificate "
            "cannot both be set"
        )
    expected = None
    if fingerprint is not None:
        expected = normalize_fingerprint(fingerprint)
        if expected is None:
            raise ConfigurationError(
                f"server_fingerprint must be 64 hex digits (SHA-256), not {fingerprint!r}"
            )
        if pinned_der is not None:
            raise ConfigurationError(
                "server_fingerprint and pinned_server_certificate cannot both be set"
            )
    anchors = _roots(roots)
    special = (
        pinned_der is not None or only_self_signed or expected is not None or trust_on_first_use
    )
    if (special or anchors is not None) and not endpoint.is_tls:
        raise ConfigurationError("certificate options need a wss:// endpoint")
    if anchors is not None and (pinned_der is not None or only_self_signed or expected):
        # LiteCore refuses onlySelfSignedServer with rootCerts; a pin overrides any root.
        raise ConfigurationError(
            "trusted_root_certificates cannot be combined with a pinned certificate, a "
            "server_fingerprint or accept_only_self_signed_server_certificate"
        )
    pin_key = _pin_key(endpoint, peer_id) if trust_on_first_use else None
    return ServerTrust(pinned_der, anchors, expected, pin_key)


__all__ = ["CertificateLike", "ServerTrust", "certificate_der", "validated_server_trust"]
