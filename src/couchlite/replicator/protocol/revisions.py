"""Per-collection revision bookkeeping of a session: what this side asked the peer for, and
what the peer pushed to this side (so that it is not announced back)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from couchlite._tuning import MAX_REQUESTED_REVS


class PeerRevisions:
    """Revisions the peer pushed to us in this session, so that they are not announced back.

    Only a passive side that is also sending its changes to the peer needs them (``watch()``
    turns recording on), and each only until its changes feed has been read past the sequence
    the revision was stored at (``forget_through``): the map then holds the few revisions between
    the peer's pushes and the next read of the feed, not one per document pushed during the
    connection's life. Missing an entry costs only an announcement the peer declines.
    """

    __slots__ = ("_revs", "_watching")

    def __init__(self) -> None:
        #: doc_id -> (revision, a sequence at or after the one it was stored at), in the order
        #: recorded, so those bounds never decrease from first to last (an OrderedDict: taking
        #: from the front of a plain dict rescans the removed slots every time)
        self._revs: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._watching = False

    def watch(self) -> None:
        self._watching = True

    def record(self, doc_id: str, rev_id: str, stored_by: int) -> None:
        """The peer pushed ``rev_id``; it is stored at a sequence no later than ``stored_by``."""
        if self._watching:
            self._revs[doc_id] = (rev_id, stored_by)
            self._revs.move_to_end(doc_id)  # re-recorded: to the end, keeping the order

    def is_echo(self, doc_id: str, rev_id: str) -> bool:
        entry = self._revs.get(doc_id)
        return entry is not None and entry[0] == rev_id

    def forget_through(self, sequence: int) -> None:
        """Drop the revisions stored at or before ``sequence`` (the feed was read past them)."""
        revs = self._revs
        while revs:
            _, stored_by = next(iter(revs.values()))
            if stored_by > sequence:
                return
            revs.popitem(last=False)

    def __len__(self) -> int:
        return len(self._revs)


class RequestedRevisions:
    """The revisions this side asked the peer for and has not received yet, per collection:
    answered "wanted" in a ``changes`` reply, or accepted in a ``proposeChanges`` reply. A
    ``rev`` is stored only if its ``(doc_id, rev_id)`` is here; anything else is refused.

    Bounded by ``MAX_REQUESTED_REVS``: past it the oldest request is forgotten (returned by
    :meth:`add`, so a puller can keep its checkpoint before it). O(1) per revision.
    """

    __slots__ = ("_limit", "_pending")

    def __init__(self, limit: int = MAX_REQUESTED_REVS) -> None:
        #: (doc_id, rev_id) -> the caller's value (a puller's sequence key), oldest first
        self._pending: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._limit = limit

    def add(self, doc_id: str, rev_id: str, value: Any = None) -> tuple[bool, Any]:
        """Record a request; returns ``(True, value)`` of a request evicted to make room,
        else ``(False, None)``."""
        pending = self._pending
        pending[(doc_id, rev_id)] = value
        if len(pending) > self._limit:
            return True, pending.popitem(last=False)[1]
        return False, None

    def __contains__(self, key: object) -> bool:
        return key in self._pending

    def get(self, doc_id: str, rev_id: str) -> Any:
        return self._pending.get((doc_id, rev_id))

    def pop(self, doc_id: str, rev_id: str) -> tuple[bool, Any]:
        """Forget a request (the revision arrived, or will never come): ``(found, value)``."""
        key = (doc_id, rev_id)
        if key in self._pending:
            return True, self._pending.pop(key)
        return False, None

    def __len__(self) -> int:
        return len(self._pending)


__all__ = ["PeerRevisions", "RequestedRevisions"]
