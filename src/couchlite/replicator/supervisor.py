"""The retry supervisor of an active replicator: connect, run one session, decide what next.

Theory of operation
-------------------
One :class:`Supervisor` runs per ``start()`` of a replicator, as one task owned by the
replicator. It loops over *attempts*; each attempt is

1. **connect** -- ``connect_channel(<target>/_blipsync)`` with the BLIP sub-protocols, the
   ``Authorization`` header (preemptive Basic auth, notes §3.2), the user's headers, our
   ``User-Agent``, the heartbeat as the ping interval, and for ``wss://`` a TLS context from
   :mod:`couchlite.transport.tls_client` (default / pinned / self-signed-only);
2. **session** -- a :class:`BlipConnection` over the channel and an ``ActiveSession`` (the
   engine) run to completion: a one-shot session returns when done, a continuous one runs until
   the connection fails;
3. **close** -- with 1000, bounded, whatever happened.

What next is decided only here (never inside the connection code, architecture.md):

* a one-shot session that finished, or a stop request -> done (STOPPED, no error);
* a permanent error (``is_transient`` False: 401, 403, 404, TLS, protocol...) -> STOPPED with it;
* a transient error (refused/reset, 1001/1006, 503...) -> OFFLINE, wait ``2**(n-1)`` seconds
  (1, 2, 4 ... capped at ``max_attempt_wait_time``) on the injected :class:`BackoffClock`, and
  try again -- unless ``max_attempts`` attempts failed in a row (0 = unlimited). The count of
  failures restarts after every connection that opened. The OFFLINE status carries the delay
  (``retry_in``) and the time of the next attempt (``next_attempt_at``, in the clock's
  ``time()``). Which errors are transient: the table of :mod:`couchlite.transport.failures`.
* a peer that stops answering is found by the WebSocket heartbeat (a ping every ``heartbeat``
  seconds, a pong expected within min(20 s, heartbeat - 1 s)): the connection fails with 1006,
  a transient error.
* a continuous session that *ends* without an error was closed normally by the peer; LiteCore
  reports that as 1001 "closed by peer" and retries (notes §3.6), so do we.

A stop is a cancellation of the supervisor's task: it interrupts whichever await is pending --
the connection handshake, the session, the backoff sleep -- at once; ``finally`` blocks close
the connection (1000), given :data:`~couchlite._tuning.STOP_GRACE_S` to do so when stopping,
after which its TCP connection is aborted: a peer that stopped reading cannot delay a stop.

Redirects of the upgrade are followed by the connector, not here: same-origin ones with all
headers; cross-origin ones only with ``allow_cross_origin_redirects``, and then without the
``Authorization`` header, the custom headers or the client certificate (the TLS context for
them is built here, with the same trust settings and no client identity).

The user's push/pull filters and conflict resolvers reach the engine through the collection's
store (:func:`session_collections`): the database adapts them to byte-level callbacks, building
the ``Document`` objects they see.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from couchlite._tuning import REPLICATOR_ABORT_WAIT_S, REPLICATOR_CLOSE_TIMEOUT_S, STOP_GRACE_S
from couchlite._version import __version__
from couchlite.errors import (
    AuthenticationError,
    CouchliteError,
    DatabaseClosedError,
    InvalidArgumentError,
    NetworkCode,
    TLSError,
)
from couchlite.replicator.active import ActiveSession
from couchlite.replicator.config import (
    BasicAuthenticator,
    ClientCertificateAuthenticator,
    ValidatedCollection,
    ValidatedConfiguration,
)
from couchlite.replicator.options import SessionCollectionOptions, SessionEvents
from couchlite.replicator.pins import (
    ExpectedCertificate,
    expected_certificate,
    mismatch_error,
    remember_certificate,
    trusts_any,
)
from couchlite.replicator.store import DatabaseStore
from couchlite.transport.blip_connection import BlipConnection
from couchlite.transport.boundary import classify
from couchlite.transport.channel import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    DEFAULT_SUBPROTOCOLS,
    ChannelClosed,
    MessageChannel,
)
from couchlite.transport.failures import pong_timeout
from couchlite.transport.tls_client import PeerCertificate, client_context

if TYPE_CHECKING:
    import ssl


logger = logging.getLogger(__name__)


_supervisor_ids = itertools.count(1)


class BackoffClock(Protocol):
    """What the supervisor waits on between attempts (a fake one makes retry tests instant).

    A clock may also have ``time() -> float``, the time ``next_attempt_at`` is expressed in
    (the status); without it, ``time.time()``.
    """

    async def sleep(self, seconds: float) -> None: ...


class AsyncioClock:
    """The real clock: ``asyncio.sleep``, and ``time.time()`` for ``next_attempt_at``."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def time(self) -> float:
        return time.time()


class Connector(Protocol):
    """``couchlite.transport.websocket.connect_channel``'s shape, as the supervisor calls it."""

    def __call__(
        self,
        url: str,
        *,
        subprotocols: Sequence[str],
        headers: Sequence[tuple[str, str]],
        ssl: ssl.SSLContext | None,
        user_agent: str | None,
        ping_interval: float | None,
        ping_timeout: float | None,
        allow_cross_origin_redirects: bool,
        cross_origin_ssl: ssl.SSLContext | None,
    ) -> Awaitable[MessageChannel]: ...


class Session(Protocol):
    async def run(self) -> None: ...


SessionFactory = Callable[..., Session]


class SupervisorOwner(SessionEvents, Protocol):
    """What the supervisor reports to (the replicator), on the event loop."""

    def connecting(self) -> None: ...

    def certificate_received(self, der: bytes) -> None: ...

    def connected(self) -> None: ...

    def offline(
        self,
        error: CouchliteError,
        retry_in: float | None = None,
        next_attempt_at: float | None = None,
    ) -> None: ...


def backoff_delay(failures: int, cap: float) -> float:
    """The wait after ``failures`` consecutive failed attempts: 1, 2, 4 ... s, at most ``cap``."""
    if failures < 1:
        return 0.0
    # min() before the power would overflow a float after ~1000 failures of a continuous one.
    return min(cap, 2.0 ** min(failures - 1, 64))


def default_connector() -> Connector:
    # Imported lazily: importing couchlite must not import websockets (and the replicator
    # package never imports it itself, tests/test_layers.py).
    from couchlite.transport.websocket import connect_channel

    return connect_channel


def default_session_factory() -> SessionFactory:
    factory: SessionFactory = ActiveSession
    return factory


def default_database_store(config: ValidatedConfiguration) -> DatabaseStore:
    from couchlite.database import replication_store

    return replication_store(config.database)


def _user_agent() -> str:
    return f"couchlite/{__version__}"


class Supervisor:
    """Attempts, sessions and retries of one run of a replicator (see the module docstring)."""

    def __init__(
        self,
        config: ValidatedConfiguration,
        owner: SupervisorOwner,
        *,
        reset: bool = False,
        clock: BackoffClock | None = None,
        connector: Connector | None = None,
        session_factory: SessionFactory | None = None,
        database_store: DatabaseStore | None = None,
        name: str | None = None,
    ) -> None:
        self.config = config
        self.owner = owner
        self.reset = reset
        self.clock = clock if clock is not None else AsyncioClock()
        self._connector = connector
        self._session_factory = session_factory
        self._database_store = database_store
        self.name = name or f"repl-{next(_supervisor_ids)}"
        #: connection attempts made so far (for tests and statistics)
        self.attempts = 0
        #: the session of the current attempt while it runs (its live state is consulted on
        #: the loop: pending documents)
        self.session: Session | None = None

    async def run(self) -> CouchliteError | None:
        """Run attempts until done; returns the error that stopped it (``None``: success).

        Cancel the task running it to stop: the cancellation propagates, after cleanup.
        """
        failures = 0
        while True:
            self.owner.connecting()
            self.attempts += 1
            error, opened = await self._attempt()
            if error is None:
                return None
            if opened:
                failures = 0
            failures += 1
            limit = self.config.max_attempts
            if isinstance(error, DatabaseClosedError):
                # Retrying cannot help: the database is gone (closed under the replicator).
                logger.info("%s: stopping: %s", self.name, error)
                return error
            if not error.is_transient:
                logger.info("%s: stopping on a permanent error: %s", self.name, error)
                return error
            if limit and failures >= limit:
                logger.info("%s: giving up after %d attempts: %s", self.name, failures, error)
                return error
            delay = backoff_delay(failures, self.config.max_attempt_wait_time)
            logger.info("%s: offline (%s); retrying in %.0f s", self.name, error, delay)
            now: Callable[[], float] = getattr(self.clock, "time", time.time)
            self.owner.offline(error, delay, now() + delay)
            await self.clock.sleep(delay)

    async def _attempt(self) -> tuple[CouchliteError | None, bool]:
        """One connection and session; returns (error or None, whether the connection opened)."""
        record = PeerCertificate()
        try:
            expected = await expected_certificate(self.config)
            channel = await self._connect(record, expected)
        except CouchliteError as exc:
            if record.der is not None:
                # Refused after the TLS handshake (pinned / self-signed checks, HTTP errors): the
                # certificate we were shown is what the user needs to diagnose it.
                self.owner.certificate_received(record.der)
            return exc, False
        try:
            await remember_certificate(self.config, expected, record)
        except CouchliteError as exc:
            if record.der is not None:
                self.owner.certificate_received(record.der)
            _abort(channel)
            return exc, False
        connection = BlipConnection(
            channel,
            name=self.name,
            max_message_size=self.config.max_message_size,
            max_attachment_size=self.config.max_attachment_size,
        )
        connection.start()
        try:
            if record.der is not None:
                self.owner.certificate_received(record.der)
            self.owner.connected()
            session = self.session = self._make_session(connection)
            await session.run()
            if self.config.continuous:
                # The session only returns when the connection ended under it: the peer closed
                # "normally" while we still wanted to talk (LiteCore reports 1001, notes §3.6).
                error = connection.close_error or ChannelClosed(
                    CLOSE_GOING_AWAY, "connection closed by peer"
                )
                return error, True
            return None, True
        except CouchliteError as exc:
            return exc, True
        except OSError as exc:  # a socket failure that escaped the transport: classify it
            return classify(exc, self.config.endpoint.url), True
        except Exception as exc:  # an engine bug must stop the replicator, not vanish
            logger.exception("%s: replication session failed", self.name)
            return CouchliteError(f"unexpected error in the replication session: {exc}"), True
        finally:
            self.session = None
            await self._close(connection, channel)

    async def _connect(
        self, record: PeerCertificate, expected: ExpectedCertificate
    ) -> MessageChannel:
        config = self.config
        headers: list[tuple[str, str]] = []
        authenticator = config.authenticator
        client_identity = None
        if isinstance(authenticator, BasicAuthenticator):
            headers.append(("Authorization", authenticator.authorization_header()))
        elif isinstance(authenticator, ClientCertificateAuthenticator):
            client_identity = authenticator.identity
        headers.extend(config.headers)
        context = cross_origin_context = None
        if config.endpoint.is_tls:
            context = client_context(
                record,
                pinned_der=config.pinned_server_certificate,
                only_self_signed=config.accept_only_self_signed_server_certificate,
                trusted_roots=config.trusted_root_certificates,
                client_identity=client_identity,
                expected=expected.fingerprints,
                trust_any=trusts_any(config, expected),
            )
            cross_origin_context = context
            if config.allow_cross_origin_redirects and client_identity is not None:
                # Our certificate identifies us to the configured peer only.
                cross_origin_context = client_context(
                    record,
                    pinned_der=config.pinned_server_certificate,
                    only_self_signed=config.accept_only_self_signed_server_certificate,
                    trusted_roots=config.trusted_root_certificates,
                    expected=expected.fingerprints,
                    trust_any=trusts_any(config, expected),
                )
        connect = self._connector if self._connector is not None else default_connector()
        url = config.endpoint.blipsync_url
        logger.debug("%s: connecting to %s", self.name, url)  # never the headers: credentials
        try:
            channel = await connect(
                url,
                subprotocols=DEFAULT_SUBPROTOCOLS,
                headers=headers,
                ssl=context,
                user_agent=config.user_agent or _user_agent(),
                ping_interval=config.heartbeat,
                ping_timeout=pong_timeout(config.heartbeat),
                allow_cross_origin_redirects=config.allow_cross_origin_redirects,
                cross_origin_ssl=cross_origin_context,
            )
        except TLSError as exc:
            raise mismatch_error(url, record, exc) from exc
        except AuthenticationError as exc:
            if client_identity is None:
                raise
            # A listener judging certificates by callback refuses after the TLS handshake,
            # with 401 (couchlite.listener.certauth): to us, our certificate was rejected.
            raise TLSError(
                f"{url}: the client certificate was rejected by the peer",
                code=NetworkCode.TLS_CERT_REJECTED_BY_PEER,
            ) from exc
        logger.info("%s: connected to %s (%s)", self.name, url, channel.subprotocol)
        return channel

    def _make_session(self, connection: BlipConnection) -> Session:
        config = self.config
        store = (
            self._database_store
            if self._database_store is not None
            else default_database_store(config)
        )
        factory = (
            self._session_factory
            if self._session_factory is not None
            else default_session_factory()
        )
        return factory(
            connection,
            store,
            session_collections(config, store),
            replicator_type=config.replicator_type,
            continuous=config.continuous,
            remote_url=config.endpoint.url,
            reset=self.reset,
            enable_auto_purge=config.enable_auto_purge,
            events=self.owner,
            enable_delta_sync=config.enable_delta_sync,
        )

    async def _close(self, connection: BlipConnection, channel: MessageChannel) -> None:
        # Runs in `finally`, possibly while a stop cancels us: shield the close so the peer gets
        # its 1000 even then, but never wait longer than the bound -- a short one when stopping
        # (the task is being cancelled) -- and then abort the TCP connection, which ends the
        # close at once however the peer behaves.
        close = asyncio.ensure_future(connection.close(CLOSE_NORMAL))
        close.add_done_callback(_consume)
        task = asyncio.current_task()
        stopping = task is not None and task.cancelling() > 0
        bound = STOP_GRACE_S if stopping else REPLICATOR_CLOSE_TIMEOUT_S
        try:
            async with asyncio.timeout(bound):
                await asyncio.shield(close)
            return
        except TimeoutError:
            if not stopping:
                logger.warning("%s: the connection did not close in time; aborting it", self.name)
        except asyncio.CancelledError:
            # A (second) stop during the close: abort, and keep the cancellation.
            _abort(channel)
            raise
        except CouchliteError:
            return  # the session already reported why the connection ended
        _abort(channel)
        try:
            async with asyncio.timeout(REPLICATOR_ABORT_WAIT_S):
                await asyncio.shield(close)
        except (TimeoutError, CouchliteError):
            pass


def _abort(channel: MessageChannel) -> None:
    """Drop the channel's TCP connection, if it is a kind that has one."""
    abort = getattr(channel, "abort", None)
    if callable(abort):
        abort()


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.debug("connection close failed: %s", future.exception())


# --- adapting the user's functions to the engine ------------------------------------------


def session_collections(
    config: ValidatedConfiguration,
    store: DatabaseStore,
    only: ValidatedCollection | None = None,
) -> list[SessionCollectionOptions]:
    """The engine's view of the configured collections (or of ``only``), functions wrapped."""
    options = []
    for entry in config.collections if only is None else (only,):
        collection_store = store.collection(entry.scope_name, entry.name)
        if collection_store is None:
            raise InvalidArgumentError(f"collection {entry.collection.full_name} no longer exists")
        options.append(
            SessionCollectionOptions(
                store=collection_store,
                document_ids=entry.document_ids,
                push_filter=None
                if entry.push_filter is None
                else collection_store.revision_filter(entry.push_filter, "push"),
                pull_filter=None
                if entry.pull_filter is None
                else collection_store.revision_filter(entry.pull_filter, "pull"),
                conflict_resolver=None
                if entry.conflict_resolver is None
                else collection_store.revision_resolver(entry.conflict_resolver),
            )
        )
    return options


__all__ = [
    "AsyncioClock",
    "BackoffClock",
    "Connector",
    "Supervisor",
    "SupervisorOwner",
    "backoff_delay",
    "session_collections",
]
