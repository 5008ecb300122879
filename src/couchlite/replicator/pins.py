"""The replicator's side of certificate pinning: ``server_fingerprint`` and trust on first use.

Before each connection attempt the expected fingerprints are gathered: the configured
``server_fingerprint`` and, with trust on first use, the pin stored in the database under the
configuration's ``pin_key`` (read off the event loop). The TLS client context checks the
server's leaf against each, inside the handshake, before any credentials are sent
(:mod:`couchlite.transport.tls_client`). A mismatch becomes a
:class:`~couchlite.errors.CertificateMismatchError` naming both fingerprints; after a
connection that opened with nothing pinned yet, the fingerprint seen is stored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from couchlite.errors import CertificateMismatchError, TLSError
from couchlite.replicator.config import ValidatedConfiguration
from couchlite.tls.fingerprint import certificate_fingerprint
from couchlite.transport.tls_client import PeerCertificate


@dataclass(frozen=True, slots=True)
class ExpectedCertificate:
    """What the next handshake must show (see the module docstring)."""

    #: (fingerprint, pin key or None for ``server_fingerprint``), stored pin first
    fingerprints: tuple[tuple[str, str | None], ...]
    #: trust on first use with nothing pinned yet: no chain check, pin what is seen
    first_use: bool


async def expected_certificate(config: ValidatedConfiguration) -> ExpectedCertificate:
    """The fingerprints the next attempt checks (the stored pin read in a worker thread)."""
    fingerprints: list[tuple[str, str | None]] = []
    stored = None
    if config.pin_key is not None:
        stored = await asyncio.to_thread(config.database._pin, config.pin_key)
        if stored is not None:
            fingerprints.append((stored, config.pin_key))
    if config.server_fingerprint is not None:
        fingerprints.append((config.server_fingerprint, None))
    return ExpectedCertificate(tuple(fingerprints), config.pin_key is not None and stored is None)


def trusts_any(config: ValidatedConfiguration, expected: ExpectedCertificate) -> bool:
    """Whether the handshake accepts any certificate (first use, no other trust option)."""
    return (
        expected.first_use
        and not expected.fingerprints
        and config.pinned_server_certificate is None
        and not config.accept_only_self_signed_server_certificate
        and config.trusted_root_certificates is None
    )


def mismatch_error(url: str, record: PeerCertificate, cause: TLSError) -> TLSError:
    """``cause`` as a :class:`CertificateMismatchError` when a fingerprint check refused."""
    if record.mismatch is None:
        return cause
    expected, actual, pin_key = record.mismatch
    if pin_key is None:
        text = (
            f"{url}: the server certificate's SHA-256 fingerprint is {actual}, not the "
            f"server_fingerprint {expected}"
        )
    else:
        text = (
            f"{url}: the server certificate changed: its SHA-256 fingerprint is {actual}, but "
            f"{expected} was pinned for {pin_key!r} when it was first trusted; if the peer "
            f"really has a new certificate, forget the pin with "
            f"database.forget_pin({pin_key!r}) and connect again"
        )
    return CertificateMismatchError(text, expected=expected, actual=actual, pin_key=pin_key)


async def remember_certificate(
    config: ValidatedConfiguration, expected: ExpectedCertificate, record: PeerCertificate
) -> None:
    """After a connection opened: pin what was seen, if trust on first use has no pin yet."""
    if config.pin_key is None or not expected.first_use or record.der is None:
        return
    fingerprint = certificate_fingerprint(record.der)
    pinned = await asyncio.to_thread(config.database._add_pin, config.pin_key, fingerprint)
    if pinned != fingerprint:
        # Another replicator pinned another certificate for the same peer meanwhile.
        record.mismatch = (pinned, fingerprint, config.pin_key)
        raise mismatch_error(config.endpoint.url, record, TLSError("certificate changed"))


__all__ = [
    "ExpectedCertificate",
    "expected_certificate",
    "mismatch_error",
    "remember_certificate",
    "trusts_any",
]
