"""The active peer's public API: ``AsyncReplicator`` (asyncio) and ``Replicator`` (sync façade).

Theory of operation
-------------------
An :class:`AsyncReplicator` is a small state machine around a
:class:`~couchlite.replicator.supervisor.Supervisor` task. All its state lives on one event loop
(the one ``start()`` ran on); the supervisor and the engine report to it through callbacks on
that loop -- to a private :class:`~couchlite.replicator._reports.Reports` object, so that they
are no part of the public class -- and it turns them into :class:`ReplicatorStatus` values::

    STOPPED --start--> CONNECTING --open--> BUSY <--> IDLE (continuous only)
                          ^   |                |
                          |   +-- transient error --> OFFLINE --backoff--+
                          +--------------------------------------------- +
    any --stop / done / permanent error--> STOPPED (with the error, if any)

A one-shot replicator stays BUSY until it stops: as in Couchbase Lite, IDLE is what a continuous
replicator reports once it has caught up.

Every status change is delivered to the change listeners, to each :meth:`changes` iterator, and
resolves the pending :meth:`wait_for` calls whose level it reaches -- synchronously, on the
transition itself, so that no brief state can be missed. Listener callbacks are dispatched, not
called in place, so a listener may call ``stop()``: on the loop for :class:`AsyncReplicator`,
on the notifier thread (``couchlite._runtime.notify``) for :class:`Replicator`.

:class:`Replicator` runs an :class:`AsyncReplicator` on the library's event-loop thread
(``couchlite._runtime.loop_thread()``): ``start()`` returns at once, ``stop()`` waits (bounded)
for STOPPED, ``wait_for`` blocks the calling thread.

A running replicator is kept alive by a module-level set, so dropping the last reference to a
running replicator does not garbage-collect its task (asyncio only holds tasks weakly).

Database close: a run registers with its database (``Database._add_dependent``) and
unregisters at STOPPED; ``Database.close()`` first stops it, as Couchbase Lite does (from the
replicator's own loop, where waiting would deadlock, it only starts the stop). If the database
closes under a run anyway, the ``DatabaseClosedError`` ends it, STOPPED with that error: it is
never retried, since nothing can be stored any more.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography import x509

from couchlite import _runtime
from couchlite._lifecycle import AsyncStartsOnEnter, StartsOnEnter
from couchlite._tuning import REPLICATOR_STOP_TIMEOUT_S, REPLICATOR_WAIT_S
from couchlite.errors import (
    CouchliteError,
    DatabaseClosedError,
    InvalidArgumentError,
    LiteCoreCode,
)
from couchlite.replicator._reports import Reports
from couchlite.replicator.active import ActiveSession
from couchlite.replicator.config import ReplicatorConfiguration, ValidatedConfiguration
from couchlite.replicator.pending import LivePushState, pending_document_ids
from couchlite.replicator.supervisor import (
    BackoffClock,
    Connector,
    SessionFactory,
    Supervisor,
    default_database_store,
    session_collections,
)
from couchlite.replicator.tokens import ReplicatorListenerToken, call_logged
from couchlite.replicator.types import (
    DocumentReplication,
    ReplicatorActivityLevel,
    ReplicatorChange,
    ReplicatorProgress,
    ReplicatorStatus,
)

if TYPE_CHECKING:
    from couchlite.database.collection import Collection
    from couchlite.replicator.store import DatabaseStore

logger = logging.getLogger(__name__)

Level = ReplicatorActivityLevel
Dispatch = Callable[..., None]
T = TypeVar("T")
E = TypeVar("E", ReplicatorChange, DocumentReplication)


_replicator_ids = itertools.count(1)
#: Running replicators: strong references while their task runs (see the module docstring).
_RUNNING: set[AsyncReplicator] = set()


class AsyncReplicator(AsyncStartsOnEnter):
    """Replicates the configured collections with a remote database, on the running loop.

    ``AsyncReplicator(config)`` copies and validates ``config`` (``ConfigurationError``).
    ``clock``: what backoff waits use (tests pass a fake one). ``async with`` starts it and
    stops it at the end of the block. A running replicator is stopped when its database is
    closed.
    """

    def __init__(
        self,
        config: ReplicatorConfiguration,
        *,
        clock: BackoffClock | None = None,
        _owner: Replicator | None = None,
        _dispatch: Dispatch | None = None,
        _connector: Connector | None = None,
        _session_factory: SessionFactory | None = None,
    ) -> None:
        if not isinstance(config, ReplicatorConfiguration):
            raise InvalidArgumentError(
                f"expected a ReplicatorConfiguration, not {type(config).__name__}"
            )
        self._config: ValidatedConfiguration = config._validated()
        self._public_config = config
        self._clock = clock
        self._owner: Replicator | AsyncReplicator = _owner if _owner is not None else self
        self._dispatch = _dispatch
        self._connector = _connector
        self._session_factory = _session_factory
        self._name = f"repl-{next(_replicator_ids)}"
        self._status = ReplicatorStatus()
        self._server_certificate: bytes | None = None
        self._task: asyncio.Task[None] | None = None
        self._supervisor: Supervisor | None = None
        self._reports = Reports(self)
        self._started = False
        self._stopping = False
        self._document_count = 0
        self._change_listeners: list[ReplicatorListenerToken] = []
        self._document_listeners: list[ReplicatorListenerToken] = []
        self._waiters: list[tuple[Level, asyncio.Future[ReplicatorStatus]]] = []
        self._streams: list[asyncio.Queue[ReplicatorChange]] = []
        self._store: DatabaseStore | None = None

    # --- configuration & state ----------------------------------------------------------------

    @property
    def name(self) -> str:
        """This replicator's name, ``repl-<n>`` (unique in the process; read-only).

        It starts the messages of its errors (``wait_for`` timeouts), its log lines and the
        name of its task."""
        return self._name

    @property
    def config(self) -> ReplicatorConfiguration:
        """The configuration given at construction (edits to it do not affect this replicator)."""
        return self._public_config

    @property
    def status(self) -> ReplicatorStatus:
        """The current status: activity level, progress, last error."""
        return self._status

    @property
    def server_certificate(self) -> x509.Certificate | None:
        """The server's leaf certificate from the latest TLS handshake, else ``None``.

        Also set when the certificate was refused (pinned or self-signed-only checks), so that
        it can be inspected."""
        der = self._server_certificate
        return x509.load_der_x509_certificate(der) if der is not None else None

    @property
    def connection_attempts(self) -> int:
        """Connection attempts of the current (or last) run."""
        return self._supervisor.attempts if self._supervisor is not None else 0

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, reset: bool = False) -> None:
        """Start replicating (no-op if running). ``reset``: ignore the checkpoints, start over.

        Raises ``DatabaseClosedError`` if the database is closed (or closing)."""
        if self._task is not None and not self._task.done():
            if not self._stopping:
                logger.debug("%s: start() while running: ignored", self.name)
                return
            await self._wait_task(REPLICATOR_STOP_TIMEOUT_S)
        database = self._config.database
        if database.is_closed:
            raise DatabaseClosedError(
                "the database of the replicator is closed", code=LiteCoreCode.NOT_OPEN
            )
        # Registered first: a database that is closing refuses it (DatabaseClosedError), and a
        # close from now on stops this run before the database goes.
        database._add_dependent(self)
        self._started = True
        self._stopping = False
        self._server_certificate = None
        self._document_count = 0
        self._supervisor = Supervisor(
            self._config,
            self._reports,
            reset=reset,
            clock=self._clock,
            connector=self._connector,
            session_factory=self._session_factory,
            name=self.name,
        )
        self._set_status(Level.CONNECTING, ReplicatorProgress(), None)
        self._task = asyncio.get_running_loop().create_task(self._main(), name=self.name)
        _RUNNING.add(self)

    async def stop(self) -> None:
        """Stop, whatever it is doing (connecting, replicating, waiting to retry); waits
        (bounded) until the status is STOPPED."""
        task = self._task
        if task is None or task.done():
            return
        self._stopping = True
        task.cancel()
        await self._wait_task(REPLICATOR_STOP_TIMEOUT_S)

    async def _wait_task(self, timeout: float) -> None:
        task = self._task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            logger.warning("%s: did not stop within %.0f s", self.name, timeout)

    def _stop_for_database_close(self) -> None:
        """Stop because the database is closing (``Database.close()``, from any thread).

        On this replicator's loop, where waiting would deadlock, the stop is started and this
        returns at once; from another thread it waits (bounded) for STOPPED."""
        task = self._task
        if task is None or task.done():
            return

        def begin_stop() -> None:
            self._stopping = True
            task.cancel()

        if not _runtime.stop_from_any_thread(
            task.get_loop(), begin_stop, self.stop, REPLICATOR_STOP_TIMEOUT_S + 5
        ):
            logger.warning("%s: did not stop before its database closed", self.name)

    async def _main(self) -> None:
        assert self._supervisor is not None
        error: CouchliteError | None = None
        try:
            error = await self._supervisor.run()
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Our own stop(): an ordinary end, not a cancellation of whoever awaits the task.
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
        except DatabaseClosedError as exc:
            error = exc  # closed under us: stopped with it, never retried
        except Exception as exc:
            logger.exception("%s: supervisor failed", self.name)
            error = CouchliteError(f"unexpected replicator failure: {exc}")
        finally:
            _RUNNING.discard(self)
            if self._task is asyncio.current_task():  # not a later run's registration
                self._config.database._remove_dependent(self)
            self._set_status(Level.STOPPED, None, error)

    # --- waiting and listening --------------------------------------------------------------------

    async def wait_for(
        self, level: Level, timeout: float | None = REPLICATOR_WAIT_S
    ) -> ReplicatorStatus:
        """Wait until the status reaches ``level``; returns that status.

        Returns at once if the status is already at ``level``. If the replicator stops while
        waiting for another level, raises the error it stopped with, or returns the STOPPED
        status when there was none (also when it had stopped before the call). Raises
        ``TimeoutError`` after ``timeout`` seconds, and ``InvalidArgumentError`` for a
        replicator that was never started (nothing would ever change its status).
        """
        if not isinstance(level, ReplicatorActivityLevel):
            raise InvalidArgumentError(f"expected a ReplicatorActivityLevel, not {level!r}")
        if not self._started:
            raise InvalidArgumentError(
                f"{self.name}: wait_for({level.name}) on a replicator that was never started: "
                "call start() first"
            )
        if self._status.activity is level:
            return self._status
        if self._status.activity is Level.STOPPED:
            return self._stopped_answer(self._status)
        future: asyncio.Future[ReplicatorStatus] = asyncio.get_running_loop().create_future()
        entry = (level, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise TimeoutError(
                f"{self.name}: still {self._status.activity.name} after {timeout} s, "
                f"not {level.name}"
            ) from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    @staticmethod
    def _stopped_answer(status: ReplicatorStatus) -> ReplicatorStatus:
        if status.error is not None:
            raise status.error
        return status

    def add_change_listener(
        self, fn: Callable[[ReplicatorChange], None]
    ) -> ReplicatorListenerToken:
        """Call ``fn(ReplicatorChange)`` on every status change (dispatched on the loop)."""
        token = ReplicatorListenerToken(self._change_listeners, fn)
        self._change_listeners.append(token)
        return token

    def add_document_replication_listener(
        self, fn: Callable[[DocumentReplication], None]
    ) -> ReplicatorListenerToken:
        """Call ``fn(DocumentReplication)`` for each batch of documents pushed or pulled."""
        token = ReplicatorListenerToken(self._document_listeners, fn)
        self._document_listeners.append(token)
        return token

    async def changes(self) -> AsyncIterator[ReplicatorChange]:
        """Status changes from now on, up to and including the next STOPPED one.

        If the replicator is already stopped, yields its current status and ends.
        """
        if self._status.activity is Level.STOPPED and (self._task is None or self._task.done()):
            yield ReplicatorChange(self._owner, self._status)
            return
        queue: asyncio.Queue[ReplicatorChange] = asyncio.Queue()
        self._streams.append(queue)
        try:
            while True:
                change = await queue.get()
                yield change
                if change.status.activity is Level.STOPPED:
                    return
        finally:
            if queue in self._streams:
                self._streams.remove(queue)

    # --- pending documents ----------------------------------------------------------------------

    def pending_document_ids(self, collection: Collection) -> set[str]:
        """IDs of the documents of ``collection`` with changes the peer does not have yet.

        Right at every moment, as Couchbase Lite's: the changes after the push checkpoint --
        while a session runs, the checkpoint it has reached, not only the one saved -- that
        pass the document-ID list and the push filter, leaving out every document whose
        current revision is the one the peer is known to have (pulled from it, or pushed).
        That is the pusher's own rule, so the answer is what a push would send. Call it on
        the replicator's event loop. Raises ``ConfigurationError`` for a pull-only
        replicator, ``InvalidArgumentError`` for a collection that is not replicated.
        """
        config = self._config
        entry = config.collection_for(collection)
        if entry is None:
            raise InvalidArgumentError(f"collection {collection.full_name} is not replicated")
        if self._store is None:
            self._store = default_database_store(config)
        options = session_collections(config, self._store, only=entry)[0]
        return pending_document_ids(
            self._store,
            options,
            config.endpoint.url,
            config.replicator_type,
            self._live_push_state(entry.scope_name, entry.name),
        )

    def is_document_pending(self, doc_id: str, collection: Collection) -> bool:
        """Whether ``doc_id`` of ``collection`` has changes the peer does not have yet (see
        :meth:`pending_document_ids`)."""
        return doc_id in self.pending_document_ids(collection)

    def _live_push_state(self, scope: str, name: str) -> LivePushState | None:
        task, supervisor = self._task, self._supervisor
        if task is None or task.done() or supervisor is None:
            return None
        session = supervisor.session
        if not isinstance(session, ActiveSession):
            return None
        try:
            on_loop = asyncio.get_running_loop() is task.get_loop()
        except RuntimeError:
            on_loop = False
        if not on_loop:
            # The session's state belongs to its loop: reading it from here would race it.
            raise CouchliteError(
                f"{self.name}: pending_document_ids() of a running AsyncReplicator must be "
                "called on its event loop"
            )
        return session.live_push_state(scope, name)

    # --- internals ----------------------------------------------------------------------------

    def _set_status(
        self,
        activity: Level,
        progress: ReplicatorProgress | None,
        error: CouchliteError | None,
        retry_in: float | None = None,
        next_attempt_at: float | None = None,
    ) -> None:
        old = self._status
        status = ReplicatorStatus(
            activity,
            progress if progress is not None else old.progress,
            error,
            retry_in if activity is Level.OFFLINE else None,
            next_attempt_at if activity is Level.OFFLINE else None,
        )
        if status == old:
            return
        self._status = status
        if activity is not old.activity:
            logger.debug("%s: %s -> %s", self.name, old.activity.name, activity.name)
        change = ReplicatorChange(self._owner, status)
        for queue in self._streams:
            queue.put_nowait(change)
        for token in list(self._change_listeners):
            self._deliver(token._fn, change)
        for waiter in list(self._waiters):
            level, future = waiter
            if future.done():
                continue
            if activity is level:
                future.set_result(status)
            elif activity is Level.STOPPED:
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(status)

    def _deliver(self, fn: Callable[[E], None], arg: E) -> None:
        if self._dispatch is not None:
            self._dispatch(fn, arg)
        else:
            asyncio.get_running_loop().call_soon(call_logged, fn, arg)

    def __repr__(self) -> str:
        url, activity = self._config.endpoint.url, self._status.activity.name
        return f"<{type(self).__name__} {self.name} {url} {activity}>"


class Replicator(StartsOnEnter):
    """The synchronous replicator: the work runs on the library's event-loop thread, listener
    callbacks on its notifier thread. ``Replicator(config)`` validates a copy of ``config``;
    ``clock``: what backoff waits use. ``with Replicator(config) as r:`` starts it and stops it
    at the end of the block. A running replicator is stopped when its database is closed."""

    def __init__(
        self,
        config: ReplicatorConfiguration,
        *,
        clock: BackoffClock | None = None,
        _connector: Connector | None = None,
        _session_factory: SessionFactory | None = None,
    ) -> None:
        self._async = AsyncReplicator(
            config,
            clock=clock,
            _owner=self,
            _dispatch=_runtime.notify,
            _connector=_connector,
            _session_factory=_session_factory,
        )
        self._thread = _runtime.loop_thread()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        if self._thread.in_loop_thread():
            # From a filter or another loop callback: blocking here would deadlock the loop.
            coro.close()
            raise CouchliteError("this Replicator method cannot be called on its event loop")
        return self._thread.run(coro, timeout)

    @property
    def name(self) -> str:
        """This replicator's name, ``repl-<n>``: that of the ``AsyncReplicator`` it runs, which
        its ``wait_for`` messages and log lines use (read-only)."""
        return self._async.name

    @property
    def config(self) -> ReplicatorConfiguration:
        """The configuration given at construction (edits to it do not affect this replicator)."""
        return self._async.config

    @property
    def status(self) -> ReplicatorStatus:
        """The current status: activity level, progress, last error."""
        return self._async.status

    @property
    def server_certificate(self) -> x509.Certificate | None:
        """The server's leaf certificate from the latest TLS handshake, else ``None``.

        Also set when the certificate was refused (pinned or self-signed-only checks), so that
        it can be inspected."""
        return self._async.server_certificate

    @property
    def connection_attempts(self) -> int:
        """Connection attempts of the current (or last) run."""
        return self._async.connection_attempts

    def start(self, reset: bool = False) -> None:
        """Start replicating; returns at once (watch ``status`` or a change listener)."""
        self._run(self._async.start(reset), REPLICATOR_STOP_TIMEOUT_S + 5)

    def stop(self) -> None:
        """Stop; returns once the status is STOPPED (bounded)."""
        if self._thread.in_loop_thread():
            self._thread.loop.create_task(self._async.stop())
            return
        self._run(self._async.stop(), REPLICATOR_STOP_TIMEOUT_S + 5)

    def _stop_for_database_close(self) -> None:
        """See ``AsyncReplicator._stop_for_database_close`` (the one registered)."""
        self._async._stop_for_database_close()

    def wait_for(self, level: Level, timeout: float | None = REPLICATOR_WAIT_S) -> ReplicatorStatus:
        """Block until the status reaches ``level`` (see ``AsyncReplicator.wait_for``)."""
        bound = None if timeout is None else timeout + 5
        return self._run(self._async.wait_for(level, timeout), bound)

    def add_change_listener(
        self, fn: Callable[[ReplicatorChange], None]
    ) -> ReplicatorListenerToken:
        """Call ``fn(ReplicatorChange)`` on the notifier thread on every status change."""
        return self._async.add_change_listener(fn)

    def add_document_replication_listener(
        self, fn: Callable[[DocumentReplication], None]
    ) -> ReplicatorListenerToken:
        """Call ``fn(DocumentReplication)`` on the notifier thread for each batch of documents."""
        return self._async.add_document_replication_listener(fn)

    def pending_document_ids(self, collection: Collection) -> set[str]:
        """See ``AsyncReplicator.pending_document_ids``; computed on the replicator's event
        loop, which owns the running session's state (any thread may call this)."""
        if self._thread.in_loop_thread():
            return self._async.pending_document_ids(collection)

        async def compute() -> set[str]:
            return self._async.pending_document_ids(collection)

        return self._thread.run(compute(), REPLICATOR_WAIT_S)

    def is_document_pending(self, doc_id: str, collection: Collection) -> bool:
        """Whether ``doc_id`` of ``collection`` has changes the peer does not have yet."""
        return doc_id in self.pending_document_ids(collection)

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncReplicator", "Replicator", 1)


__all__ = ["AsyncReplicator", "Replicator", "ReplicatorListenerToken"]
