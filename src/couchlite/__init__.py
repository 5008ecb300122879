"""couchlite: an embedded document database with Couchbase Lite's peer-to-peer sync."""

from __future__ import annotations

from couchlite.database.blob import Blob
from couchlite.database.collection import (
    Collection,
    CollectionChange,
    ConcurrencyControl,
    DocumentChange,
    ListenerToken,
    Scope,
)
from couchlite.database.database import Database, DatabaseConfiguration
from couchlite.database.document import Document, MutableDocument
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
from couchlite.listener import (
    AsyncUrlEndpointListener,
    ConnectionStatus,
    ListenerCertificateAuthenticator,
    ListenerPasswordAuthenticator,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
)
from couchlite.replicator.config import (
    BasicAuthenticator,
    ClientCertificateAuthenticator,
    CollectionConfiguration,
    ReplicatorConfiguration,
    UrlEndpoint,
)
from couchlite.replicator.replicator import AsyncReplicator, Replicator
from couchlite.replicator.types import (
    Conflict,
    DocumentFlags,
    DocumentReplication,
    ReplicatedDocument,
    ReplicatorActivityLevel,
    ReplicatorChange,
    ReplicatorProgress,
    ReplicatorStatus,
    ReplicatorType,
)
from couchlite.tls import CertAttribute, KeyStore, KeyUsage, TLSIdentity

__version__ = "0.1.0"

__all__ = [
    "AsyncReplicator",
    "AsyncUrlEndpointListener",
    "AuthenticationError",
    "BasicAuthenticator",
    "Blob",
    "CertAttribute",
    "ClientCertificateAuthenticator",
    "Collection",
    "CollectionChange",
    "CollectionConfiguration",
    "ConcurrencyControl",
    "ConfigurationError",
    "Conflict",
    "ConflictError",
    "ConnectionStatus",
    "CorruptDatabaseError",
    "CouchliteError",
    "Database",
    "DatabaseClosedError",
    "DatabaseConfiguration",
    "DatabaseError",
    "Document",
    "DocumentChange",
    "DocumentFlags",
    "DocumentReplication",
    "ErrorDomain",
    "InvalidArgumentError",
    "KeyStore",
    "KeyUsage",
    "ListenerCertificateAuthenticator",
    "ListenerPasswordAuthenticator",
    "ListenerToken",
    "MutableDocument",
    "NetworkError",
    "NotFoundError",
    "ProtocolError",
    "ReplicatedDocument",
    "Replicator",
    "ReplicatorActivityLevel",
    "ReplicatorChange",
    "ReplicatorConfiguration",
    "ReplicatorProgress",
    "ReplicatorStatus",
    "ReplicatorType",
    "Scope",
    "TLSError",
    "TLSIdentity",
    "UrlEndpoint",
    "UrlEndpointListener",
    "UrlEndpointListenerConfiguration",
    "__version__",
]
