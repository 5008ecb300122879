"""tls: TLS identities (certificate chain + private key), certificate helpers, key stores."""

from __future__ import annotations

from couchlite.tls.certificates import CertAttribute, KeyUsage
from couchlite.tls.identity import TLSIdentity
from couchlite.tls.keystore import KeyStore

__all__ = ["CertAttribute", "KeyStore", "KeyUsage", "TLSIdentity"]
