"""One pusher for both sides of a push (notes §4.5-§4.8, §8, §10; interop facts 5-8, 15).

Theory of operation
-------------------
Pushing is one job whichever peer started the replication: read the collection's changes feed
after a sequence in batches of ``CHANGES_BATCH_SIZE``, drop the changes that must not go, announce
the rest in a list the peer answers entry by entry, send each revision it wants as a pipelined
``rev``, and end -- or wait for new changes -- once the feed is exhausted. The :class:`Pusher`
does that job. What differs between the sides is a :class:`PushDialect`
(:mod:`couchlite.replicator.push_dialects`): an active replicator *proposes* (``proposeChanges``,
answered with statuses, conflicts found by the peer), a passive peer answering ``subChanges``
*announces* (``changes``, answered with the revisions the peer already has). The dialect decides
which changes go, writes the list, reads what each answer means, and says when the push is over.

Bounds: up to ``MAX_CHANGE_LISTS_IN_FLIGHT`` lists await answers, and a list's slot is held
until every revision it asked for has a sender slot (``MAX_REVS_IN_FLIGHT``, the
:class:`~couchlite.replicator.rev_sender.RevSender`'s), so the feed is never read far ahead of the
sending: memory stays flat however many documents there are. The feed reads, the lookups of
what the peer has, the user's push filter and the reads of the revisions to send (those of one
answered list in one call, up to ``REV_READ_AHEAD_BYTES`` of bodies) run on the session's store
thread.

Every change read is tracked until its fate is known -- dropped, the peer has it, sent and
acknowledged, or failed -- by one :class:`~couchlite.replicator.protocol.sequences.SequenceTracker`:
its checkpoint is the active side's local checkpoint; its quiet (``in_flight``) is "nothing of
this push outstanding". A count of the lists awaiting answers gives ``lists_in_flight``.

A revision the peer acknowledged that is no longer current is marked as the peer's
(``mark_remote_revision``): its body stays, as a delta base for the next revision of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from couchlite._slots import Slots
from couchlite._tuning import MAX_CHANGE_LISTS_IN_FLIGHT, REV_READ_AHEAD_BYTES
from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import CouchliteError
from couchlite.replicator.change_feed import ChangeWatcher, Quiet
from couchlite.replicator.collection_context import CollectionContext
from couchlite.replicator.error_mapping import remote_error
from couchlite.replicator.protocol.sequences import SequenceTracker
from couchlite.replicator.protocol.wire import Outgoing
from couchlite.replicator.reporter import Reporter
from couchlite.replicator.rev_sender import RevRead, RevSender, SendResult
from couchlite.replicator.store import ChangeEntry, CollectionStore
from couchlite.replicator.store_worker import StoreWorker
from couchlite.transport.blip_connection import BlipConnection

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class FeedBatch:
    """One read of the changes feed, with what the dialect looked up along with it."""

    changes: list[ChangeEntry]
    #: the doc IDs whose peer revision was looked up, and those found (proposing side)
    looked_up: list[str] = field(default_factory=list)
    found: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)  # not frozen: one per revision, and frozen costs 5x to make
class Wanted:
    """A change the peer asked for, and the revisions it is known to have of that document
    (best first): where the sent history may stop, and the possible delta bases."""

    change: ChangeEntry
    known: list[str]


@dataclass(slots=True)
class Answers:
    """What one answered list asks of the pusher."""

    max_history: int
    wanted: list[Wanted] = field(default_factory=list)
    #: changes to announce again, in a new round (a proposal whose server revision was stale)
    again: list[ChangeEntry] = field(default_factory=list)


class ListReply(Protocol):
    """What every answer to a list says besides its entries."""

    @property
    def deltas(self) -> bool: ...

    @property
    def max_history(self) -> int: ...


ReplyT = TypeVar("ReplyT", bound=ListReply)


class PushDialect(Protocol):
    """What one side of the protocol makes of the shared push loop."""

    #: ``rev`` messages carry ``noconflicts`` (proposing side)
    noconflicts: bool
    #: a gone revision may be replaced by the current one (``sendReplacementRevs``)
    replacements: bool
    #: a one-shot push watches the feed too (it waits for changes another task makes)
    watches_feed: bool

    def read(self, store: CollectionStore, cursor: int) -> FeedBatch:
        """On the store thread: the next batch of the feed after ``cursor``."""
        ...

    async def select(self, push: Pusher, batch: FeedBatch) -> list[ChangeEntry]:
        """The changes of ``batch`` to announce, in feed order (the rest are done)."""
        ...

    async def announce(self, push: Pusher, changes: list[ChangeEntry], round_: int) -> Answers:
        """Send one list and read its answers; settles the entries the peer does not want."""
        ...

    async def gone(self, push: Pusher, change: ChangeEntry) -> None:
        """The wanted revision is gone (replaced or purged since the feed was read)."""
        ...

    def sent(self, push: Pusher, change: ChangeEntry, result: SendResult) -> None:
        """The ``rev`` was answered (``result.revision`` is set): settle ``change``."""
        ...

    async def exhausted(self, push: Pusher, cursor: int, watcher: ChangeWatcher | None) -> bool:
        """The feed has nothing after ``cursor``: wait as the side must; ``False`` ends."""
        ...

    async def finish(self, push: Pusher) -> None:
        """The push is over (every task done)."""
        ...


class Pusher:
    """Pushes one collection to the peer of one session, in the manner of ``dialect``."""

    def __init__(
        self,
        connection: BlipConnection,
        context: CollectionContext,
        calls: StoreWorker,
        dialect: PushDialect,
        *,
        sender: RevSender,
        reporter: Reporter,
        since: int,
        continuous: bool,
    ) -> None:
        self.connection = connection
        self.context = context
        self.store = context.store
        self.calls = calls
        self.dialect = dialect
        self.sender = sender
        self.reporter = reporter
        self.since = since
        self.continuous = continuous
        self.in_flight = Quiet()
        self.tracker = SequenceTracker(since, on_quiet=self.in_flight)
        self.lists_in_flight = Quiet()
        self._lists_out = 0
        self._list_slots = Slots(MAX_CHANGE_LISTS_IN_FLIGHT)
        self.revs_sent = 0
        #: revisions sent by :meth:`_send_quickly` still awaiting their answers
        self._quick_sends = 0
        self._quick_sends_quiet = Quiet()
        #: run() returned: answers still arriving are not acted on (as cancelled senders)
        self._ended = False

    @property
    def checkpoint(self) -> int:
        """The last sequence of the done prefix of the feed."""
        return int(self.tracker.checkpoint or 0)

    async def run(self) -> None:
        watcher = None
        try:
            if self.continuous or self.dialect.watches_feed:
                watcher = ChangeWatcher(self.store, self.calls)
                await watcher.start()
            async with asyncio.TaskGroup() as tasks:
                await self._loop(tasks, watcher)
                # revisions sent without a task are answered too (each within its request's
                # timeout, or failed by the connection's end)
                await self._quick_sends_quiet.event.wait()
        finally:
            self._ended = True
            if watcher is not None:
                watcher.close()
            self.reporter.set_busy(self, False)
        await self.dialect.finish(self)

    async def _loop(self, tasks: asyncio.TaskGroup, watcher: ChangeWatcher | None) -> None:
        cursor = self.since
        while True:
            batch = await self.calls.call(self.dialect.read, self.store, cursor)
            if batch.changes:
                cursor = batch.changes[-1].sequence
                await self._take(batch, tasks)
            elif not await self.dialect.exhausted(self, cursor, watcher):
                return

    async def _take(self, batch: FeedBatch, tasks: asyncio.TaskGroup) -> None:
        tracker = self.tracker
        for change in batch.changes:
            tracker.add(change.sequence, change.sequence)
        kept = await self.dialect.select(self, batch)
        remaining = iter(kept)
        next_kept = next(remaining, None)
        for change in batch.changes:
            if change is next_kept:
                next_kept = next(remaining, None)
            else:
                tracker.done(change.sequence)
        if not kept:
            return
        self.reporter.set_busy(self, True)
        self.reporter.add_total(len(kept))
        await self._list_slots.acquire()
        self._count_list(1)
        tasks.create_task(self._announce(kept, tasks, 0))

    def _count_list(self, delta: int) -> None:
        self._lists_out += delta
        self.lists_in_flight(self._lists_out == 0)

    async def _announce(
        self, changes: list[ChangeEntry], tasks: asyncio.TaskGroup, round_: int
    ) -> None:
        again: list[ChangeEntry] = []
        try:
            answers = await self.dialect.announce(self, changes, round_)
            wanted = answers.wanted
            max_history = answers.max_history
            ahead = _read_ahead(wanted)
            reads: list[RevRead | None] = []
            if ahead:
                reads.extend(await self._read(wanted[:ahead], max_history))
            slots = self.sender.slots
            for i, one in enumerate(wanted):
                if not slots.take():
                    await slots.acquire()
                read = None
                if i < ahead:
                    read, reads[i] = reads[i], None  # held by its sender from now on
                if read is None or not self._send_quickly(one, read, tasks):
                    tasks.create_task(self._send(one, max_history, read))
            again = answers.again
            if again:
                self._count_list(1)  # before this list is done: never "all answered" between
        finally:
            # The slot is held until every wanted revision has a sender slot: released
            # earlier, the feed would be read and announced far ahead of the sending.
            self._list_slots.release()
            self._count_list(-1)
        if again:
            await self._list_slots.acquire()
            tasks.create_task(self._announce(again, tasks, round_ + 1))

    async def _read(self, wanted: Sequence[Wanted], max_history: int) -> list[RevRead]:
        return await self.sender.read(
            self.context,
            [(w.change.doc_id, w.change.rev_id, w.known) for w in wanted],
            max_history,
            replace=self.dialect.replacements,
        )

    async def _send(self, wanted: Wanted, max_history: int, read: RevRead | None) -> None:
        """Send one wanted revision (read now unless it was read ahead); its slot is held."""
        change = wanted.change
        dialect = self.dialect
        try:
            if read is None:
                [read] = await self._read([wanted], max_history)
            result = await self.sender.send(
                self.context,
                change.doc_id,
                str(change.sequence),
                read,
                noconflicts=dialect.noconflicts,
            )
            if result.revision is None:
                await dialect.gone(self, change)
                self.settle_quietly(change)
                return
            self._answered(change, result)
        finally:
            self.sender.slots.release()

    def _send_quickly(self, wanted: Wanted, read: RevRead, tasks: asyncio.TaskGroup) -> bool:
        """Send a revision read ahead with its full body at once, with no task (the common
        case, and the cheap one); ``False`` when it must go through :meth:`_send`. Its slot is
        held until the answer came."""
        change = wanted.change

        def done(result: SendResult | None, error: Exception | None) -> None:
            self._quick_sends -= 1
            self._quick_sends_quiet(self._quick_sends == 0)
            try:
                if self._ended:
                    return
                if result is not None:
                    self._answered(change, result)
                elif error is not None:
                    _fail_group(tasks, error)  # the push ends with it, as when _send raises
            finally:
                self.sender.slots.release()

        sent = self.sender.send_later(
            self.context,
            change.doc_id,
            str(change.sequence),
            read,
            done,
            noconflicts=self.dialect.noconflicts,
        )
        if sent:
            self._quick_sends += 1
            self._quick_sends_quiet(False)
        return sent

    def _answered(self, change: ChangeEntry, result: SendResult) -> None:
        """The peer answered the ``rev`` of ``change`` (``result.revision`` is set)."""
        revision = result.revision
        assert revision is not None
        self.revs_sent += 1
        if result.error is None and revision.sequence != change.sequence:
            # Only a revision that stopped being current needs marking: the current one's
            # body (and its parent's) is kept anyway, and skipping the call saves a write.
            _mark_remote_revision(self.calls, self.store, change.doc_id, revision.rev_id)
        self.dialect.sent(self, change, result)

    async def exchange(
        self, out: Outgoing, parse: Callable[[Message], ReplyT], what: str
    ) -> ReplyT:
        """Send one list and parse its answer (the peer's refusal is a ``CouchliteError``);
        the answer's ``deltas: true`` is latched for the connection's sender."""
        try:
            message = await self.connection.request(
                out.properties, out.body, urgent=out.urgent, compressed=out.compressed
            )
        except BlipErrorReply as exc:
            raise remote_error(exc, what) from exc
        reply = parse(message)
        self.sender.peer_accepts_deltas(reply.deltas)
        return reply

    def settle(
        self, change: ChangeEntry, error: CouchliteError | None, deleted: bool | None = None
    ) -> None:
        """``change`` is done with a document result (a transient error holds the checkpoint:
        it is retried next session)."""
        is_deleted = change.deleted if deleted is None else deleted
        self.reporter.result(True, self.store, change.doc_id, is_deleted, error)
        if error is not None and error.is_transient:
            self.tracker.stuck(change.sequence)
        else:
            self.tracker.done(change.sequence)

    def settle_quietly(self, change: ChangeEntry) -> None:
        """``change`` is done without a document result (nothing was sent, or it waits for the
        pull): counted as completed."""
        self.reporter.add_completed()
        self.tracker.done(change.sequence)


def _read_ahead(wanted: list[Wanted]) -> int:
    """How many of the first ``wanted`` revisions to read at once: as many as fit in
    ``REV_READ_AHEAD_BYTES`` of bodies (by the feed's sizes), the rest are read one by one."""
    total = 0
    for count, one in enumerate(wanted):
        total += one.change.body_size
        if total > REV_READ_AHEAD_BYTES:
            return count
    return len(wanted)


def _fail_group(tasks: asyncio.TaskGroup, error: Exception) -> None:
    """End the push with ``error`` from a callback, as if one of its tasks raised it."""

    async def fail() -> None:
        raise error

    failing = fail()
    try:
        tasks.create_task(failing)
    except RuntimeError:  # the group is already ending (cancelled, or another error)
        failing.close()


def _mark_remote_revision(
    calls: StoreWorker, store: CollectionStore, doc_id: str, rev_id: str
) -> None:
    """Queue ``mark_remote_revision`` (its failure only costs a future delta: logged)."""

    def logged(future: asyncio.Future[None]) -> None:
        if not future.cancelled() and isinstance(future.exception(), CouchliteError):
            logger.warning("mark_remote_revision(%r) failed: %s", doc_id, future.exception())

    calls.call(store.mark_remote_revision, doc_id, rev_id).add_done_callback(logged)


__all__ = ["Answers", "FeedBatch", "PushDialect", "Pusher", "Wanted"]
