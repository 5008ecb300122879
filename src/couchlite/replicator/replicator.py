"""The active peer's public API: ``AsyncReplicator`` (asyncio) and ``Replicator`` (sync façade).

Theory of operation
-------------------
An :class:`AsyncReplicator` is a small state machine around a
:class:`~couchlite.replicator.supervisor.Supervisor` task. All its state lives on one event loop
(the one ``start()`` ran on); the supervisor and the engine report to it through callbacks on
that loop, and it turns them into :class:`ReplicatorStatus` values::

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
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cryptography import x509

from couchlite import _runtime
from couchlite.errors import CouchliteError, InvalidArgumentError, LiteCoreCode
from couchlite.replicator.active import pending_document_ids_sync
from couchlite.replicator.config import ReplicatorConfiguration, ValidatedConfiguration
from couchlite.replicator.supervisor import (
    BackoffClock,
    Connector,
    SessionFactory,
    Supervisor,
    default_database_store,
    session_collections,
)
from couchlite.replicator.types import (
    DocumentReplication,
    ReplicatedDocument,
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

#: Default bound of ``wait_for`` (api.md).
DEFAULT_WAIT_S = 30.0
#: Bound of ``stop()``: the connection's close is itself bounded well below this.
STOP_TIMEOUT_S = 20.0

_replicator_ids = itertools.count(1)
#: Running replicators: strong references while their task runs (see the module docstring).
_RUNNING: set[AsyncReplicator] = set()


class ReplicatorListenerToken:
    """Returned by ``add_*_listener``; ``remove()`` stops the deliveries (idempotent)."""

    __slots__ = ("_listeners", "fn")

    def __init__(self, listeners: list[ReplicatorListenerToken], fn: Callable[[Any], None]):
        self._listeners = listeners
        self.fn = fn

    def remove(self) -> None:
        if self in self._listeners:
            self._listeners.remove(self)


class AsyncReplicator:
    """Replicates the configured collections with a remote database, on the running loop.

    ``AsyncReplicator(config)`` copies and validates ``config`` (``ConfigurationError``).
    ``clock``: what backoff waits use (tests pass a fake one).
    """

    def __init__(
        self,
        config: ReplicatorConfiguration,
        *,
        clock: BackoffClock | None = None,
        _owner: Any = None,
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
        self._owner = _owner if _owner is not None else self
        self._dispatch = _dispatch
        self._connector = _connector
        self._session_factory = _session_factory
        self.name = f"repl-{next(_replicator_ids)}"
        self._status = ReplicatorStatus()
        self._server_certificate: bytes | None = None
        self._task: asyncio.Task[None] | None = None
        self._supervisor: Supervisor | None = None
        self._stopping = False
        self._change_listeners: list[ReplicatorListenerToken] = []
        self._document_listeners: list[ReplicatorListenerToken] = []
        self._waiters: list[tuple[Level, asyncio.Future[ReplicatorStatus]]] = []
        self._streams: list[asyncio.Queue[ReplicatorChange]] = []
        self._store: DatabaseStore | None = None

    # --- configuration & state ----------------------------------------------------------------

    @property
    def config(self) -> ReplicatorConfiguration:
        """The configuration given at construction (edits to it do not affect this replicator)."""
        return self._public_config

    @property
    def status(self) -> ReplicatorStatus:
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
        """Start replicating (no-op if running). ``reset``: ignore the checkpoints, start over."""
        if self._task is not None and not self._task.done():
            if not self._stopping:
                logger.debug("%s: start() while running: ignored", self.name)
                return
            await self._wait_task(STOP_TIMEOUT_S)
        if self._config.database.is_closed:
            raise CouchliteError(
                "the database of the replicator is closed", code=LiteCoreCode.NOT_OPEN
            )
        self._stopping = False
        self._server_certificate = None
        self._supervisor = Supervisor(
            self._config,
            self,
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
        await self._wait_task(STOP_TIMEOUT_S)

    async def _wait_task(self, timeout: float) -> None:
        task = self._task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            logger.warning("%s: did not stop within %.0f s", self.name, timeout)

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
        except Exception as exc:
            logger.exception("%s: supervisor failed", self.name)
            error = CouchliteError(f"unexpected replicator failure: {exc}")
        finally:
            _RUNNING.discard(self)
            self._set_status(Level.STOPPED, None, error)

    async def __aenter__(self) -> AsyncReplicator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- waiting and listening --------------------------------------------------------------------

    async def wait_for(
        self, level: Level, timeout: float | None = DEFAULT_WAIT_S
    ) -> ReplicatorStatus:
        """Wait until the status reaches ``level``; returns that status.

        Returns at once if the status is already at ``level``. If the replicator stops while
        waiting for another level, raises the error it stopped with, or returns the STOPPED
        status when there was none. Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        if not isinstance(level, ReplicatorActivityLevel):
            raise InvalidArgumentError(f"expected a ReplicatorActivityLevel, not {level!r}")
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
        """Call ``fn(ReplicatorChange)`` on every status change."""
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
        """IDs of the documents of ``collection`` with changes not pushed yet.

        Computed from the local checkpoint, as Couchbase Lite does: every change after its
        ``local`` sequence that passes the document-ID list and the push filter (the engine's
        own rule, so the answer matches what the next push sends). Raises
        ``ConfigurationError`` for a pull-only replicator, ``InvalidArgumentError`` for a
        collection that is not replicated.
        """
        config = self._config
        entry = config.collection_for(collection)
        if entry is None:
            raise InvalidArgumentError(f"collection {collection.full_name} is not replicated")
        if self._store is None:
            self._store = default_database_store(config)
        options = session_collections(config, self._store, only=entry)[0]
        return pending_document_ids_sync(
            self._store, options, config.endpoint.url, config.replicator_type
        )

    def is_document_pending(self, doc_id: str, collection: Collection) -> bool:
        """Whether ``doc_id`` of ``collection`` has changes not pushed yet."""
        return doc_id in self.pending_document_ids(collection)

    # --- reports from the supervisor and the session (on the loop) -------------------------

    def connecting(self) -> None:
        self._set_status(Level.CONNECTING, None, None)

    def certificate_received(self, der: bytes) -> None:
        self._server_certificate = der

    def connected(self) -> None:
        self._set_status(Level.BUSY, None, None)

    def offline(
        self,
        error: CouchliteError,
        retry_in: float | None = None,
        next_attempt_at: float | None = None,
    ) -> None:
        self._set_status(Level.OFFLINE, None, error, retry_in, next_attempt_at)

    def activity_changed(self, busy: bool) -> None:
        if self._status.activity not in (Level.BUSY, Level.IDLE) or self._stopping:
            return
        if not busy and not self._config.continuous:
            return  # a one-shot replicator is BUSY until it stops (see the module docstring)
        self._set_status(Level.BUSY if busy else Level.IDLE, None, self._status.error)

    def progress(self, completed: int, total: int) -> None:
        if self._status.activity is Level.STOPPED:
            return
        progress = ReplicatorProgress(completed, max(total, completed))
        self._set_status(self._status.activity, progress, self._status.error)

    def documents_replicated(self, is_push: bool, documents: list[ReplicatedDocument]) -> None:
        if not documents or not self._document_listeners:
            return
        event = DocumentReplication(self._owner, is_push, list(documents))
        for token in list(self._document_listeners):
            self._deliver(token.fn, event)

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
            self._deliver(token.fn, change)
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

    def _deliver(self, fn: Callable[[Any], None], arg: Any) -> None:
        if self._dispatch is not None:
            self._dispatch(fn, arg)
        else:
            asyncio.get_running_loop().call_soon(_call_logged, fn, arg)

    def __repr__(self) -> str:
        url, activity = self._config.endpoint.url, self._status.activity.name
        return f"<{type(self).__name__} {self.name} {url} {activity}>"


def _call_logged(fn: Callable[[Any], None], arg: Any) -> None:
    try:
        fn(arg)
    except Exception:
        logger.exception("a replicator listener raised")


class Replicator:
    """The synchronous replicator: the work runs on the library's event-loop thread, listener
    callbacks on its notifier thread. ``Replicator(config)`` validates a copy of ``config``."""

    def __init__(
        self, config: ReplicatorConfiguration, *, clock: BackoffClock | None = None, **hooks: Any
    ) -> None:
        self._async = AsyncReplicator(
            config, clock=clock, _owner=self, _dispatch=_runtime.notify, **hooks
        )
        self._thread = _runtime.loop_thread()

    def _run(self, coro: Any, timeout: float | None) -> Any:
        if self._thread.in_loop_thread():
            # From a filter or another loop callback: blocking here would deadlock the loop.
            coro.close()
            raise CouchliteError("this Replicator method cannot be called on its event loop")
        return self._thread.run(coro, timeout)

    @property
    def config(self) -> ReplicatorConfiguration:
        return self._async.config

    @property
    def status(self) -> ReplicatorStatus:
        return self._async.status

    @property
    def server_certificate(self) -> x509.Certificate | None:
        return self._async.server_certificate

    @property
    def connection_attempts(self) -> int:
        return self._async.connection_attempts

    def start(self, reset: bool = False) -> None:
        """Start replicating; returns at once (watch ``status`` or a change listener)."""
        self._run(self._async.start(reset), STOP_TIMEOUT_S + 5)

    def stop(self) -> None:
        """Stop; returns once the status is STOPPED (bounded)."""
        if self._thread.in_loop_thread():
            self._thread.loop.create_task(self._async.stop())
            return
        self._run(self._async.stop(), STOP_TIMEOUT_S + 5)

    def wait_for(self, level: Level, timeout: float | None = DEFAULT_WAIT_S) -> ReplicatorStatus:
        """Block until the status reaches ``level`` (see ``AsyncReplicator.wait_for``)."""
        bound = None if timeout is None else timeout + 5
        result: ReplicatorStatus = self._run(self._async.wait_for(level, timeout), bound)
        return result

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
        return self._async.pending_document_ids(collection)

    def is_document_pending(self, doc_id: str, collection: Collection) -> bool:
        return self._async.is_document_pending(doc_id, collection)

    def __enter__(self) -> Replicator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncReplicator", "Replicator", 1)


__all__ = ["AsyncReplicator", "Replicator", "ReplicatorListenerToken"]
