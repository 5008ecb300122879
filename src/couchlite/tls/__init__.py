"""tls: TLS identities (certificate chain + private key) and the anonymous identity's key store."""

from __future__ import annotations

from couchlite.tls.identity import TLSIdentity

__all__ = ["TLSIdentity"]
