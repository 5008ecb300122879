"""couchlite: an embedded document database with Couchbase Lite's peer-to-peer sync."""

from __future__ import annotations

from couchlite.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    CorruptDatabaseError,
    CouchliteError,
    DatabaseClosedError,
    DatabaseError,
    ErrorDomain,
    InvalidArgumentError,
    NetworkError,
    NotFoundError,
    ProtocolError,
    TLSError,
)

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "CorruptDatabaseError",
    "CouchliteError",
    "DatabaseClosedError",
    "DatabaseError",
    "ErrorDomain",
    "InvalidArgumentError",
    "NetworkError",
    "NotFoundError",
    "ProtocolError",
    "TLSError",
    "__version__",
]
