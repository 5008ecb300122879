"""Certificate fingerprints: the lowercase hex SHA-256 of a certificate's DER encoding.

The form used by discovery's TXT records (``fp``), ``ReplicatorConfiguration.server_fingerprint``
and the pins that trust on first use stores in the database.
"""

from __future__ import annotations

import hashlib
import re

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def certificate_fingerprint(der: bytes) -> str:
    """Lowercase hex SHA-256 of a certificate's DER encoding."""
    return hashlib.sha256(der).hexdigest()


def normalize_fingerprint(value: object) -> str | None:
    """``value`` as 64 lowercase hex digits (``:`` separators and spaces allowed), else
    ``None``."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace(":", "").replace(" ", "")
    return text if _FINGERPRINT.fullmatch(text) else None


__all__ = ["certificate_fingerprint", "normalize_fingerprint"]
