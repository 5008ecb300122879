"""The active session: one replication over one BlipConnection, as Couchbase Lite 3.2's
active replicator runs it (notes §4.1, §4.2, §9, §10; interop facts 3-8, 17).

Theory of operation
-------------------
1. **Mode** (notes §4.1): replicating only the default collection uses the legacy protocol --
   ``getCheckpoint`` first and no ``collection`` property anywhere, as the 3.2 recordings show;
   otherwise ``getCollections`` comes first (body ``{"checkpoint_ids", "collections"}``) and every
   collection-scoped message carries ``collection: "<index>"`` right after ``Profile``. A ``null``
   entry in the reply stops the session with WebSocket/404.
2. **Checkpoints** (:mod:`couchlite.replicator.checkpointer`): the peer's answer is reconciled with
   the local body to decide where each direction starts.
3. **Work**: per collection a :class:`~couchlite.replicator.puller.Puller` (``subChanges`` is sent
   first) and a :class:`~couchlite.replicator.pusher.Pusher` that proposes, all concurrent,
   sharing one rev semaphore and one ``remote_revs`` map per collection (what the peer is known
   to have; it stops pulled revisions from being pushed back and supplies ``serverRevID``).
4. **End**: one-shot -- when every pusher returned and every puller finished, the checkpoints
   are saved (``setCheckpoint``, then locally) and :meth:`ActiveSession.run` returns; the
   caller closes the connection with 1000. Continuous -- checkpoints are saved every
   ``CHECKPOINT_SAVE_INTERVAL_S`` and :meth:`run` lasts until the connection closes (raising
   its close error) or the task is cancelled.

Errors: fatal answers to session-level requests raise a typed :class:`CouchliteError` from
:meth:`run` (e.g. WebSocket/403 from a read-only peer, WebSocket/404 for an unknown collection);
per-document failures are only reported through ``documents_replicated``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Iterator
from typing import Any

from couchlite._tuning import CHECKPOINT_SAVE_INTERVAL_S, STOP_SAVE_TIMEOUT_S
from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import (
    ConfigurationError,
    CouchliteError,
    DatabaseClosedError,
    ErrorDomain,
    NotFoundError,
)
from couchlite.replicator.blob_fetcher import BlobFetcher
from couchlite.replicator.checkpointer import Checkpointer
from couchlite.replicator.collection_context import CollectionContext
from couchlite.replicator.error_mapping import error_reply_for, remote_error
from couchlite.replicator.options import SessionCollectionOptions, SessionEvents
from couchlite.replicator.pending import LivePushState
from couchlite.replicator.protocol.checkpoints import (
    CheckpointState,
    GetCollections,
    GetCollectionsReply,
    checkpoint_id,
)
from couchlite.replicator.protocol.wire import http_reply
from couchlite.replicator.puller import Puller
from couchlite.replicator.push_dialects import Proposing
from couchlite.replicator.pusher import Pusher
from couchlite.replicator.remote_revs import RemoteRevisions
from couchlite.replicator.reporter import Reporter
from couchlite.replicator.rev_sender import RevSender
from couchlite.replicator.store import DatabaseStore
from couchlite.replicator.store_worker import StoreWorker
from couchlite.replicator.types import ReplicatorType
from couchlite.transport.blip_connection import (
    BlipConnection,
    ConnectionClosedError,
    Deferred,
    Reply,
)

logger = logging.getLogger(__name__)


class _Unit:
    """One collection of the session with its workers."""

    def __init__(
        self,
        context: CollectionContext,
        options: SessionCollectionOptions,
        remote_url: str,
        calls: StoreWorker,
    ) -> None:
        self.context = context
        self.options = options
        self.checkpointer: Checkpointer | None = None
        self.pusher: Pusher | None = None
        self.puller: Puller | None = None
        self.remote_revs = RemoteRevisions(options.store, remote_url, calls)

    def state(self) -> CheckpointState:
        assert self.checkpointer is not None
        start = self.checkpointer.start
        return CheckpointState(
            self.pusher.checkpoint if self.pusher is not None else start.local,
            self.puller.checkpoint if self.puller is not None else start.remote,
        )


class ActiveSession:
    """Replicates ``collections`` with the peer at the other end of ``connection``."""

    def __init__(
        self,
        connection: BlipConnection,
        db: DatabaseStore,
        collections: list[SessionCollectionOptions],
        *,
        replicator_type: ReplicatorType,
        continuous: bool,
        remote_url: str,
        reset: bool = False,
        enable_auto_purge: bool = True,
        events: SessionEvents | None = None,
        enable_delta_sync: bool = False,
    ) -> None:
        if not collections:
            raise ConfigurationError("a replication needs at least one collection")
        self.connection = connection
        self.db = db
        self.replicator_type = replicator_type
        self.continuous = continuous
        self.remote_url = remote_url
        self.reset = reset
        self.enable_auto_purge = enable_auto_purge
        self.events = events
        self.legacy = len(collections) == 1 and _is_default(collections[0])
        #: every store call of the session runs here, off the event loop
        self.calls = StoreWorker(db.private_uuid)
        self._units = [
            _Unit(
                CollectionContext(i, opts.store, {} if self.legacy else {"collection": str(i)}),
                opts,
                remote_url,
                self.calls,
            )
            for i, opts in enumerate(collections)
        ]
        self.reporter: Reporter | None = None
        #: deltas both ways need the peer's consent too (notes §6.2): the puller announces
        #: ``deltas`` only with this, and the sender uses them only with this
        self.enable_delta_sync = enable_delta_sync
        self.sender = RevSender(connection, db, self.calls, deltas_enabled=enable_delta_sync)
        self.blobs = BlobFetcher(connection, db, self.calls)
        #: set with the error that must end the session, from outside its tasks
        self._fatal: asyncio.Future[None] | None = None

    # --- statistics (tests and benchmarks) ---------------------------------------------------

    @property
    def revs_sent(self) -> int:
        return sum(u.pusher.revs_sent for u in self._units if u.pusher is not None)

    @property
    def revs_received(self) -> int:
        return sum(u.puller.revs_received for u in self._units if u.puller is not None)

    # --- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        self.reporter = Reporter(self.events)
        self._fatal = asyncio.get_running_loop().create_future()
        self._register_handlers()
        try:
            async with asyncio.TaskGroup() as tasks:
                watcher = tasks.create_task(self._watch_connection(), name="session-watch")
                fatal = tasks.create_task(self._watch_fatal(), name="session-fatal")
                await self._work(tasks)
                watcher.cancel()
                fatal.cancel()
        except asyncio.CancelledError:
            await self._save_on_stop()
            raise
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        except BlipErrorReply as exc:
            raise remote_error(exc) from exc
        finally:
            for unit in self._units:
                if unit.puller is not None:
                    unit.puller.close()
            try:
                await self._save_remote_revs()
            finally:
                self.reporter.set_busy(self, False)
                self.reporter.close()

    async def _save_remote_revs(self) -> None:
        # However the session ends, what the peer was seen to have stays known (every entry is
        # true once made): the next session and pending_document_ids() rely on it.
        for unit in self._units:
            try:
                await unit.remote_revs.save()
            except CouchliteError as exc:  # the database closed under us, typically
                logger.debug("remote revisions not saved at the end: %s", exc)

    def live_push_state(self, scope: str, name: str) -> LivePushState | None:
        """The push state of collection ``scope.name`` while its pusher runs, else ``None``
        (for ``pending_document_ids``; on this session's loop only)."""
        for unit in self._units:
            store = unit.context.store
            if (store.scope_name, store.name) == (scope, name) and unit.pusher is not None:
                return LivePushState(unit.pusher.checkpoint, unit.remote_revs)
        return None

    async def _watch_fatal(self) -> None:
        # A handler (run by the connection, outside the session's tasks) found the session
        # cannot go on: end it with that error.
        assert self._fatal is not None
        await self._fatal

    def _fail(self, error: CouchliteError) -> None:
        if self._fatal is not None and not self._fatal.done():
            self._fatal.set_exception(error)

    def _register_handlers(self) -> None:
        conn = self.connection
        conn.register_handler("changes", self._on_changes)
        conn.register_sync_handler("rev", self._on_rev)
        conn.register_handler("norev", self._on_norev)
        conn.register_handler("getAttachment", self.sender.handle_get_attachment)

    async def _watch_connection(self) -> None:
        await self.connection.wait_closed()
        raise ConnectionClosedError(
            self.connection.close_code or 1001,
            self.connection.close_reason or "",
            message="the connection closed while replicating",
        )

    async def _work(self, tasks: asyncio.TaskGroup) -> None:
        assert self.reporter is not None
        self.reporter.set_busy(self, True)
        await self._start_checkpoints()
        pushes, pulls = self.replicator_type.pushes, self.replicator_type.pulls
        for unit in self._units:
            assert unit.checkpointer is not None
            start = unit.checkpointer.start
            if not unit.checkpointer.had_local or self.reset:
                unit.remote_revs.distrust_stored()
            if pulls:
                unit.puller = Puller(
                    self.connection,
                    unit.context,
                    unit.options,
                    self.calls,
                    since=start.remote,
                    had_checkpoint=unit.checkpointer.had_local and not self.reset,
                    continuous=self.continuous,
                    enable_auto_purge=self.enable_auto_purge,
                    reporter=self.reporter,
                    blobs=self.blobs,
                    remote_revs=unit.remote_revs,
                    accept_deltas=self.enable_delta_sync,
                )
            if pushes:
                unit.pusher = Pusher(
                    self.connection,
                    unit.context,
                    self.calls,
                    Proposing(unit.options, unit.remote_revs, unit.puller),
                    sender=self.sender,
                    reporter=self.reporter,
                    since=start.local,
                    continuous=self.continuous,
                )
        for unit in self._units:
            if unit.puller is not None:
                await unit.puller.start()
        for unit in self._units:
            if unit.pusher is not None:
                self.reporter.set_busy(unit.pusher, True)  # no idle flicker before it runs
        push_tasks = [
            tasks.create_task(unit.pusher.run(), name=f"pusher-{unit.context.index}")
            for unit in self._units
            if unit.pusher is not None
        ]
        self.reporter.set_busy(self, False)
        if self.continuous:
            tasks.create_task(self._save_periodically(), name="checkpoint-saver")
            await self._watch_connection()  # raises the close error
            return
        saver = tasks.create_task(self._save_periodically(), name="checkpoint-saver")
        for task in push_tasks:
            await task
        for unit in self._units:
            if unit.puller is not None:
                await _wait_event(unit.puller.finished, self.connection)
        saver.cancel()
        await self._save_all()

    async def _start_checkpoints(self) -> None:
        pushes, pulls = self.replicator_type.pushes, self.replicator_type.pulls
        for unit in self._units:
            store = unit.context.store
            cp_id = checkpoint_id(
                self.db.private_uuid,
                self.remote_url,
                store.scope_name,
                store.name,
                pull=pulls,
                push=pushes,
                document_ids=unit.options.document_ids,
            )
            unit.checkpointer = Checkpointer(
                self.connection, self.db, self.calls, unit.context, cp_id, reset=self.reset
            )
        if self.legacy:
            checkpointer = self._units[0].checkpointer
            assert checkpointer is not None
            body, rev = await checkpointer.fetch_remote()
            await checkpointer.begin(body, rev)
            return
        out = GetCollections(
            tuple(u.checkpointer.id for u in self._units if u.checkpointer),
            tuple(u.context.path for u in self._units),
        ).to_message()
        try:
            message = await self.connection.request(out.properties, out.body)
        except BlipErrorReply as exc:
            raise remote_error(exc, "getCollections refused") from exc
        reply = GetCollectionsReply.parse(message, len(self._units))
        for unit, entry in zip(self._units, reply.entries, strict=True):
            assert unit.checkpointer is not None
            if entry is None:
                raise NotFoundError(
                    f"Collection '{unit.context.path}' is not found on the remote server",
                    domain=ErrorDomain.WEBSOCKET,
                    code=404,
                )
            await unit.checkpointer.begin(entry.body or None, entry.rev)

    async def _save_on_stop(self) -> None:
        """A stop (cancellation) keeps the progress made: save what is done, best effort."""
        if any(u.checkpointer is None or u.checkpointer.saved is None for u in self._units):
            return  # stopped before the checkpoints were even read
        try:
            async with asyncio.timeout(STOP_SAVE_TIMEOUT_S):
                await self._save_all()
        except (CouchliteError, TimeoutError) as exc:
            logger.info("checkpoint not saved on stop: %s", exc)

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_SAVE_INTERVAL_S)
            await self._save_all()

    async def _save_all(self) -> None:
        for unit in self._units:
            # what the peer has goes to disk first: never behind a saved checkpoint
            await unit.remote_revs.save()
        for unit in self._units:
            assert unit.checkpointer is not None
            await unit.checkpointer.save(unit.state())

    # --- handlers (the peer's pusher talks to our pullers) -------------------------------------

    def _puller_for(self, message: Message) -> Puller:
        index_text = message.properties.get("collection")
        if self.legacy:
            if index_text is not None:
                raise http_reply(400, "inappropriate use of the collection property.")
            index = 0
        else:
            if index_text is None or not index_text.isdigit():
                raise http_reply(400, "inappropriate use of the collection property.")
            index = int(index_text)
            if index >= len(self._units):
                raise http_reply(400, "the collection property is out of range.")
        puller = self._units[index].puller
        if puller is None:
            raise http_reply(403, "Attempting to push to a pull-only replicator")
        return puller

    async def _on_changes(self, message: Message) -> Reply | None:
        try:
            return await self._puller_for(message).handle_changes(message)
        except DatabaseClosedError as exc:
            raise self._closed_under_us(exc) from exc

    def _on_rev(self, message: Message) -> Deferred | Coroutine[Any, Any, Reply | None]:
        try:
            result = self._puller_for(message).handle_rev(message)
        except DatabaseClosedError as exc:
            raise self._closed_under_us(exc) from exc
        if isinstance(result, Deferred):
            answer = Deferred()

            def settle(reply: Reply | None, error: Exception | None) -> None:
                if isinstance(error, DatabaseClosedError):
                    answer.fail(self._closed_under_us(error))
                elif error is not None:
                    answer.fail(error)
                else:
                    answer.resolve(reply)

            result.then(settle)
            return answer
        return self._closing_guard(result)

    async def _closing_guard(self, pending: Awaitable[Reply | None]) -> Reply | None:
        try:
            return await pending
        except DatabaseClosedError as exc:
            raise self._closed_under_us(exc) from exc

    async def _on_norev(self, message: Message) -> Reply | None:
        try:
            return await self._puller_for(message).handle_norev(message)
        except DatabaseClosedError as exc:
            raise self._closed_under_us(exc) from exc

    def _closed_under_us(self, error: DatabaseClosedError) -> BlipErrorReply:
        """The database closed while the session ran: nothing more can be stored, so the
        session ends with the error (not retried); the peer gets it as the answer."""
        self._fail(error)
        return error_reply_for(error)


def _is_default(options: SessionCollectionOptions) -> bool:
    return options.store.scope_name == "_default" and options.store.name == "_default"


async def _wait_event(event: asyncio.Event, connection: BlipConnection) -> None:
    # Bounded by the connection's life: the session watcher raises when it closes.
    while not event.is_set():
        try:
            async with asyncio.timeout(CHECKPOINT_SAVE_INTERVAL_S):
                await event.wait()
        except TimeoutError:
            if connection.is_closed:
                return


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The exception to raise from :meth:`ActiveSession.run` for a failed task group."""
    found: list[BaseException] = list(_leaves(group))
    for exc in found:
        if isinstance(exc, CouchliteError) and not isinstance(exc, ConnectionClosedError):
            return exc
    for exc in found:
        if isinstance(exc, CouchliteError):
            return exc
    for exc in found:
        if not isinstance(exc, asyncio.CancelledError):
            error = CouchliteError(f"replication failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            return error
    return found[0] if found else CouchliteError("replication failed")


def _leaves(group: BaseExceptionGroup[Any]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        elif isinstance(exc, BlipErrorReply):
            yield remote_error(exc)
        else:
            yield exc


__all__ = ["ActiveSession"]
