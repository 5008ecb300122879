"""What a puller wants of each announced revision, and when its checkpoint may move (notes
§4.6, §4.8, §4.9, §9.1).

:class:`PullState` holds one collection's pull bookkeeping: every announced sequence enters a
:class:`~couchlite.replicator.protocol.sequences.SequenceTracker` (keyed by the JSON text of
the remote sequence); each revision answered "wanted" enters a
:class:`~couchlite.replicator.protocol.revisions.RequestedRevisions` under the key of its
announcement. A ``changes`` list is handled in two steps around one store read:

1. :meth:`PullState.announce` sorts its rows: outside ``document_ids`` (done at once, access
   removals included), an access removal (``deleted`` bit 2 or 4, not 5: done once purged),
   already requested (announced again while the first request is in flight: done), or to be
   checked against the local revisions.
2. :meth:`PullState.answer` takes the store's ``find_missing`` answers: a revision we have is
   done, one we lack is requested (its known ancestors are the answer); a request the bound
   forgets marks its sequence stuck, retried by a later session.

A ``rev`` is accepted only if it was requested (looked up by ``replacedRev`` when it stands
in for the announced one), and tracked under the announced sequence, never one it claims.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from couchlite.replicator.protocol.changes import Changes, ChangesReply, sequence_key
from couchlite.replicator.protocol.revisions import RequestedRevisions
from couchlite.replicator.protocol.sequences import SequenceTracker


@dataclass(slots=True)
class Announcement:
    """One ``changes`` list, sorted by :meth:`PullState.announce`."""

    #: one answer per row, ``0`` until :meth:`PullState.answer` fills the wanted ones
    answers: list[Any]
    #: ``(row index, doc_id, rev_id, tracker key)`` to look up with ``find_missing``
    to_check: list[tuple[int, str, str, str]] = field(default_factory=list)
    #: ``(doc_id, tracker key)`` of access removals (purged, then :meth:`PullState.done`)
    removed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def lookups(self) -> list[tuple[str, str]]:
        """The ``(doc_id, rev_id)`` pairs for ``find_missing``."""
        return [(doc_id, rev_id) for _, doc_id, rev_id, _ in self.to_check]


@dataclass(slots=True)
class Answered:
    """What :meth:`PullState.answer` decided beyond the reply itself."""

    #: ``(doc_id, rev_id)`` of announced revisions we already have (the peer has them too)
    present: list[tuple[str, str]] = field(default_factory=list)
    #: how many revisions were requested
    requested: int = 0


class PullState:
    """The pull bookkeeping of one collection (see the module docstring)."""

    def __init__(
        self,
        since: Any,
        document_ids: frozenset[str] | None = None,
        *,
        requested: RequestedRevisions | None = None,
        tracker: SequenceTracker | None = None,
    ) -> None:
        self.tracker = tracker if tracker is not None else SequenceTracker(since)
        self.requested = requested if requested is not None else RequestedRevisions()
        self.document_ids = document_ids
        #: an empty ``changes`` arrived: the peer has announced everything it had
        self.caught_up = False

    @property
    def checkpoint(self) -> Any:
        return self.tracker.checkpoint

    @property
    def finished(self) -> bool:
        """Caught up and nothing outstanding: a one-shot pull is over."""
        return self.caught_up and self.tracker.outstanding == 0

    def announce(self, changes: Changes) -> Announcement:
        rows = changes.rows
        if not rows and changes.caught_up:
            self.caught_up = True
        announcement = Announcement([0] * len(rows))
        tracker, requested, doc_ids = self.tracker, self.requested, self.document_ids
        for i, row in enumerate(rows):
            key = sequence_key(row.sequence)
            tracker.add(key, row.sequence)
            doc_id, rev_id = row.doc_id, row.rev_id
            if doc_ids is not None and doc_id not in doc_ids:
                tracker.done(key)  # also for access removals: document_ids bound every path
            elif row.access_removed:
                announcement.removed.append((doc_id, key))
            elif (doc_id, rev_id) in requested:
                tracker.done(key)
            else:
                announcement.to_check.append((i, doc_id, rev_id, key))
        return announcement

    def answer(self, announcement: Announcement, missing: list[list[str] | None]) -> Answered:
        """Fill ``announcement.answers`` from ``find_missing`` (one entry per lookup)."""
        result = Answered()
        tracker, requested, answers = self.tracker, self.requested, announcement.answers
        for (i, doc_id, rev_id, key), known in zip(announcement.to_check, missing, strict=True):
            if known is None:
                result.present.append((doc_id, rev_id))
                tracker.done(key)
            else:
                answers[i] = known
                result.requested += 1
                evicted, old_key = requested.add(doc_id, rev_id, key)
                if evicted:
                    tracker.stuck(old_key)  # never came: retried by a later session
        return result

    def reply(self, announcement: Announcement, *, deltas: bool) -> ChangesReply:
        return ChangesReply(announcement.answers, deltas)

    def done(self, key: str) -> None:
        self.tracker.done(key)

    def requested_key(self, doc_id: str, announced: str) -> str | None:
        """The tracker key a ``rev`` for ``announced`` was requested under, else ``None``."""
        key: str | None = self.requested.get(doc_id, announced)
        return key

    def forget_request(self, doc_id: str, announced: str) -> tuple[bool, Any]:
        """The revision arrived (stored or refused for good) or will never come."""
        return self.requested.pop(doc_id, announced)


__all__ = ["Announcement", "Answered", "PullState"]
