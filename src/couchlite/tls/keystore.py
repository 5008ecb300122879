"""The anonymous listener identity, kept with its database.

Theory of operation
-------------------
A listener without a configured identity presents a self-signed one (notes §11.2). Peers that
pin it must see the same certificate after the listener restarts, so it is generated once and
stored in the database folder, ``<db.path>/listener-identity.pem``: the certificate, then the
private key as encrypted PKCS#8 (``ENCRYPTED PRIVATE KEY``; ``BestAvailableEncryption``). The
key's password is derived (HKDF-SHA256) from the database's *private* UUID, which never leaves
the database, so the file alone does not give the key away, and a copy of the whole database
folder keeps a working identity (Couchbase Lite keeps its anonymous identity in the platform
keychain instead; a database folder is the nearest equivalent we have without dependencies).

The file is written atomically (a temporary file in the same folder, ``fsync``, ``os.replace``)
with mode 0o600. An identity that has expired, or expires within
:data:`RENEWAL_MARGIN`, is replaced by a new one; so is a file that cannot be read or decrypted
(logged as a warning: peers that pinned the old certificate will have to pin the new one).
Two listeners starting at the same moment on one database may both generate; the last write wins
and the other listener serves its own identity until it restarts.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from couchlite.errors import ErrorDomain, InvalidArgumentError, TLSError
from couchlite.tls._files import write_atomically
from couchlite.tls.identity import ANONYMOUS_LABEL, TLSIdentity

logger = logging.getLogger(__name__)

#: The file, inside the database folder.
IDENTITY_FILE_NAME = "listener-identity.pem"
#: Renew an anonymous certificate this long before it expires, so that a listener started just
#: before the expiry does not hand out a certificate that dies while it runs.
RENEWAL_MARGIN = dt.timedelta(days=1)
#: Domain separation for the key-file password (the private UUID keys other things too).
_HKDF_INFO = b"couchlite listener identity key v1"


def _password(secret: str) -> bytes:
    if not secret:
        raise InvalidArgumentError("the key-store secret must not be empty")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret.encode("utf-8")
    )
    return derived.hex().encode("ascii")


def _read(path: Path, password: bytes) -> TLSIdentity | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        certificates = x509.load_pem_x509_certificates(data)
        key = serialization.load_pem_private_key(data, password=password)
        return TLSIdentity(certificates, key, label=ANONYMOUS_LABEL)
    except (ValueError, TypeError, InvalidArgumentError) as exc:
        logger.warning("%s is unreadable (%s); a new anonymous identity replaces it", path, exc)
        return None


def load_or_create_anonymous_identity(
    folder: Path, secret: str, *, now: dt.datetime | None = None
) -> TLSIdentity:
    """The anonymous identity stored in ``folder`` (created or renewed if needed).

    ``secret`` protects the key file (the database's private UUID). Blocking (file I/O, RSA key
    generation): call it off the event loop. Raises :class:`TLSError` (POSIX code) if the
    identity cannot be saved.
    """
    path = folder / IDENTITY_FILE_NAME
    password = _password(secret)
    identity = _read(path, password)
    if identity is not None and not identity.is_expired(now, margin=RENEWAL_MARGIN):
        return identity
    if identity is not None:
        logger.info("the anonymous listener certificate in %s expired; renewing it", folder)
    identity = TLSIdentity.create_anonymous()
    try:
        write_atomically(path, identity.certificates_pem() + identity.private_key_pem(password))
    except OSError as exc:
        raise TLSError(
            f"cannot save the anonymous TLS identity in {folder}: {exc.strerror or exc}",
            domain=ErrorDomain.POSIX,
            code=exc.errno or 5,
        ) from exc
    return identity


__all__ = ["IDENTITY_FILE_NAME", "RENEWAL_MARGIN", "load_or_create_anonymous_identity"]
