"""The listener's configuration and its authenticators.

``UrlEndpointListenerConfiguration`` is a plain mutable object (api.md, "Listener"); it is
copied and validated when a listener is created, so later edits do not affect a running
listener and mistakes surface at construction as :class:`ConfigurationError` (the convention of
architecture.md). Validation produces a :class:`ListenerSettings`: the frozen, checked form the
listener actually runs with.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from couchlite._strict import StrictAttributes
from couchlite._tuning import (
    BLIP_MAX_ATTACHMENT_SIZE,
    BLIP_MAX_MESSAGE_SIZE,
    DEFAULT_HEARTBEAT_S,
    LISTENER_MAX_CONNECTIONS,
    LISTENER_MAX_PENDING_CONNECTIONS,
)
from couchlite.database.collection import Collection
from couchlite.database.database import Database
from couchlite.errors import ConfigurationError, CouchliteError
from couchlite.listener.interfaces import resolve_interface
from couchlite.tls.certificates import CertificateInput, load_certificates
from couchlite.tls.identity import TLSIdentity
from couchlite.transport.openssl_verify import permissive_verify_supported

PasswordCheck = Callable[[str, str], bool | Awaitable[bool]]
#: ``fn(chain) -> bool`` (or a coroutine function): the client's chain, leaf first.
CertificateCheck = Callable[[list[x509.Certificate]], bool | Awaitable[bool]]


class ListenerPasswordAuthenticator(StrictAttributes):
    """Accepts a peer when ``fn(username, password)`` returns ``True`` (HTTP Basic auth).

    ``fn`` may be a plain function or a coroutine function (or return an awaitable). Plain
    functions run in a worker thread so a slow check (a database, a hash) never stalls other
    connections; anything but ``True`` -- including an exception -- refuses the peer (401).
    """

    __slots__ = ("_fn",)

    def __init__(self, fn: PasswordCheck) -> None:
        if not callable(fn):
            raise ConfigurationError("ListenerPasswordAuthenticator needs a callable")
        self._fn = fn

    @property
    def fn(self) -> PasswordCheck:
        """The check."""
        return self._fn

    def __repr__(self) -> str:
        return f"ListenerPasswordAuthenticator({self._fn!r})"


class ListenerCertificateAuthenticator(StrictAttributes):
    """Requires a client certificate in the TLS handshake, and checks it.

    ``ListenerCertificateAuthenticator(fn)``: ``fn(chain)`` gets the client's certificate chain
    (``cryptography.x509.Certificate`` objects, leaf first, any issuer, self-signed included),
    plain or ``async``, and admits the client only by returning ``True``. ``fn`` runs only on a
    chain already verified to be internally valid (the handshake proved possession of the leaf's
    key, each certificate is signed by the next, issuers are CAs, dates and usages hold); the
    trust decision is ``fn``'s, made by comparing certificates, never names (e.g.
    ``chain[-1] == ca``). ``ListenerCertificateAuthenticator.from_roots(certs)``: the
    chain must verify to one of ``certs`` (``x509.Certificate``, PEM or DER). How each works,
    and what a refused client sees: :mod:`couchlite.listener.certauth`. Needs TLS: with
    ``disable_tls`` the listener configuration is refused (:class:`ConfigurationError`).
    """

    __slots__ = ("_fn", "_roots")

    def __init__(self, fn: CertificateCheck) -> None:
        if not callable(fn):
            raise ConfigurationError("ListenerCertificateAuthenticator needs a callable")
        self._fn: CertificateCheck | None = fn
        self._roots: tuple[x509.Certificate, ...] | None = None

    @classmethod
    def from_roots(
        cls, certs: CertificateInput | Sequence[CertificateInput]
    ) -> ListenerCertificateAuthenticator:
        """Admit clients whose certificate chain verifies to one of ``certs``."""
        try:
            roots = tuple(load_certificates(certs))
        except CouchliteError as exc:
            raise ConfigurationError(f"invalid root certificate: {exc}") from exc
        if not roots:
            raise ConfigurationError("from_roots() needs at least one root certificate")
        authenticator = cls.__new__(cls)
        authenticator._fn = None
        authenticator._roots = roots
        return authenticator

    @property
    def fn(self) -> CertificateCheck | None:
        """The callback (``None`` for :meth:`from_roots`)."""
        return self._fn

    @property
    def roots(self) -> list[x509.Certificate] | None:
        """The trusted roots (``None`` for a callback)."""
        return list(self._roots) if self._roots is not None else None

    def __repr__(self) -> str:
        if self._roots is not None:
            return f"ListenerCertificateAuthenticator.from_roots(<{len(self._roots)} roots>)"
        return f"ListenerCertificateAuthenticator({self._fn!r})"


ListenerAuthenticator = ListenerPasswordAuthenticator | ListenerCertificateAuthenticator


@dataclass
class UrlEndpointListenerConfiguration(StrictAttributes):
    """What a listener serves and how (api.md, "Listener").

    ``collections``: served collections, all from one database. ``port``: ``None``/0 picks a
    free port. ``network_interface``: an IP address or an interface name (``"lo"``,
    ``"eth0"``); ``None`` listens on every interface. ``disable_tls``: serve ``ws://`` instead of
    ``wss://``. ``tls_identity``: the server identity; ``None`` uses the database's anonymous
    self-signed identity. ``authenticator``: ``None`` admits every peer; a
    :class:`ListenerPasswordAuthenticator` or a :class:`ListenerCertificateAuthenticator`
    (client certificates; needs TLS). ``read_only``: peers
    may pull but not push. ``enable_delta_sync``: allow delta ``rev`` messages.
    ``heartbeat``: seconds between WebSocket pings to each connected peer (LiteCore's 300 s); a
    peer that answers none within min(20 s, heartbeat - 1 s) is disconnected and cleaned up.
    ``max_message_size``: the largest BLIP message accepted from a peer, in bytes after
    decompression (default 21 MiB: Couchbase's 20 MiB document limit plus room for the
    message's properties); ``max_attachment_size``: the largest blob accepted in one streamed
    ``getAttachment`` reply (default 256 MiB, written to disk as it arrives). A peer exceeding
    either is disconnected with WebSocket close code 1009.

    ``max_connections``: replication connections served at once (default 128); one more is
    refused at the HTTP upgrade with ``503 Too many connections`` and ``Retry-After``, which
    Couchbase Lite clients retry. ``max_pending_connections``: TCP connections still in their
    TLS handshake, HTTP upgrade or authentication at once (default 64), counted from the moment
    the socket is accepted. When all are taken, one pending for over 2 s (stalled) is dropped
    to admit the new socket; otherwise the new socket is closed at once, before any TLS work.
    A connection has 10 s from its TCP connect to deliver its HTTP request (TLS handshake
    included), then is dropped (slowloris). Raise both limits for a listener serving many
    devices at once; each idle connection costs ~180 KB, each pending one up to ~300 KB.

    ``advertise``: once listening, register a ``_couchlite._tcp`` DNS-SD service (mDNS) that
    describes the listener (:mod:`couchlite.discovery.txt`), withdrawn at stop; needs
    ``pip install 'couchlite[discovery]'``. It is announced on ``network_interface`` alone
    when one is set, else on every interface (or those of ``$COUCHLITE_DISCOVERY_INTERFACES``).
    ``service_name``: the instance name (at most 63 UTF-8 bytes, no ``.``); ``None``:
    ``"<database> on <host>"``; zeroconf appends ``-2``... if the name is taken, and
    ``listener.service_name`` tells the name registered. ``advertise_cbl_sample``: also
    register ``_cblistservicesync._tcp`` (no TXT record), which Couchbase's iOS list-sync
    sample browses for.

    Assigning an attribute that does not exist (``config.read_onyl = True``) raises
    :class:`AttributeError` naming the closest one.
    """

    collections: Sequence[Collection]
    port: int | None = None
    network_interface: str | None = None
    disable_tls: bool = False
    tls_identity: TLSIdentity | None = None
    authenticator: ListenerAuthenticator | None = None
    read_only: bool = False
    enable_delta_sync: bool = False
    heartbeat: float = DEFAULT_HEARTBEAT_S
    max_message_size: int = BLIP_MAX_MESSAGE_SIZE
    max_attachment_size: int = BLIP_MAX_ATTACHMENT_SIZE
    max_connections: int = LISTENER_MAX_CONNECTIONS
    max_pending_connections: int = LISTENER_MAX_PENDING_CONNECTIONS
    advertise: bool = False
    service_name: str | None = None
    advertise_cbl_sample: bool = False


@dataclass(frozen=True)
class ListenerSettings:
    """A validated copy of a configuration (see :func:`validate`)."""

    database: Database
    collections: tuple[Collection, ...]
    port: int
    #: the host to bind: "" for every interface, else one address
    bind_host: str
    #: what the user asked for (for messages), ``None`` for every interface
    network_interface: str | None
    disable_tls: bool
    tls_identity: TLSIdentity | None
    authenticator: ListenerAuthenticator | None
    read_only: bool
    enable_delta_sync: bool
    #: the user's configuration, copied
    config: UrlEndpointListenerConfiguration = field(compare=False, repr=False)
    #: seconds between pings to each peer
    heartbeat: float = DEFAULT_HEARTBEAT_S
    #: largest incoming BLIP message, in bytes after decompression
    max_message_size: int = BLIP_MAX_MESSAGE_SIZE
    #: largest blob accepted in one streamed getAttachment reply
    max_attachment_size: int = BLIP_MAX_ATTACHMENT_SIZE
    #: replication connections served at once
    max_connections: int = LISTENER_MAX_CONNECTIONS
    #: connections in TLS handshake, HTTP upgrade or authentication at once
    max_pending_connections: int = LISTENER_MAX_PENDING_CONNECTIONS
    #: register the DNS-SD service(s) once listening
    advertise: bool = False
    #: the instance name asked for (``None``: derived from the database and host)
    service_name: str | None = None
    #: also register Couchbase's iOS sample service type
    advertise_cbl_sample: bool = False


#: the longest DNS label, which a service instance name is
MAX_SERVICE_NAME_BYTES = 63


def _check_service_name(name: object) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError("service_name must be a non-empty string or None")
    if len(name.encode()) > MAX_SERVICE_NAME_BYTES:
        raise ConfigurationError(
            f"service_name must be at most {MAX_SERVICE_NAME_BYTES} UTF-8 bytes (a DNS label)"
        )
    if not name.isprintable() or "." in name:
        raise ConfigurationError(f"service_name {name!r} holds a '.' or a control character")
    return name


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise ConfigurationError(f"{name} must be an integer from 1 to 1,000,000, not {value!r}")
    return value


def _check_heartbeat(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise ConfigurationError(f"heartbeat must be a number of seconds > 0, not {value!r}")
    return float(value)


def _check_size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive number of bytes, not {value!r}")
    return value


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def _check_collections(collections: object) -> tuple[Database, tuple[Collection, ...]]:
    if isinstance(collections, Collection) or not isinstance(collections, Sequence | set):
        raise ConfigurationError("collections must be a list of Collection objects")
    items = tuple(collections)
    if not items:
        raise ConfigurationError("a listener needs at least one collection")
    for item in items:
        if not isinstance(item, Collection):
            raise ConfigurationError(
                f"collections must hold Collection objects, not {type(item).__name__}"
            )
    database = items[0].database
    if database.is_closed:
        raise ConfigurationError(f"database {database.name!r} is closed")
    seen: set[str] = set()
    for item in items:
        # Two Database objects may be open on the same files: "one database" means one folder.
        if item.database is not database and item.database.path != database.path:
            raise ConfigurationError(
                "all collections of a listener must belong to one database "
                f"({database.name!r} and {item.database.name!r} differ)"
            )
        if item.full_name in seen:
            raise ConfigurationError(f"collection {item.full_name} is listed twice")
        seen.add(item.full_name)
    return database, items


def _check_port(port: object) -> int:
    if port is None:
        return 0
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(f"port must be None or an integer 0-65535, not {port!r}")
    return port


def _bind_host(network_interface: object) -> str:
    if network_interface is None:
        return ""
    if not isinstance(network_interface, str) or not network_interface.strip():
        raise ConfigurationError("network_interface must be an IP address or an interface name")
    text = network_interface.strip()
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        pass
    try:
        return resolve_interface(text)
    except CouchliteError as exc:
        raise ConfigurationError(str(exc)) from exc


def validate(config: UrlEndpointListenerConfiguration) -> ListenerSettings:
    """Copy ``config`` and check it; raises :class:`ConfigurationError` when it is invalid."""
    if not isinstance(config, UrlEndpointListenerConfiguration):
        raise ConfigurationError("expected a UrlEndpointListenerConfiguration")
    config = copy.copy(config)
    database, collections = _check_collections(config.collections)
    config.collections = list(collections)
    disable_tls = _check_bool(config.disable_tls, "disable_tls")
    identity = config.tls_identity
    if identity is not None and not isinstance(identity, TLSIdentity):
        raise ConfigurationError("tls_identity must be a TLSIdentity")
    authenticator = config.authenticator
    if authenticator is not None and not isinstance(
        authenticator, (ListenerPasswordAuthenticator, ListenerCertificateAuthenticator)
    ):
        raise ConfigurationError(
            f"unsupported authenticator {type(authenticator).__name__} (expected "
            "ListenerPasswordAuthenticator or ListenerCertificateAuthenticator)"
        )
    if isinstance(authenticator, ListenerCertificateAuthenticator):
        if disable_tls:
            # Client certificates travel in the TLS handshake: without TLS there are none.
            raise ConfigurationError("a ListenerCertificateAuthenticator needs TLS (disable_tls)")
        if authenticator.fn is not None and not permissive_verify_supported():
            raise ConfigurationError(
                "this Python's ssl module cannot run a client-certificate callback; "
                "use ListenerCertificateAuthenticator.from_roots()"
            )
    return ListenerSettings(
        database=database,
        collections=collections,
        port=_check_port(config.port),
        bind_host=_bind_host(config.network_interface),
        network_interface=config.network_interface,
        disable_tls=disable_tls,
        # With TLS off there is no identity in use, whatever was configured (api.md).
        tls_identity=None if disable_tls else identity,
        authenticator=authenticator,
        read_only=_check_bool(config.read_only, "read_only"),
        enable_delta_sync=_check_bool(config.enable_delta_sync, "enable_delta_sync"),
        heartbeat=_check_heartbeat(config.heartbeat),
        max_message_size=_check_size(config.max_message_size, "max_message_size"),
        max_attachment_size=_check_size(config.max_attachment_size, "max_attachment_size"),
        max_connections=_check_count(config.max_connections, "max_connections"),
        max_pending_connections=_check_count(
            config.max_pending_connections, "max_pending_connections"
        ),
        advertise=_check_bool(config.advertise, "advertise"),
        service_name=_check_service_name(config.service_name),
        advertise_cbl_sample=_check_bool(config.advertise_cbl_sample, "advertise_cbl_sample"),
        config=config,
    )


__all__ = [
    "CertificateCheck",
    "ListenerAuthenticator",
    "ListenerCertificateAuthenticator",
    "ListenerPasswordAuthenticator",
    "ListenerSettings",
    "PasswordCheck",
    "UrlEndpointListenerConfiguration",
    "validate",
]
