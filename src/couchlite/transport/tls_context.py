"""What client and server TLS contexts share: the chain rules, and presenting an identity.

``ssl.SSLContext.load_cert_chain`` reads only files, so an identity is loaded through a
short-lived file in a private temporary folder: the key in it is encrypted with a one-time random
password, so the private key never reaches the disk in the clear, not even briefly.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from couchlite.errors import TLSError

if TYPE_CHECKING:
    from couchlite.tls.identity import TLSIdentity


def apply_chain_rules(context: ssl.SSLContext) -> None:
    """Verify certificate chains alike on every Python version, and as Couchbase Lite does.

    * Every trusted certificate is a trust anchor, a root or not (``VERIFY_X509_PARTIAL_CHAIN``),
      as LiteCore treats its list of trusted certificates.
    * No RFC 5280 strictness beyond the chain itself (``VERIFY_X509_STRICT``, on by default in
      ``ssl.create_default_context`` from Python 3.13): certificates made by other tools may
      lack, say, an authority key identifier, and Couchbase Lite accepts them.
    """
    context.verify_flags = (
        context.verify_flags | ssl.VERIFY_X509_PARTIAL_CHAIN
    ) & ~ssl.VERIFY_X509_STRICT


def load_identity(context: ssl.SSLContext, identity: TLSIdentity) -> None:
    """Make ``context`` present ``identity`` (a server's certificate, a client's)."""
    password = secrets.token_bytes(32).hex().encode("ascii")
    pem = identity.certificates_pem() + identity.private_key_pem(password)
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


__all__ = ["apply_chain_rules", "load_identity"]
