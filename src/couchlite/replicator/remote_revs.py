"""What the peer has of each document: a write-back cache over the store's record.

LiteCore remembers, per document and per remote database, the revision the peer is known to
have (its "remote ancestor"). The pusher names it as ``serverRevID`` in ``proposeChanges`` --
so a document changed since the last session is accepted at once instead of being refused with
a 409 and proposed again -- and cuts ``history`` there; it is also how the pusher avoids echoing
revisions that came from the peer. Lookups are loaded in bulk, one query per ``changes`` batch;
updates are written back in one transaction whenever checkpoints are saved, so the record on disk
is never behind a saved checkpoint by more than one save interval, and whenever
``FLUSH_AFTER`` of them accumulate, so that memory stays flat however fast documents go by. (An
update is made only once the peer has the revision, so writing it early is always true.)

The record on disk is trusted only while the session's checkpoint is: a session that starts
without a valid local checkpoint (the first one, or a ``reset``) consults only what it learns
itself, as LiteCore does -- the peer may have lost documents (purged them, or been recreated)
since the record was written, and a reset is how a user asks for everything to be sent again.
"""

from __future__ import annotations

from collections.abc import Iterable

from couchlite.replicator.store import CollectionStore

#: Updates held in memory before they are written out (one transaction).
FLUSH_AFTER = 1_000

#: Entries kept in memory before the cache forgets what it loaded (everything is on disk by
#: then): keeps a long or large session's memory flat.
MAX_CACHED = 10_000


class RemoteRevisions:
    def __init__(self, store: CollectionStore, remote: str) -> None:
        self._store = store
        self._remote = remote
        self._known: dict[str, str] = {}
        self._looked_up: set[str] = set()
        self._dirty: dict[str, str] = {}
        self._trust_stored = True

    def distrust_stored(self) -> None:
        """From now on, ignore the record on disk (it is still updated with what is learnt)."""
        self._trust_stored = False
        self._known = dict(self._dirty)
        self._looked_up.clear()

    def load(self, doc_ids: Iterable[str]) -> None:
        """Fetch the recorded revisions of these documents (those not already known)."""
        if not self._trust_stored:
            return
        wanted = [d for d in doc_ids if d not in self._known and d not in self._looked_up]
        if not wanted:
            return
        self._known.update(self._store.remote_revisions(self._remote, wanted))
        self._looked_up.update(wanted)

    def get(self, doc_id: str, default: str | None = None) -> str | None:
        return self._known.get(doc_id, default)

    def __getitem__(self, doc_id: str) -> str:
        return self._known[doc_id]

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._known

    def __setitem__(self, doc_id: str, rev_id: str) -> None:
        if self._known.get(doc_id) != rev_id:
            self._known[doc_id] = rev_id
            self._dirty[doc_id] = rev_id
            if len(self._dirty) >= FLUSH_AFTER:
                self.flush()

    def pop(self, doc_id: str, default: str | None = None) -> str | None:
        self._dirty.pop(doc_id, None)
        return self._known.pop(doc_id, default)

    def flush(self) -> None:
        """Write the changes since the last flush (one transaction)."""
        if self._dirty:
            self._store.set_remote_revisions(self._remote, list(self._dirty.items()))
            self._dirty.clear()
        if len(self._known) > MAX_CACHED:
            self._known.clear()
            self._looked_up.clear()
