"""``AsyncUrlEndpointListener`` and ``UrlEndpointListener``: the passive replication peer.

Theory of operation
-------------------
A listener is a WebSocket server (:func:`couchlite.transport.websocket.serve_channels`) in
front of one database:

0. **Admission.** Each accepted socket is counted before any TLS work
   (:mod:`couchlite.transport._admission`): at most ``max_pending_connections`` in their TLS
   handshake, HTTP upgrade or authentication (excess sockets closed at once, or a stalled one
   dropped for them), each with :data:`HANDSHAKE_TIMEOUT_S` from its TCP connect to deliver its
   complete HTTP request, TLS handshake included; at most ``max_connections`` established, one
   more refused at the upgrade with 503 and ``Retry-After``.
1. **HTTP.** Every request first meets :meth:`AsyncUrlEndpointListener._process_request`:
   password authentication -- in the listener's own bounded executor, after a delay growing
   with the address's recent failures (:mod:`couchlite.listener.throttle`) -- then routing to
   ``/<dbname>/_blipsync`` (``handshake.py`` has the table of refusals). ``websockets`` then
   negotiates the sub-protocol, ``BLIP_3+CBMobile_3`` or ``BLIP_3+CBMobile_2``, in the
   client's order of preference (notes §3.4), and refuses a client that offers neither (400).
2. **Connections.** Each accepted WebSocket becomes a :class:`BlipConnection` with a passive
   replication session attached (``PassiveSession``; pushes allowed unless ``read_only``), is
   entered in the bookkeeping and started. The handler task that ``serve_channels`` runs for it
   (owned by the server, awaited when it closes) waits for the connection to end, then closes
   the session (bounded) and removes the entry. A peer that breaks BLIP or vanishes ends only
   its own connection; a peer that goes silent without closing is found by the WebSocket
   heartbeat (:data:`HEARTBEAT_S`).
3. **Status.** ``connection_count`` counts the entries; ``active_connection_count`` those
   whose session is replicating right now (``is_busy``), as in Couchbase Lite (notes §11.1).
4. **Advertising.** With ``advertise``, once bound, the listener registers its DNS-SD
   service(s) (:mod:`couchlite.listener.advertising`); a failure stops the start.
5. **Stop.** The advertisement is withdrawn; new requests are refused (503), every connection
   is closed with 1001 "going away" (a transient error for the peer's replicator, notes §3.6)
   within :data:`~couchlite._tuning.STOP_GRACE_S`; then the server closes, aborting whatever is
   still open or opening (a peer that stopped reading cannot delay stop), and waits (bounded)
   for the handlers. ``stop()`` returns within ~2 s whatever the sockets are doing.

TLS is on by default (1.2 minimum): a configured :class:`TLSIdentity` with its chain (refused
at start, ``TLSError`` code 7, once expired), else the database's anonymous identity
(:mod:`couchlite.tls.anonymous`), loaded off the event loop at start. A
``ListenerCertificateAuthenticator`` makes the TLS context require client certificates
(:mod:`couchlite.listener.certauth`); its callback form judges the chain in step 1, before any
session exists.

**Database close.** A started listener is a dependent of the database(s) of its collections
(:class:`couchlite.database.database.DatabaseDependent`): closing one stops the listener
first, as Couchbase Lite's close stops the database's listeners. From another thread the close
waits for the stop (bounded by :data:`DATABASE_CLOSE_STOP_TIMEOUT_S`); from the listener's own
event loop, where waiting would deadlock, it refuses new connections at once and schedules the
stop.

``UrlEndpointListener`` (:mod:`couchlite.listener.sync`) is the synchronous façade: the same
object running on the library's event-loop thread (``couchlite._runtime``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import itertools
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from couchlite._lifecycle import AsyncStartsOnEnter
from couchlite._runtime import stop_from_any_thread
from couchlite._tuning import (
    AUTH_FAILURE_MAX_DELAY_S,
    AUTH_TIMEOUT_S,
    DEFAULT_HEARTBEAT_S,
    LISTENER_BIND_ATTEMPTS,
    LISTENER_HANDSHAKE_TIMEOUT_S,
    LISTENER_SESSION_CLOSE_TIMEOUT_S,
    STOP_GRACE_S,
    STOP_HANDLERS_TIMEOUT_S,
)
from couchlite._version import __version__
from couchlite.database.database import Database
from couchlite.database.replication_access import replication_store
from couchlite.errors import ErrorDomain, NetworkCode, NetworkError, NotFoundError, TLSError
from couchlite.listener import advertising, handshake
from couchlite.listener.config import (
    ListenerCertificateAuthenticator,
    ListenerSettings,
    UrlEndpointListenerConfiguration,
    validate,
)
from couchlite.listener.interfaces import local_addresses, url_host
from couchlite.replicator.passive import PassiveSession
from couchlite.replicator.store import CollectionStore
from couchlite.tls.anonymous import load_or_create_anonymous_identity
from couchlite.tls.identity import TLSIdentity
from couchlite.transport.blip_connection import BlipConnection
from couchlite.transport.channel import CLOSE_GOING_AWAY, DEFAULT_SUBPROTOCOLS
from couchlite.transport.failures import pong_timeout
from couchlite.transport.tls_server import require_client_certificates
from couchlite.transport.websocket import (
    ChannelServer,
    ConnectionLimits,
    HandshakeRejection,
    HandshakeRequest,
    WebSocketChannel,
    serve_channels,
)

if TYPE_CHECKING:
    from couchlite.discovery.advertiser import Advertiser

logger = logging.getLogger(__name__)

#: Seconds between WebSocket pings to each peer: LiteCore's default heartbeat (notes §3.6);
#: the configuration's ``heartbeat`` overrides it. Without it a peer that disappears without
#: closing (power loss, network gone) would hold its connection, and its count in ``status``,
#: forever; with it such a peer is dropped within heartbeat + min(20 s, heartbeat - 1 s).
HEARTBEAT_S = DEFAULT_HEARTBEAT_S
#: Bound from a TCP connect to the complete HTTP upgrade request (TLS handshake included).
HANDSHAKE_TIMEOUT_S = LISTENER_HANDSHAKE_TIMEOUT_S
#: Bound on the whole HTTP part of an opening handshake: the request, the failure delay, the
#: authentication check, the answer (each bounded on its own; this is the backstop).
OPEN_TIMEOUT_S = HANDSHAKE_TIMEOUT_S + AUTH_FAILURE_MAX_DELAY_S + AUTH_TIMEOUT_S + 1.0
#: How long ``Database.close`` on another thread waits for a running listener to stop (the
#: stop itself takes ~STOP_GRACE_S; a start in progress finishes first).
DATABASE_CLOSE_STOP_TIMEOUT_S = STOP_GRACE_S + STOP_HANDLERS_TIMEOUT_S + 4.0

_listener_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """``connection_count``: open connections; ``active_connection_count``: those replicating."""

    connection_count: int
    active_connection_count: int


class PassiveSessionLike(Protocol):
    """What the listener needs of a passive replication session."""

    @property
    def is_busy(self) -> bool: ...

    def attach(self) -> None: ...

    async def close(self) -> None: ...


SessionFactory = Callable[[BlipConnection], PassiveSessionLike]


def _make_session_factory(settings: ListenerSettings) -> SessionFactory:
    """Build the per-connection session factory for ``settings`` (called once per start).

    A module-level function so that tests can substitute a stand-in session.
    """
    store = replication_store(settings.database)
    collection_stores: list[CollectionStore] = []
    for collection in settings.collections:
        found = store.collection(collection.scope.name, collection.name)
        if found is None:
            raise NotFoundError(f"collection {collection.full_name} no longer exists")
        collection_stores.append(found)
    # read_only: peers may pull from us but not push to us (notes §11.4).
    allow_push = not settings.read_only

    def factory(connection: BlipConnection) -> PassiveSessionLike:
        return PassiveSession(
            connection,
            store,
            collection_stores,
            allow_push=allow_push,
            allow_pull=True,
            enable_delta_sync=settings.enable_delta_sync,
        )

    return factory


def _server_header() -> str:
    return f"CouchbaseLite/{__version__} (couchlite)"


@dataclass(eq=False)
class _Peer:
    name: str
    connection: BlipConnection
    session: PassiveSessionLike
    remote_address: str | None


class AsyncUrlEndpointListener(AsyncStartsOnEnter):
    """The passive peer for asyncio applications: ``await start()``, ``await stop()``,
    ``async with``. The configuration is copied and validated here (``ConfigurationError``)."""

    def __init__(self, config: UrlEndpointListenerConfiguration) -> None:
        self._settings = validate(config)
        self._id = next(_listener_ids)
        self._name = f"listener-{self._id}"
        self._lock = asyncio.Lock()
        self._server: ChannelServer | None = None
        self._identity: TLSIdentity | None = self._settings.tls_identity
        self._advertiser: Advertiser | None = None
        self._session_factory: SessionFactory | None = None
        self._peers: dict[int, _Peer] = {}
        self._peer_ids = itertools.count(1)
        self._stopping = False
        self._guard = handshake.AuthGuard()
        #: the loop the listener was started on: where a closing database sends the stop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_task: asyncio.Task[None] | None = None
        #: every Database object of the collections (two may share one folder): closing any
        #: of them stops the listener
        self._databases = _databases_of(self._settings)

    # --- public API ---------------------------------------------------------------------------

    @property
    def _reads_only(self) -> bool:
        """Whether peers may only pull: then it may serve a read-only ``Database`` (which
        asks, in ``_add_dependent``); peers' checkpoints are not saved there."""
        return self._settings.read_only

    @property
    def config(self) -> UrlEndpointListenerConfiguration:
        """A copy of the configuration in use."""
        # copy.copy, not vars(): it works whatever the class's storage (dict or slots).
        copied = copy.copy(self._settings.config)
        copied.collections = list(self._settings.collections)
        return copied

    @property
    def port(self) -> int | None:
        """The TCP port listened on; ``None`` when not listening."""
        server = self._server
        return server.port if server is not None else None

    @property
    def urls(self) -> list[str]:
        """``ws[s]://<address>:<port>/<dbname>``, one per usable address; [] when stopped."""
        server = self._server
        if server is None:
            return []
        scheme = "ws" if self._settings.disable_tls else "wss"
        path = quote(self._settings.database.name, safe="")
        return [
            f"{scheme}://{url_host(host)}:{server.port}/{path}"
            for host in _hosts(server, self._settings)
        ]

    @property
    def service_name(self) -> str | None:
        """The DNS-SD instance name registered (``advertise``); ``None`` when not advertising."""
        advertiser = self._advertiser
        return advertiser.registered_name if advertiser is not None else None

    @property
    def tls_identity(self) -> TLSIdentity | None:
        """The identity presented (``None`` with TLS disabled; the anonymous one once
        started when none was configured)."""
        return None if self._settings.disable_tls else self._identity

    @property
    def status(self) -> ConnectionStatus:
        """The connections now open and how many of them are replicating; (0, 0) when
        stopped."""
        # A snapshot: tuple() copies the values without running Python code, so a sync
        # façade's caller on another thread cannot see the dict change size mid-iteration.
        peers = tuple(self._peers.values())
        return ConnectionStatus(len(peers), sum(1 for p in peers if _busy(p)))

    @property
    def is_listening(self) -> bool:
        """``True`` from a successful ``start()`` until ``stop()`` (or its database's close)."""
        return self._server is not None

    async def start(self) -> None:
        """Listen; returns once listening. Idempotent while started.

        Raises :class:`NetworkError` (``POSIX`` domain, e.g. ``EADDRINUSE``) when the address
        cannot be bound, :class:`TLSError` when the identity cannot be used or saved,
        :class:`DatabaseClosedError` when the database is closed; with ``advertise``,
        :class:`ConfigurationError` without zeroconf, :class:`DiscoveryError` when the service
        cannot be registered.
        """
        async with self._lock:
            if self._server is not None:
                return
            settings = self._settings
            factory = _make_session_factory(settings)
            ssl_context = None
            if not settings.disable_tls:
                if self._identity is None:
                    database = settings.database
                    # RSA key generation and file I/O: keep them off the event loop.
                    self._identity = await asyncio.to_thread(
                        load_or_create_anonymous_identity, database.path, database.private_uuid
                    )
                identity = self._identity
                if identity.is_expired():
                    raise TLSError(
                        f"{self._name}: the TLS identity expired on "
                        f"{identity.expiration.isoformat()}",
                        code=NetworkCode.TLS_CERT_EXPIRED,
                    )
                ssl_context = await asyncio.to_thread(identity.server_ssl_context)
                authenticator = settings.authenticator
                if isinstance(authenticator, ListenerCertificateAuthenticator):
                    require_client_certificates(ssl_context, authenticator.roots)
            if settings.advertise:
                advertising.check_available()
            self._session_factory = factory
            self._stopping = False
            self._guard = handshake.AuthGuard()
            self._loop = asyncio.get_running_loop()
            self._register()
            try:
                self._server = await self._bind(ssl_context)
                if settings.advertise:
                    self._advertiser = await advertising.start_advertising(
                        settings, self._server.port, _hosts(self._server, settings), self._identity
                    )
            except BaseException:
                if self._server is not None:
                    await self._server.close(STOP_HANDLERS_TIMEOUT_S)
                    self._server = None
                # a peer may have begun a password check in the moment the socket was bound
                self._guard.runner.shutdown()
                self._unregister()
                self._session_factory = None
                raise
            logger.info(
                "%s: listening on port %d for database %r (%s)",
                self._name,
                self._server.port,
                settings.database.name,
                "ws" if ssl_context is None else "wss",
            )

    async def stop(self) -> None:
        """Close every connection (1001, going away) and stop listening. Idempotent."""
        async with self._lock:
            server = self._server
            if server is None:
                return
            try:
                self._stopping = True
                loop = asyncio.get_running_loop()
                started = loop.time()
                # First, so that browsers learn of the stop while the connections close.
                advertiser, self._advertiser = self._advertiser, None
                if advertiser is not None:
                    await advertiser.stop()
                closes = [
                    asyncio.ensure_future(p.connection.close(CLOSE_GOING_AWAY, "listener stopped"))
                    for p in self._peers.values()
                ]
                if closes:
                    for future in closes:
                        future.add_done_callback(_consume)
                    # A close frame for every peer; those that do not finish in time (a peer that
                    # stopped reading, a full send buffer) are aborted by the server's close below,
                    # which lets their close() return at once.
                    _done, still_closing = await asyncio.wait(closes, timeout=STOP_GRACE_S)
                    if still_closing:
                        logger.info(
                            "%s: %d connections not closed within %.1f s; aborting them",
                            self._name,
                            len(still_closing),
                            STOP_GRACE_S,
                        )
                # Stops listening, aborts what is still opening or open once the grace is over,
                # waits (bounded) for the handlers, which close the sessions.
                grace = max(0.0, STOP_GRACE_S - (loop.time() - started))
                await server.close(STOP_HANDLERS_TIMEOUT_S, grace=grace)
                self._guard.runner.shutdown()
                self._server = None
                self._session_factory = None
                logger.info("%s: stopped in %.2f s", self._name, loop.time() - started)
            finally:
                self._unregister()

    def _stop_for_database_close(self) -> None:
        """Stop because a database of the collections is closing (see the module docstring)."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            # Nothing can run the stop: the server went away with its loop.
            self._unregister()
            return

        def begin_stop() -> None:
            self._stopping = True  # new requests get 503 from now on
            if self._stop_task is None or self._stop_task.done():
                self._stop_task = loop.create_task(self.stop())
                self._stop_task.add_done_callback(self._stop_task_done)

        if not stop_from_any_thread(loop, begin_stop, self.stop, DATABASE_CLOSE_STOP_TIMEOUT_S):
            logger.warning(
                "%s: still stopping %.0f s after its database began closing",
                self._name,
                DATABASE_CLOSE_STOP_TIMEOUT_S,
            )

    def _stop_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "%s: stopping for a database close failed: %s", self._name, task.exception()
            )

    def _register(self) -> None:
        registered: list[Database] = []
        try:
            for database in self._databases:
                database._add_dependent(self)
                registered.append(database)
        except BaseException:
            for database in registered:
                database._remove_dependent(self)
            raise

    def _unregister(self) -> None:
        for database in self._databases:
            database._remove_dependent(self)

    def __repr__(self) -> str:
        state = f"port {self.port}" if self._server is not None else "stopped"
        return f"<AsyncUrlEndpointListener {self._name} {self._settings.database.name!r} {state}>"

    # --- binding ------------------------------------------------------------------------------

    async def _serve_on(self, port: int, ssl_context: ssl.SSLContext | None) -> ChannelServer:
        settings = self._settings
        try:
            return await serve_channels(
                self._serve,
                settings.bind_host,
                port,
                subprotocols=DEFAULT_SUBPROTOCOLS,
                ssl=ssl_context,
                process_request=self._process_request,
                server_header=_server_header(),
                ping_interval=settings.heartbeat,
                ping_timeout=pong_timeout(settings.heartbeat),
                open_timeout=OPEN_TIMEOUT_S,
                limits=ConnectionLimits(
                    max_connections=settings.max_connections,
                    max_pending=settings.max_pending_connections,
                    handshake_timeout=HANDSHAKE_TIMEOUT_S,
                ),
            )
        except NetworkError as exc:
            raise _bind_error(exc, settings, port) from exc

    async def _bind(self, ssl_context: ssl.SSLContext | None) -> ChannelServer:
        # On every interface asyncio binds IPv4 and IPv6 separately; with port 0 the kernel may
        # pick a different port for each. Advertised URLs need one port, so bind again on the
        # first socket's port, and start over (bounded) if something took it meanwhile.
        wanted = self._settings.port
        for attempt in range(LISTENER_BIND_ATTEMPTS):
            server = await self._serve_on(wanted, ssl_context)
            ports = {port for _host, port in server.addresses}
            if len(ports) == 1:
                return server
            retry_port = server.addresses[0][1]
            await server.close()
            try:
                server = await self._serve_on(retry_port, ssl_context)
            except NetworkError:
                if attempt == LISTENER_BIND_ATTEMPTS - 1:
                    raise
                continue
            if len({port for _host, port in server.addresses}) == 1:
                return server
            await server.close()
        raise NetworkError(f"{self._name}: could not bind one port on every interface")

    # --- HTTP ---------------------------------------------------------------------------------

    async def _process_request(self, request: HandshakeRequest) -> HandshakeRejection | None:
        if self._stopping:
            return handshake.SHUTTING_DOWN
        rejection = await handshake.authenticate(
            self._settings.authenticator, request, self._name, self._guard
        )
        if rejection is None:
            rejection = handshake.route(request, self._settings.database.name)
        if rejection is not None:
            logger.debug(
                "%s: %s %s -> %d",
                self._name,
                request.remote_address,
                request.path,
                rejection.status,
            )
        return rejection

    # --- connections --------------------------------------------------------------------------

    async def _serve(self, channel: WebSocketChannel) -> None:
        factory = self._session_factory
        if self._stopping or factory is None:
            await channel.close(CLOSE_GOING_AWAY, "listener stopped")
            return
        number = next(self._peer_ids)
        name = f"{self._name}#{number}"
        connection = BlipConnection(
            channel,
            name=name,
            max_message_size=self._settings.max_message_size,
            max_attachment_size=self._settings.max_attachment_size,
        )
        session = factory(connection)
        session.attach()
        peer = _Peer(name, connection, session, channel.remote_address)
        self._peers[number] = peer
        logger.info("%s: %s connected (%s)", name, peer.remote_address, channel.subprotocol)
        try:
            connection.start()
            # As long as the peer stays: the heartbeat ends a silent one, stop() any other.
            await connection.wait_closed()
            logger.info("%s: %s disconnected", name, peer.remote_address)
        except Exception as exc:
            logger.info("%s: %s disconnected: %s", name, peer.remote_address, exc)
        finally:
            try:
                await self._close_peer(peer)
            finally:
                del self._peers[number]

    async def _close_peer(self, peer: _Peer) -> None:
        # The connection is normally closed by now; closing it first also covers a handler
        # interrupted by cancellation. Then the session can release whatever it holds.
        try:
            await peer.connection.close(CLOSE_GOING_AWAY, "listener stopped")
        except Exception:
            logger.exception("%s: closing the connection failed", peer.name)
        try:
            async with asyncio.timeout(LISTENER_SESSION_CLOSE_TIMEOUT_S):
                await peer.session.close()
        except TimeoutError:
            logger.warning(
                "%s: the session did not close within %.0f s",
                peer.name,
                LISTENER_SESSION_CLOSE_TIMEOUT_S,
            )
        except Exception:
            logger.exception("%s: closing the session failed", peer.name)


def _databases_of(settings: ListenerSettings) -> list[Database]:
    databases = [settings.database]
    for collection in settings.collections:
        if not any(collection.database is d for d in databases):
            databases.append(collection.database)
    return databases


def _hosts(server: ChannelServer, settings: ListenerSettings) -> list[str]:
    """The addresses the listener can be reached at."""
    if settings.bind_host:
        return [settings.bind_host]
    bound = [host for host, _port in server.addresses]
    return local_addresses(ipv4=any(":" not in h for h in bound), ipv6=any(":" in h for h in bound))


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.debug("closing a connection at stop failed: %s", future.exception())


def _busy(peer: _Peer) -> bool:
    with contextlib.suppress(Exception):
        return bool(peer.session.is_busy)
    return False


def _bind_error(exc: NetworkError, settings: ListenerSettings, port: int) -> NetworkError:
    cause = exc.__cause__
    where = f"{settings.bind_host or '*'}:{port}"
    if isinstance(cause, OSError) and cause.errno:
        if cause.errno == errno.EADDRINUSE:
            text = f"cannot listen on {where}: the port is already in use"
        elif cause.errno == errno.EADDRNOTAVAIL:
            text = f"cannot listen on {where}: not an address of this machine"
        else:
            text = f"cannot listen on {where}: {cause.strerror or cause}"
        return NetworkError(text, domain=ErrorDomain.POSIX, code=cause.errno, transient=False)
    return exc


__all__ = [
    "HEARTBEAT_S",
    "AsyncUrlEndpointListener",
    "ConnectionStatus",
    "PassiveSessionLike",
]
