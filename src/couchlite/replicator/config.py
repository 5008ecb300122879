"""Replicator configuration: what to replicate, with whom, and how (api.md "Replicator").

This module holds the public configuration only; the engine-level options a session runs with
are :mod:`couchlite.replicator.options`, the public vocabulary (replicator types, activity
levels, status, events, conflicts) :mod:`couchlite.replicator.types`.

Theory of operation
-------------------
The user-facing classes (:class:`UrlEndpoint`, :class:`BasicAuthenticator`,
:class:`CollectionConfiguration`, :class:`ReplicatorConfiguration`) are plain mutable objects, as
in Couchbase Lite: set attributes in any order, add collections, hand the configuration to a
replicator. Nothing but the URL and the credentials is checked while it is being built.

When a replicator is created it calls :meth:`ReplicatorConfiguration._validated`, which checks
everything at once (raising :class:`ConfigurationError`) and returns a frozen
:class:`ValidatedConfiguration` -- a copy, so later edits to the configuration object do not
reach a running replicator (architecture.md, "Configuration objects are copied").
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, Union

from couchlite._strict import StrictAttributes
from couchlite._tuning import (
    BLIP_MAX_ATTACHMENT_SIZE,
    BLIP_MAX_MESSAGE_SIZE,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_MAX_ATTEMPT_WAIT_S,
    DEFAULT_ONE_SHOT_MAX_ATTEMPTS,
)
from couchlite.database import Collection
from couchlite.errors import ConfigurationError, InvalidArgumentError
from couchlite.replicator.endpoint import (
    Authenticator,
    BasicAuthenticator,
    ClientCertificateAuthenticator,
    UrlEndpoint,
)
from couchlite.replicator.server_trust import (
    CertificateLike,
    certificate_der,
    validated_server_trust,
)
from couchlite.replicator.types import Conflict, DocumentFlags, ReplicatorType

if TYPE_CHECKING:
    from couchlite.database.database import Database
    from couchlite.database.document import Document
    from couchlite.discovery.peer import DiscoveredPeer

#: ``fn(document, flags) -> bool``: replicate this revision?
ReplicationFilter = Callable[["Document", DocumentFlags], bool]
#: ``fn(conflict) -> Document | None`` (or a coroutine function): the resolution, ``None`` to
#: delete the document
ConflictResolver = Callable[[Conflict], Union["Document", Awaitable[Union["Document", None]], None]]

#: Headers a user may not set: the WebSocket handshake owns them.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "connection",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "sec-websocket-accept",
        "content-length",
    }
)


@dataclass
class CollectionConfiguration(StrictAttributes):
    """Per-collection options: document IDs, push/pull filters, conflict resolver.

    ``push_filter`` / ``pull_filter``: ``fn(document, flags) -> bool``, called for each revision
    about to be sent / just received (``flags`` has ``DocumentFlags.DELETED`` for tombstones);
    return False to skip it. ``conflict_resolver``: ``fn(conflict) -> Document | None``, plain or
    ``async``; ``None`` deletes the document. Without one, Couchbase Lite's default rule applies.
    """

    document_ids: Iterable[str] | None = None
    push_filter: ReplicationFilter | None = None
    pull_filter: ReplicationFilter | None = None
    conflict_resolver: ConflictResolver | None = None


@dataclass(frozen=True, slots=True)
class ValidatedCollection:
    """One collection of a validated configuration, its options frozen."""

    collection: Collection
    document_ids: frozenset[str] | None
    push_filter: ReplicationFilter | None
    pull_filter: ReplicationFilter | None
    conflict_resolver: ConflictResolver | None

    @property
    def scope_name(self) -> str:
        return self.collection.scope.name

    @property
    def name(self) -> str:
        return self.collection.name


@dataclass(frozen=True, slots=True)
class ValidatedConfiguration:
    """A checked, frozen copy of a :class:`ReplicatorConfiguration` (what a replicator runs)."""

    endpoint: UrlEndpoint
    database: Database
    collections: tuple[ValidatedCollection, ...]
    replicator_type: ReplicatorType
    continuous: bool
    authenticator: Authenticator | None
    accept_only_self_signed_server_certificate: bool
    #: DER of the pinned certificate
    pinned_server_certificate: bytes | None
    headers: tuple[tuple[str, str], ...]
    user_agent: str | None
    heartbeat: float
    #: total connection attempts before giving up; 0 = unlimited (the default 0 is resolved)
    max_attempts: int
    max_attempt_wait_time: float
    enable_auto_purge: bool
    enable_delta_sync: bool = field(default=False)
    #: DER of the custom trust anchors (``None``: the system's)
    trusted_root_certificates: tuple[bytes, ...] | None = field(default=None)
    #: largest incoming BLIP message, in bytes after decompression
    max_message_size: int = field(default=BLIP_MAX_MESSAGE_SIZE)
    #: largest blob accepted in one streamed getAttachment reply
    max_attachment_size: int = field(default=BLIP_MAX_ATTACHMENT_SIZE)
    #: follow redirects to another scheme, host or port (without headers or credentials)
    allow_cross_origin_redirects: bool = field(default=False)
    #: lowercase hex SHA-256 the server's leaf certificate must have
    server_fingerprint: str | None = field(default=None)
    #: key of the trust-on-first-use pin in the database (``None``: no trust on first use)
    pin_key: str | None = field(default=None)

    def collection_for(self, collection: Collection) -> ValidatedCollection | None:
        for entry in self.collections:
            if _same_collection(entry.collection, collection):
                return entry
        return None


def _same_collection(a: Collection, b: Collection) -> bool:
    return a.database is b.database and a.full_name == b.full_name


def _endpoint(value: object) -> UrlEndpoint:
    if isinstance(value, str):
        return UrlEndpoint(value)
    if not isinstance(value, UrlEndpoint):
        raise ConfigurationError(f"target must be a UrlEndpoint, not {type(value).__name__}")
    return value


def _number(value: object, name: str, *, minimum: float, allow_equal: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}")
    number = float(value)
    if math.isnan(number) or number < minimum or (number == minimum and not allow_equal):
        raise ConfigurationError(f"{name} must be > {minimum:g} (got {value!r})")
    return number


_Callable = TypeVar("_Callable", bound=Callable[..., object])


def _filter(value: _Callable | None, name: str) -> _Callable | None:
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name} must be callable or None, not {type(value).__name__}")
    return value


def _copy_ids(value: Iterable[str] | None) -> Iterable[str] | None:
    # A snapshot, so later edits of the caller's list do not leak in; anything odd is kept as
    # it is for _validated() to refuse.
    if value is None or isinstance(value, (str, bytes)):
        return value
    try:
        return list(value)
    except TypeError:
        return value


def _document_ids(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        # A lone string would silently become a set of one-character IDs.
        raise ConfigurationError("document_ids must be a collection of strings, not a string")
    try:
        ids = frozenset(value)
    except TypeError as exc:
        raise ConfigurationError(f"document_ids must be iterable: {exc}") from exc
    bad = [i for i in ids if not isinstance(i, str) or not i]
    if bad:
        raise ConfigurationError(f"document_ids must be non-empty strings (got {bad[0]!r})")
    return ids


class ReplicatorConfiguration(StrictAttributes):
    """Everything a replicator needs; copied and validated when a replicator is created.

    ``max_message_size``: the largest BLIP message accepted from the peer, in bytes after
    decompression (default 21 MiB: Couchbase's 20 MiB document limit plus room for the
    message's properties); ``max_attachment_size``: the largest blob accepted in one streamed
    ``getAttachment`` reply (default 256 MiB, written to disk as it arrives). A peer exceeding
    either is disconnected with WebSocket close code 1009 and the replicator stops with a
    :class:`~couchlite.blip.BlipLimitExceeded` error (not retried: the peer would send the
    same again).

    Redirects of the connection's HTTP upgrade: same-origin ones are followed (up to 10). One
    to another scheme, host or port stops the replicator with a
    :class:`~couchlite.errors.RedirectRefused` error (a ``NetworkError`` whose
    ``code`` is the HTTP status), unless ``allow_cross_origin_redirects``: then it is followed,
    but the custom ``headers``, the authenticator's credentials and the client certificate are
    not sent there. ``wss://`` to ``ws://`` is always refused.

    Every option is an attribute, set in the constructor or later; assigning one that does not
    exist (``config.continous = True``) raises :class:`AttributeError` naming the closest one.
    """

    #: The remote database (a URL string given to the constructor becomes a UrlEndpoint).
    target: UrlEndpoint
    #: Push, pull or both.
    replicator_type: ReplicatorType
    #: Keep running and replicating changes as they happen, instead of stopping when idle.
    continuous: bool
    #: Credentials: HTTP Basic or a client certificate.
    authenticator: Authenticator | None
    #: Accept only a self-signed server certificate, whatever its issuer (peer-to-peer).
    accept_only_self_signed_server_certificate: bool
    #: The one server certificate accepted (x509.Certificate, PEM or DER).
    pinned_server_certificate: CertificateLike | None
    #: Custom trust anchors for the server's chain, *instead of* the system's CAs (host name
    #: still checked); certificates as x509.Certificate, PEM or DER.
    trusted_root_certificates: list[CertificateLike] | None
    #: Extra HTTP headers of the WebSocket upgrade (``User-Agent`` replaces couchlite's own).
    headers: dict[str, str]
    #: Seconds between WebSocket pings (LiteCore's 300 s).
    heartbeat: float
    #: Connection attempts before giving up; 0: 10 for one-shot replicators, unlimited for
    #: continuous ones.
    max_attempts: int
    #: Longest wait between attempts, in seconds (the backoff's cap).
    max_attempt_wait_time: float
    #: Purge documents whose access the remote revoked.
    enable_auto_purge: bool
    #: Accept and send delta revisions.
    enable_delta_sync: bool
    #: Largest incoming BLIP message, in bytes after decompression.
    max_message_size: int
    #: Largest blob accepted in one streamed ``getAttachment`` reply, in bytes.
    max_attachment_size: int
    #: Follow redirects to another scheme, host or port (without headers or credentials).
    allow_cross_origin_redirects: bool
    #: Hex SHA-256 of the one server leaf certificate accepted (``:`` separators allowed).
    server_fingerprint: str | None
    #: Pin the first certificate seen in the database; refuse another later.
    trust_on_first_use: bool
    #: The peer's stable ID (discovery's ``id``): keys the pin; ``None``: the URL does.
    peer_id: str | None
    _collections: list[tuple[Collection, CollectionConfiguration]]

    def __init__(
        self,
        target: UrlEndpoint | str,
        *,
        replicator_type: ReplicatorType = ReplicatorType.PUSH_AND_PULL,
        continuous: bool = False,
        authenticator: Authenticator | None = None,
        accept_only_self_signed_server_certificate: bool = False,
        pinned_server_certificate: CertificateLike | None = None,
        trusted_root_certificates: Iterable[CertificateLike] | None = None,
        headers: Mapping[str, str] | None = None,
        heartbeat: float = DEFAULT_HEARTBEAT_S,
        max_attempts: int = 0,
        max_attempt_wait_time: float = DEFAULT_MAX_ATTEMPT_WAIT_S,
        enable_auto_purge: bool = True,
        enable_delta_sync: bool = False,
        max_message_size: int = BLIP_MAX_MESSAGE_SIZE,
        max_attachment_size: int = BLIP_MAX_ATTACHMENT_SIZE,
        allow_cross_origin_redirects: bool = False,
        server_fingerprint: str | None = None,
        trust_on_first_use: bool = False,
        peer_id: str | None = None,
    ) -> None:
        self.target = _endpoint(target)
        self.replicator_type = replicator_type
        self.continuous = continuous
        self.authenticator = authenticator
        self.accept_only_self_signed_server_certificate = accept_only_self_signed_server_certificate
        self.pinned_server_certificate = pinned_server_certificate
        self.trusted_root_certificates = (
            list(trusted_root_certificates) if trusted_root_certificates is not None else None
        )
        self.headers = dict(headers) if headers is not None else {}
        self.heartbeat = heartbeat
        self.max_attempts = max_attempts
        self.max_attempt_wait_time = max_attempt_wait_time
        self.enable_auto_purge = enable_auto_purge
        self.enable_delta_sync = enable_delta_sync
        self.max_message_size = max_message_size
        self.max_attachment_size = max_attachment_size
        self.allow_cross_origin_redirects = allow_cross_origin_redirects
        self.server_fingerprint = server_fingerprint
        self.trust_on_first_use = trust_on_first_use
        self.peer_id = peer_id
        self._collections = []

    @classmethod
    def for_peer(
        cls, peer: DiscoveredPeer, *, trust_on_first_use: bool = True, **options: Any
    ) -> ReplicatorConfiguration:
        """The same as ``peer.replicator_configuration(...)``
        (:meth:`couchlite.discovery.DiscoveredPeer.replicator_configuration`)."""
        return peer.replicator_configuration(trust_on_first_use=trust_on_first_use, **options)

    # --- collections --------------------------------------------------------------------------

    def add_collection(
        self, collection: Collection, config: CollectionConfiguration | None = None
    ) -> None:
        """Replicate ``collection`` (replacing its configuration if it was already added).

        The collection configuration is copied: editing it afterwards changes nothing here.
        """
        if not isinstance(collection, Collection):
            raise InvalidArgumentError(
                f"add_collection() takes a Collection, not {type(collection).__name__}"
            )
        if config is None:
            config = CollectionConfiguration()
        elif not isinstance(config, CollectionConfiguration):
            raise InvalidArgumentError(
                f"config must be a CollectionConfiguration, not {type(config).__name__}"
            )
        copied = CollectionConfiguration(
            document_ids=_copy_ids(config.document_ids),
            push_filter=config.push_filter,
            pull_filter=config.pull_filter,
            conflict_resolver=config.conflict_resolver,
        )
        for i, (existing, _) in enumerate(self._collections):
            if _same_collection(existing, collection):
                self._collections[i] = (collection, copied)
                return
        self._collections.append((collection, copied))

    def add_collections(
        self, collections: Iterable[Collection], config: CollectionConfiguration | None = None
    ) -> None:
        """Replicate each of ``collections`` with the same configuration."""
        for collection in collections:
            self.add_collection(collection, config)

    def remove_collection(self, collection: Collection) -> None:
        """Stop replicating ``collection`` (with its configuration); nothing happens if it was
        not added."""
        self._collections = [
            (c, cfg) for c, cfg in self._collections if not _same_collection(c, collection)
        ]

    @property
    def collections(self) -> list[Collection]:
        """The collections to replicate, in the order they were added (a new list each time)."""
        return [c for c, _ in self._collections]

    def collection_config(self, collection: Collection) -> CollectionConfiguration | None:
        """A copy of the configuration of ``collection``, or ``None`` if it was not added."""
        for existing, cfg in self._collections:
            if _same_collection(existing, collection):
                return CollectionConfiguration(
                    document_ids=_copy_ids(cfg.document_ids),
                    push_filter=cfg.push_filter,
                    pull_filter=cfg.pull_filter,
                    conflict_resolver=cfg.conflict_resolver,
                )
        return None

    @property
    def database(self) -> Database | None:
        """The database of the configured collections (``None`` before any is added)."""
        return self._collections[0][0].database if self._collections else None

    def __repr__(self) -> str:
        names = ", ".join(c.full_name for c, _ in self._collections)
        return (
            f"ReplicatorConfiguration({self.target!r}, {self.replicator_type.name}, "
            f"continuous={self.continuous}, collections=[{names}])"
        )

    # --- validation -------------------------------------------------------------------------

    def _validated(self) -> ValidatedConfiguration:
        """Check everything and return a frozen copy; :class:`ConfigurationError` otherwise."""
        endpoint = _endpoint(self.target)
        if not self._collections:
            raise ConfigurationError("no collections to replicate: call add_collection()")
        database = self._collections[0][0].database
        if any(c.database is not database for c, _ in self._collections):
            raise ConfigurationError("all collections of a replicator must be of one database")
        if database.is_closed:
            raise ConfigurationError("the database of the collections is closed")
        if not isinstance(self.replicator_type, ReplicatorType):
            raise ConfigurationError(
                f"replicator_type must be a ReplicatorType, not {self.replicator_type!r}"
            )
        for name in (
            "continuous",
            "accept_only_self_signed_server_certificate",
            "enable_auto_purge",
            "enable_delta_sync",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"{name} must be a bool, not {getattr(self, name)!r}")
        if self.authenticator is not None and not isinstance(
            self.authenticator, (BasicAuthenticator, ClientCertificateAuthenticator)
        ):
            raise ConfigurationError(
                f"unsupported authenticator {type(self.authenticator).__name__}"
            )
        if isinstance(self.authenticator, ClientCertificateAuthenticator) and not endpoint.is_tls:
            raise ConfigurationError("a ClientCertificateAuthenticator needs a wss:// endpoint")
        if self.trust_on_first_use is True and self.allow_cross_origin_redirects is True:
            # The pin would be the certificate of the last host of the redirects, and every
            # later attempt, which starts at the first host, refused as a changed certificate.
            raise ConfigurationError(
                "trust_on_first_use cannot be combined with allow_cross_origin_redirects"
            )
        trust = validated_server_trust(
            endpoint,
            pinned=self.pinned_server_certificate,
            roots=self.trusted_root_certificates,
            only_self_signed=self.accept_only_self_signed_server_certificate,
            fingerprint=self.server_fingerprint,
            trust_on_first_use=self.trust_on_first_use,
            peer_id=self.peer_id,
        )
        headers, user_agent = self._validated_headers()
        heartbeat = _number(self.heartbeat, "heartbeat", minimum=0.0, allow_equal=False)
        wait = _number(
            self.max_attempt_wait_time, "max_attempt_wait_time", minimum=0.0, allow_equal=False
        )
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise ConfigurationError(f"max_attempts must be an int >= 0, not {attempts!r}")
        if attempts == 0:
            attempts = 0 if self.continuous else DEFAULT_ONE_SHOT_MAX_ATTEMPTS
        for name in ("max_message_size", "max_attachment_size"):
            size = getattr(self, name)
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ConfigurationError(f"{name} must be a positive number of bytes, not {size!r}")
        if not isinstance(self.allow_cross_origin_redirects, bool):
            raise ConfigurationError(
                "allow_cross_origin_redirects must be a bool, not "
                f"{type(self.allow_cross_origin_redirects).__name__}"
            )
        collections = []
        for collection, cfg in self._collections:
            collections.append(
                ValidatedCollection(
                    collection=collection,
                    document_ids=_document_ids(cfg.document_ids),
                    push_filter=_filter(cfg.push_filter, "push_filter"),
                    pull_filter=_filter(cfg.pull_filter, "pull_filter"),
                    conflict_resolver=_filter(cfg.conflict_resolver, "conflict_resolver"),
                )
            )
        return ValidatedConfiguration(
            endpoint=endpoint,
            database=database,
            collections=tuple(collections),
            replicator_type=self.replicator_type,
            continuous=self.continuous,
            authenticator=self.authenticator,
            accept_only_self_signed_server_certificate=self.accept_only_self_signed_server_certificate,
            pinned_server_certificate=trust.pinned_der,
            headers=headers,
            user_agent=user_agent,
            heartbeat=heartbeat,
            max_attempts=attempts,
            max_attempt_wait_time=wait,
            enable_auto_purge=self.enable_auto_purge,
            enable_delta_sync=self.enable_delta_sync,
            trusted_root_certificates=trust.roots,
            max_message_size=self.max_message_size,
            max_attachment_size=self.max_attachment_size,
            allow_cross_origin_redirects=self.allow_cross_origin_redirects,
            server_fingerprint=trust.fingerprint,
            pin_key=trust.pin_key,
        )

    def _validated_headers(self) -> tuple[tuple[tuple[str, str], ...], str | None]:
        if not isinstance(self.headers, Mapping):
            raise ConfigurationError(
                f"headers must be a mapping, not {type(self.headers).__name__}"
            )
        headers: list[tuple[str, str]] = []
        user_agent = None
        for name, value in self.headers.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise ConfigurationError(f"header names and values must be strings: {name!r}")
            if not name or any(c in name for c in " :\r\n\t") or any(c in value for c in "\r\n"):
                raise ConfigurationError(f"invalid header {name!r}")
            lowered = name.lower()
            if lowered in _RESERVED_HEADERS:
                raise ConfigurationError(f"header {name!r} is set by the WebSocket handshake")
            if lowered == "user-agent":
                # LiteCore lets the application's User-Agent replace its own (notes §3.2).
                user_agent = value
                continue
            if lowered == "authorization" and self.authenticator is not None:
                raise ConfigurationError(
                    "an Authorization header conflicts with the configured authenticator"
                )
            headers.append((name, value))
        return tuple(headers), user_agent


__all__ = [
    "Authenticator",
    "BasicAuthenticator",
    "CertificateLike",
    "ClientCertificateAuthenticator",
    "CollectionConfiguration",
    "ConflictResolver",
    "ReplicationFilter",
    "ReplicatorConfiguration",
    "UrlEndpoint",
    "ValidatedCollection",
    "ValidatedConfiguration",
    "certificate_der",
]
