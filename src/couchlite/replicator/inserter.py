"""Batched inserts of received revisions: what makes receiving fast (notes §4.8).

Revisions arriving within ``INSERT_BATCH_DELAY_S`` (or until ``INSERT_BATCH_SIZE`` are queued)
are inserted with one ``insert_revisions`` call -- one transaction -- on the session's
:class:`~couchlite.replicator.store_worker.StoreWorker`, and every waiting handler is given
its own outcome: no task and no thread hop per revision, and the event loop never waits on
the commit. A handler either awaits :meth:`Inserter.insert` or, cheaper still, hands
:meth:`Inserter.insert_later` a callback (no future, no wake-up per revision). One batch of a
collection is in flight at a time; what arrives meanwhile forms the next batch, so batches
commit in the order their revisions arrived. A full batch goes to the store thread at once,
not at the end of the loop turn: the reader may be busy with a burst of frames for a while,
and the commit then runs beside it. A handler replies only after its batch committed,
so the peer learns of a revision exactly when it is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from couchlite._tuning import INSERT_BATCH_DELAY_S, INSERT_BATCH_SIZE
from couchlite.errors import CouchliteError
from couchlite.replicator.conflicts import resolve_by_default
from couchlite.replicator.store import CollectionStore, IncomingRevision, InsertOutcome
from couchlite.replicator.store_worker import StoreWorker

logger = logging.getLogger("couchlite.replicator")


@dataclass(slots=True)  # not frozen: one per revision, and frozen costs 5x to make
class Inserted:
    """The outcome of one insert, and of the default resolution of the conflict it made."""

    outcome: InsertOutcome
    #: the conflict it made was resolved by the default rule in the same store call
    resolved: bool = False
    #: why that resolution failed (the document then stays conflicted)
    resolution_error: CouchliteError | None = None


Done = Callable[["Inserted"], None]
_Item = tuple[IncomingRevision, Done]


class Inserter:
    """Batches revisions into ``insert_revisions`` transactions (see the module docstring)."""

    def __init__(
        self,
        store: CollectionStore,
        calls: StoreWorker,
        *,
        batch_size: int = INSERT_BATCH_SIZE,
        delay: float = INSERT_BATCH_DELAY_S,
        resolve_by_default: bool = False,
        on_stored: Callable[[IncomingRevision, int], None] | None = None,
    ) -> None:
        self.store = store
        #: resolve the conflicts an insert makes with the default rule, in the same store call
        self._resolve = resolve_by_default
        #: called on the loop for each revision stored, with :attr:`last_sequence`, before
        #: any other waiter on the store thread's results runs (a feed read made with this
        #: batch cannot be acted on first)
        self._on_stored = on_stored
        self._calls = calls
        self._batch_size = batch_size
        self._delay = delay
        self._queue: list[_Item] = []
        self._timer: asyncio.TimerHandle | None = None
        self._in_flight = False
        self.batches = 0
        #: the collection's last sequence read right after the latest batch committed: at or
        #: after the sequence of every revision of that batch
        self.last_sequence = 0

    async def insert(self, revision: IncomingRevision) -> Inserted:
        future: asyncio.Future[Inserted] = asyncio.get_running_loop().create_future()

        def done(inserted: Inserted) -> None:
            if not future.done():  # (a cancelled waiter)
                future.set_result(inserted)

        self.insert_later(revision, done)
        return await future

    def insert_later(self, revision: IncomingRevision, done: Done) -> None:
        """Queue ``revision``; ``done(inserted)`` is called on the loop once its batch
        committed (or failed). Needs a running loop."""
        queue = self._queue
        queue.append((revision, done))
        if len(queue) >= self._batch_size:
            self.flush()
        elif self._timer is None and not self._in_flight:
            self._timer = asyncio.get_running_loop().call_later(self._delay, self.flush)

    def flush(self) -> None:
        """Start committing what is queued (after the batch in flight, if any)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._in_flight or not self._queue:
            return
        items, self._queue = self._queue, []
        self._in_flight = True
        self.batches += 1
        done = self._calls.call_now(self._insert, [r for r, _ in items])
        done.add_done_callback(lambda f: self._deliver(items, f))

    def _insert(self, revisions: list[IncomingRevision]) -> tuple[Sequence[Inserted], int]:
        """On the store thread: one transaction (and the default resolution of the conflicts
        it made), then the sequence the collection reached."""
        try:
            outcomes: Sequence[InsertOutcome] = self.store.insert_revisions(revisions)
        except CouchliteError as exc:
            return [Inserted(InsertOutcome(error=exc))] * len(revisions), self.last_sequence
        except Exception as exc:  # a store bug must fail the revisions, not hang their handlers
            logger.exception("insert_revisions failed")
            error = CouchliteError(f"insert failed: {type(exc).__name__}: {exc}")
            return [Inserted(InsertOutcome(error=error))] * len(revisions), self.last_sequence
        results = [
            Inserted(
                outcome, True, resolve_by_default(self.store, revision.doc_id, revision.rev_id)
            )
            if outcome.conflicted and self._resolve and outcome.error is None
            else Inserted(outcome)
            for revision, outcome in zip(revisions, outcomes, strict=True)
        ]
        try:
            last = self.store.last_sequence
        except CouchliteError:
            last = self.last_sequence
        return results, last

    def _deliver(
        self,
        items: list[_Item],
        done: asyncio.Future[tuple[Sequence[Inserted], int]],
    ) -> None:
        self._in_flight = False
        if done.cancelled():
            outcomes: Sequence[Inserted] = [
                Inserted(InsertOutcome(error=CouchliteError("insert cancelled")))
            ] * len(items)
        elif done.exception() is not None:
            error = done.exception()
            wrapped = error if isinstance(error, CouchliteError) else CouchliteError(str(error))
            outcomes = [Inserted(InsertOutcome(error=wrapped))] * len(items)
        else:
            outcomes, self.last_sequence = done.result()
        on_stored = self._on_stored
        for (revision, waiter), outcome in zip(items, outcomes, strict=True):
            if on_stored is not None and outcome.outcome.error is None:
                on_stored(revision, self.last_sequence)
            try:
                waiter(outcome)
            except Exception:  # one waiter's bug must not keep the others from their outcome
                logger.exception("insert callback failed")
        if self._queue:
            self.flush()  # what arrived while this batch committed has waited long enough

    def close(self) -> None:
        """Commit what is queued (the handlers waiting on it will answer)."""
        self.flush()


__all__ = ["Inserted", "Inserter"]
