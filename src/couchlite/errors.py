"""The one exception tree of couchlite.

Every error carries a ``domain`` and a ``code`` that mirror Couchbase Lite's error domains
(``LiteCore``, ``POSIX``, ``SQLite``, ``Network``, ``WebSocket`` -- which also carries HTTP
statuses below 1000 -- and ``BLIP``), and ``is_transient``: whether retrying the same operation
later may succeed.

::

    CouchliteError
    ├── InvalidArgumentError        (also ValueError)   bad input from the caller
    │   └── ConfigurationError                          invalid configuration, at construction
    ├── NotFoundError                                   no such document, collection, blob...
    ├── ConflictError                                   a save or a checkpoint lost a race
    ├── DatabaseClosedError                             use after close
    ├── DatabaseError                                   the storage engine failed
    │   └── CorruptDatabaseError                        unreadable or foreign database file
    ├── NetworkError                                    connection refused/reset, timeouts...
    │   ├── TLSError                                    certificate or handshake failures
    │   │   └── CertificateMismatchError                not the pinned certificate (fingerprint)
    │   ├── ChannelClosed                               the WebSocket closed (close code)
    │   │   └── ConnectionClosedError                   a request on a closed connection
    │   ├── RequestTimeout                              no reply in time
    │   └── HandshakeRefused                            the upgrade got an HTTP error status
    │       └── RedirectRefused                         a redirect we will not follow
    ├── AuthenticationError                             credentials refused (HTTP 401)
    ├── DiscoveryError                                  a peer not found, advertising failed
    ├── ProtocolError                                   a peer broke the wire protocol
    │   ├── BlipError                                   fatal BLIP violation (close code)
    │   │   └── BlipLimitExceeded                       a peer exceeded a size/count limit
    │   └── BlipMessageError                            one message's content is unusable
    └── BlipErrorReply                                  the peer answered a request with ERR

(``CorruptDeltaError``, a delta that cannot be applied, is an ``InvalidArgumentError``.)

The classes below ``NetworkError`` and ``ProtocolError`` are defined next to the code that
raises them -- their transience comes from the transport's classification table, which this
module cannot import without a cycle -- and are re-exported here lazily: ``from
couchlite.errors import ChannelClosed`` works, and imports the defining module on first use.
"""

from __future__ import annotations

import importlib
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from couchlite.blip.errors import (
        BlipError,
        BlipErrorReply,
        BlipLimitExceeded,
        BlipMessageError,
    )
    from couchlite.model.jsondelta import CorruptDeltaError
    from couchlite.transport.errors import (
        ChannelClosed,
        ConnectionClosedError,
        HandshakeRefused,
        RedirectRefused,
        RequestTimeout,
    )


class ErrorDomain(StrEnum):
    """Couchbase Lite's error domains, named as on the wire (BLIP ``Error-Domain``)."""

    LITECORE = "LiteCore"
    POSIX = "POSIX"
    SQLITE = "SQLite"
    FLEECE = "Fleece"
    NETWORK = "Network"
    WEBSOCKET = "WebSocket"
    BLIP = "BLIP"
    HTTP = "HTTP"


class LiteCoreCode:
    """Codes of the ``LiteCore`` domain (Couchbase Lite's own), by their C names."""

    ASSERTION_FAILED = 1
    UNIMPLEMENTED = 2
    BAD_REVISION_ID = 4
    CORRUPT_REVISION_DATA = 5
    NOT_OPEN = 6
    NOT_FOUND = 7
    CONFLICT = 8
    INVALID_PARAMETER = 9
    UNEXPECTED_ERROR = 10
    CANT_OPEN_FILE = 11
    IO_ERROR = 12
    NOT_WRITEABLE = 14
    CORRUPT_DATA = 15
    BUSY = 16
    UNSUPPORTED = 19
    NOT_A_DATABASE_FILE = 20
    REMOTE_ERROR = 26
    DATABASE_TOO_OLD = 27
    DATABASE_TOO_NEW = 28
    BAD_DOC_ID = 29
    INVALID_QUERY = 23
    DELTA_BASE_UNKNOWN = 31
    CORRUPT_DELTA = 32


class NetworkCode:
    """Codes of the ``Network`` domain."""

    DNS_FAILURE = 1
    UNKNOWN_HOST = 2
    TIMEOUT = 3
    INVALID_URL = 4
    TLS_HANDSHAKE_FAILED = 6
    TLS_CERT_EXPIRED = 7
    TLS_CERT_UNTRUSTED = 8
    TLS_CERT_REQUIRED_BY_PEER = 9
    TLS_CERT_REJECTED_BY_PEER = 10
    TLS_CERT_UNKNOWN_ROOT = 11
    UNKNOWN = 13
    TLS_CERT_NAME_MISMATCH = 15
    NETWORK_RESET = 16
    CONNECTION_ABORTED = 17
    CONNECTION_RESET = 18
    CONNECTION_REFUSED = 19


class CouchliteError(Exception):
    """The root of every error couchlite raises on purpose."""

    default_domain: ErrorDomain = ErrorDomain.LITECORE
    default_code: int = LiteCoreCode.UNEXPECTED_ERROR
    default_transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        domain: ErrorDomain | None = None,
        code: int | None = None,
        transient: bool | None = None,
    ) -> None:
        self.domain: ErrorDomain = domain if domain is not None else self.default_domain
        self.code: int = code if code is not None else self.default_code
        if not message or not message.strip():
            # An error must say something: at least what it is and its domain and code.
            message = f"{type(self).__name__} ({self.domain} error {self.code})"
        super().__init__(message)
        self.message = message
        self.is_transient: bool = transient if transient is not None else self.default_transient

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, domain={self.domain!s}, code={self.code})"


class InvalidArgumentError(CouchliteError, ValueError):
    """The caller passed something invalid: a bad ID, a name, a value JSON cannot hold."""

    default_code = LiteCoreCode.INVALID_PARAMETER


class ConfigurationError(InvalidArgumentError):
    """A configuration object is invalid; raised when it is used to build something."""


class InvalidQueryError(InvalidArgumentError):
    """A query does not parse, or names something that does not exist (a collection, a
    function, a full-text index). ``position`` is the offset in the query text of the problem
    (None when it is not at one place)."""

    default_code = LiteCoreCode.INVALID_QUERY

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message if position is None else f"{message} (at offset {position})")
        self.position = position


class NotFoundError(CouchliteError):
    """The document, collection, blob or checkpoint does not exist."""

    default_code = LiteCoreCode.NOT_FOUND


class ConflictError(CouchliteError):
    """The operation conflicts with a newer revision (of a document or a checkpoint)."""

    default_code = LiteCoreCode.CONFLICT


class DatabaseClosedError(CouchliteError):
    """The database (or an object that belongs to it) is used after it was closed."""

    default_code = LiteCoreCode.NOT_OPEN


class DatabaseError(CouchliteError):
    """The storage engine failed (I/O error, disk full, locked...)."""

    default_domain = ErrorDomain.SQLITE
    default_code = 1


class CorruptDatabaseError(DatabaseError):
    """The database file is corrupt, not a couchlite database, or from a newer version."""

    default_domain = ErrorDomain.LITECORE
    default_code = LiteCoreCode.CORRUPT_DATA


class NetworkError(CouchliteError):
    """A network failure: refused, reset, timed out, unreachable. Usually transient."""

    default_domain = ErrorDomain.NETWORK
    default_code = NetworkCode.UNKNOWN
    default_transient = True


class TLSError(NetworkError):
    """A TLS failure: untrusted, expired, wrong name, rejected by the peer. Never transient."""

    default_code = NetworkCode.TLS_HANDSHAKE_FAILED
    default_transient = False


class CertificateMismatchError(TLSError):
    """The server's certificate is not the one pinned: ``server_fingerprint``, or the pin stored
    by trust on first use. ``expected`` and ``actual`` are lowercase hex SHA-256 fingerprints of
    the leaf certificate's DER; ``pin_key`` names the stored pin (``None`` for
    ``server_fingerprint``), which ``Database.forget_pin(pin_key)`` removes."""

    default_code = NetworkCode.TLS_CERT_UNTRUSTED

    def __init__(
        self,
        message: str,
        *,
        expected: str,
        actual: str,
        pin_key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual
        self.pin_key = pin_key


class DiscoveryError(CouchliteError):
    """DNS-SD discovery failed: a peer was not found in time, or a listener could not advertise
    (``couchlite.discovery``)."""

    default_domain = ErrorDomain.NETWORK
    default_code = NetworkCode.UNKNOWN


class AuthenticationError(CouchliteError):
    """The peer refused our credentials (HTTP 401)."""

    default_domain = ErrorDomain.WEBSOCKET
    default_code = 401


class ProtocolError(CouchliteError):
    """A peer violated the wire protocol (BLIP framing, replication messages)."""

    default_domain = ErrorDomain.WEBSOCKET
    default_code = 1002


#: The errors defined elsewhere (see the module docstring) and the module defining each.
_ELSEWHERE = {
    "BlipError": "couchlite.blip.errors",
    "BlipErrorReply": "couchlite.blip.errors",
    "BlipLimitExceeded": "couchlite.blip.errors",
    "BlipMessageError": "couchlite.blip.errors",
    "ChannelClosed": "couchlite.transport.errors",
    "ConnectionClosedError": "couchlite.transport.errors",
    "CorruptDeltaError": "couchlite.model.jsondelta",
    "HandshakeRefused": "couchlite.transport.errors",
    "RedirectRefused": "couchlite.transport.errors",
    "RequestTimeout": "couchlite.transport.errors",
}

if not TYPE_CHECKING:

    def __getattr__(name: str) -> type[CouchliteError]:
        module = _ELSEWHERE.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value: type[CouchliteError] = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups no longer come here
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_ELSEWHERE))


__all__ = [
    "AuthenticationError",
    "BlipError",
    "BlipErrorReply",
    "BlipLimitExceeded",
    "BlipMessageError",
    "CertificateMismatchError",
    "ChannelClosed",
    "ConfigurationError",
    "ConflictError",
    "ConnectionClosedError",
    "CorruptDatabaseError",
    "CorruptDeltaError",
    "CouchliteError",
    "DatabaseClosedError",
    "DatabaseError",
    "DiscoveryError",
    "ErrorDomain",
    "HandshakeRefused",
    "InvalidArgumentError",
    "InvalidQueryError",
    "LiteCoreCode",
    "NetworkCode",
    "NetworkError",
    "NotFoundError",
    "ProtocolError",
    "RedirectRefused",
    "RequestTimeout",
    "TLSError",
]
