"""The two manners of pushing that the :class:`~couchlite.replicator.pusher.Pusher` speaks.

Proposing (an active replicator; notes §4.7, §4.8, §8, §10; interop facts 5, 8)
--------------------------------------------------------------------------------
Document-ID and push filters drop changes first; a change whose revision the peer is known to
have (it came from the peer in this session) is dropped too, which is what stops pulled
revisions from echoing back. The rest go as ``proposeChanges`` (urgent + compressed,
``conflictIncludesRev: true``; entries ``[docID, revID, serverRevID or "", bodySize]``). What
each answer means is :func:`~couchlite.replicator.protocol.push.decide`'s: ``0`` -> send the
``rev`` (``noconflicts``, history cut at the server revision); ``304`` -> the peer has it;
``{"status": 409, "rev": X}`` -> if our revision descends from X, propose again with X as server
revision; else, when also pulling, wait: the puller brings X, the conflict is resolved locally,
and the resolution -- a new local change -- is pushed; when not pulling (or if the document
still has the same revision when the pull is over) it is a document error 409. The server
revision is the delta base offered to the sender (notes §6.2).

A one-shot push ends when the feed is exhausted, nothing is in flight and (when pulling) the
puller has finished -- after one last read of the feed, so resolutions made by the puller are
pushed in the same session. A continuous push goes idle once every revision was acknowledged,
and waits on the collection's change listener.

Announcing (a passive peer answering ``subChanges``; notes §4.5, §4.6, §4.8; facts 6, 7, 15)
-------------------------------------------------------------------------------------------
The subscription's document IDs and ``activeOnly`` drop changes, and so does a revision the
peer pushed to us itself (no echo). The rest go as ``changes`` (urgent + compressed; entries
``[seq, docID, revID, deleted, bodySize]`` with ``deleted`` the number 0 or 1, as LiteCore writes
it). The peer answers each entry with the ancestors it has (they cut the history and are the
delta bases) or nothing (it has the revision); a revision gone meanwhile is replaced by the
current one (``replacedRev``) when the peer asked for ``sendReplacementRevs``, else announced
with ``norev``.

Once the feed is exhausted and every ``changes`` was answered, one empty ``changes`` is sent
(urgent, noreply, uncompressed): the peer's "caught up" -- and this side is idle, since the peer
can only go idle after it (a listener never counts a connection as active after its client
reported idle). A one-shot subscription then ends with its revisions; a continuous one waits
for them, then on the change listener, and repeats.
"""

from __future__ import annotations

import asyncio
import logging

from couchlite._tuning import CHANGES_BATCH_SIZE, MAX_HISTORY, WAIT_TIMEOUT_S
from couchlite.errors import CouchliteError
from couchlite.replicator.change_feed import ChangeWatcher, read_changes
from couchlite.replicator.error_mapping import conflict_error, http_error
from couchlite.replicator.options import SessionCollectionOptions
from couchlite.replicator.protocol.changes import (
    ChangeRow,
    Changes,
    ChangesReply,
    ProposeChanges,
    ProposeChangesReply,
    ProposedChange,
)
from couchlite.replicator.protocol.push import Decision, decide
from couchlite.replicator.protocol.revisions import PeerRevisions
from couchlite.replicator.puller import Puller
from couchlite.replicator.pusher import Answers, FeedBatch, Pusher, Wanted
from couchlite.replicator.remote_revs import RemoteRevisions
from couchlite.replicator.rev_sender import SendResult
from couchlite.replicator.store import ChangeEntry, CollectionStore, RevisionFilter

logger = logging.getLogger(__name__)


class Proposing:
    """The active replicator's push: ``proposeChanges``, conflicts found by the peer."""

    noconflicts = True
    replacements = False

    def __init__(
        self,
        options: SessionCollectionOptions,
        remote_revs: RemoteRevisions,
        puller: Puller | None,
    ) -> None:
        self.options = options
        self.remote_revs = remote_revs
        self.puller = puller
        self.watches_feed = puller is not None
        #: doc_id -> rev_id refused with 409 while pulling: resolved by the pull, or an error
        self._waiting: dict[str, str] = {}

    def read(self, store: CollectionStore, cursor: int) -> FeedBatch:
        changes = store.changes_since(cursor, CHANGES_BATCH_SIZE)
        looked_up = self.remote_revs.wanted(c.doc_id for c in changes)
        return FeedBatch(changes, looked_up, self.remote_revs.read(looked_up))

    async def select(self, push: Pusher, batch: FeedBatch) -> list[ChangeEntry]:
        remote_revs = self.remote_revs
        remote_revs.merge(batch.looked_up, batch.found)
        doc_ids = self.options.document_ids
        candidates = [
            c
            for c in batch.changes
            if (doc_ids is None or c.doc_id in doc_ids) and remote_revs.get(c.doc_id) != c.rev_id
        ]
        push_filter = self.options.push_filter
        if not candidates or push_filter is None:
            return candidates
        kept = await push.calls.call(_apply_filter, push.store, push_filter, candidates)
        return [change for change, keep in zip(candidates, kept, strict=True) if keep]

    async def announce(self, push: Pusher, changes: list[ChangeEntry], round_: int) -> Answers:
        remote_revs = self.remote_revs
        servers = [remote_revs.get(c.doc_id) for c in changes]
        out = ProposeChanges(
            tuple(
                ProposedChange(c.doc_id, c.rev_id, server, c.body_size)
                for c, server in zip(changes, servers, strict=True)
            )
        ).to_message(push.context.address)
        reply = await push.exchange(out, ProposeChangesReply.parse, "proposeChanges refused")
        answers = Answers(reply.max_history)
        ancestry: list[tuple[ChangeEntry, str]] = []
        for i, (change, server) in enumerate(zip(changes, servers, strict=True)):
            answer = reply.answer(i)
            decision = decide(answer, change.rev_id, round_)
            if decision is Decision.SEND:
                answers.wanted.append(Wanted(change, [server] if server else []))
            elif decision is Decision.PEER_HAS_IT:
                remote_revs[change.doc_id] = change.rev_id
                push.settle(change, None)
            elif decision is Decision.REPROPOSE_IF_ANCESTOR:
                assert answer.server_rev is not None
                ancestry.append((change, answer.server_rev))
            elif decision is Decision.CONFLICT:
                self._conflict(push, change)
            else:
                status = answer.status
                error = CouchliteError(f"peer refused {change.doc_id!r} with status {status}")
                if isinstance(status, int):
                    error = http_error(status, f"peer refused {change.doc_id!r}")
                push.settle(change, error)
        if ancestry:
            descends = await push.calls.call(_descend, push.store, ancestry)
            for (change, server_rev), is_ancestor in zip(ancestry, descends, strict=True):
                if is_ancestor:
                    remote_revs[change.doc_id] = server_rev
                    answers.again.append(change)
                else:
                    self._conflict(push, change)
        return answers

    def _conflict(self, push: Pusher, change: ChangeEntry) -> None:
        if self.puller is not None:
            # the pull brings the peer's revision; the resolution will be a new change
            self._waiting[change.doc_id] = change.rev_id
            push.settle_quietly(change)
        else:
            push.settle(change, conflict_error())

    async def gone(self, push: Pusher, change: ChangeEntry) -> None:
        """A newer change supersedes it: nothing to tell the peer."""

    def sent(self, push: Pusher, change: ChangeEntry, result: SendResult) -> None:
        if result.error is None:
            self.remote_revs[change.doc_id] = change.rev_id
            push.settle(change, None)
        elif result.error.code == 409 and self.puller is not None:
            self._conflict(push, change)
        else:
            push.settle(change, result.error)

    async def exhausted(self, push: Pusher, cursor: int, watcher: ChangeWatcher | None) -> bool:
        await push.in_flight.wait()
        if push.continuous:
            assert watcher is not None
            push.reporter.set_busy(push, False)
            await watcher.wait()
            return True
        puller = self.puller
        if puller is not None and not puller.finished.is_set():
            assert watcher is not None
            await _first_of(puller.finished, watcher.event)
            watcher.event.clear()
            return True
        # the puller may have resolved conflicts meanwhile: their resolutions go now
        return bool(await read_changes(push.calls, push.store, cursor, 1))

    async def finish(self, push: Pusher) -> None:
        """Report the conflicts the pull did not resolve."""
        if not self._waiting:
            return
        waiting = list(self._waiting.items())
        self._waiting.clear()
        currents = await push.calls.call(_current_revisions, push.store, [d for d, _ in waiting])
        for (doc_id, rev_id), current in zip(waiting, currents, strict=True):
            if current is not None and current[0] == rev_id:
                push.reporter.result(
                    True, push.store, doc_id, current[1], conflict_error(), count=False
                )


class Announcing:
    """A passive peer's push, answering the peer's ``subChanges``: ``changes`` lists."""

    noconflicts = False
    watches_feed = False

    def __init__(
        self,
        peer_revs: PeerRevisions,
        *,
        active_only: bool,
        document_ids: frozenset[str] | None,
        replacements: bool,
    ) -> None:
        self.peer_revs = peer_revs
        self.active_only = active_only
        self.document_ids = document_ids
        self.replacements = replacements
        peer_revs.watch()

    def read(self, store: CollectionStore, cursor: int) -> FeedBatch:
        return FeedBatch(store.changes_since(cursor, CHANGES_BATCH_SIZE))

    async def select(self, push: Pusher, batch: FeedBatch) -> list[ChangeEntry]:
        kept = [c for c in batch.changes if self._wanted(c)]
        self.peer_revs.forget_through(batch.changes[-1].sequence)
        return kept

    def _wanted(self, change: ChangeEntry) -> bool:
        if self.document_ids is not None and change.doc_id not in self.document_ids:
            return False
        if self.peer_revs.is_echo(change.doc_id, change.rev_id):
            return False  # the peer pushed this very revision to us
        return not (self.active_only and change.deleted)

    async def announce(self, push: Pusher, changes: list[ChangeEntry], round_: int) -> Answers:
        out = Changes(
            tuple(
                ChangeRow(c.sequence, c.doc_id, c.rev_id, int(c.deleted), c.body_size)
                for c in changes
            )
        ).to_message(push.context.address)
        reply = await push.exchange(out, ChangesReply.parse, "changes refused")
        answers = Answers(reply.max_history)
        for i, change in enumerate(changes):
            known = reply.known(i)
            if known is None:
                push.settle_quietly(change)
            else:
                answers.wanted.append(Wanted(change, known))
        return answers

    async def gone(self, push: Pusher, change: ChangeEntry) -> None:
        await push.sender.send_norev(
            push.context, change.doc_id, change.rev_id, str(change.sequence), 404
        )

    def sent(self, push: Pusher, change: ChangeEntry, result: SendResult) -> None:
        assert result.revision is not None
        push.settle(change, result.error, result.revision.deleted)

    async def exhausted(self, push: Pusher, cursor: int, watcher: ChangeWatcher | None) -> bool:
        # the peer must see every non-empty list before "caught up" (interop fact 6)
        await push.lists_in_flight.wait()
        out = Changes().to_message(push.context.address)
        await push.connection.send_no_reply(out.properties, out.body, urgent=out.urgent)
        push.reporter.set_busy(push, False)
        if watcher is None:
            return False
        await push.in_flight.wait()
        await watcher.wait()
        return True

    async def finish(self, push: Pusher) -> None:
        """Nothing to report: the peer's replicator reports its documents."""


def _apply_filter(
    store: CollectionStore, push_filter: RevisionFilter, changes: list[ChangeEntry]
) -> list[bool]:
    """On the store thread: the push filter's verdict on each change."""
    return [_passes(store, push_filter, change) for change in changes]


def _passes(store: CollectionStore, push_filter: RevisionFilter, change: ChangeEntry) -> bool:
    body = store.document_body(change.doc_id, change.rev_id)
    if body is None:
        return False  # replaced meanwhile: the newer change will be considered instead
    try:
        return bool(push_filter(change.doc_id, change.rev_id, change.deleted, body))
    except Exception:
        logger.exception("push filter failed for %r", change.doc_id)
        return False


def _descend(store: CollectionStore, pairs: list[tuple[ChangeEntry, str]]) -> list[bool]:
    """On the store thread: whether each change's revision descends from the named one."""
    result = []
    for change, ancestor in pairs:
        revision = store.get_revision(change.doc_id, change.rev_id, [ancestor], MAX_HISTORY)
        result.append(revision is not None and ancestor in revision.history)
    return result


def _current_revisions(store: CollectionStore, doc_ids: list[str]) -> list[tuple[str, bool] | None]:
    return [store.current_revision(doc_id) for doc_id in doc_ids]


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set (bounded by ``WAIT_TIMEOUT_S``)."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=WAIT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


__all__ = ["Announcing", "Proposing"]
