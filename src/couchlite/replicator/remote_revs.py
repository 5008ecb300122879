"""What the peer has of each document: a write-back cache over the store's record.

LiteCore remembers, per document and per remote database, the revision the peer is known to
have (its "remote ancestor"). The pusher names it as ``serverRevID`` in ``proposeChanges`` --
so a document changed since the last session is accepted at once instead of being refused with
a 409 and proposed again -- and cuts ``history`` there; it is also how the pusher avoids echoing
revisions that came from the peer. Lookups are loaded in bulk, one query per ``changes`` batch;
updates are written back in one transaction whenever checkpoints are saved, so the record on disk
is never behind a saved checkpoint by more than one save interval, and whenever
``REMOTE_REVS_FLUSH_AFTER`` of them accumulate, so that memory stays flat however fast documents
go by. (An update is made only once the peer has the revision, so writing it early is always true.)

The record on disk is trusted only while the session's checkpoint is: a session that starts
without a valid local checkpoint (the first one, or a ``reset``) consults only what it learns
itself, as LiteCore does -- the peer may have lost documents (purged them, or been recreated)
since the record was written, and a reset is how a user asks for everything to be sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from couchlite._tuning import REMOTE_REVS_FLUSH_AFTER, REMOTE_REVS_MAX_CACHED
from couchlite.errors import CouchliteError
from couchlite.replicator.store import CollectionStore

if TYPE_CHECKING:
    import asyncio

    from couchlite.replicator.store_worker import StoreWorker

logger = logging.getLogger("couchlite.replicator")


class RemoteRevisions:
    """The revision the peer is known to have, per document of one collection.

    A session's workers use it on the event loop: lookups go through :meth:`wanted` (which
    documents to read, on the store thread) and :meth:`merge`, writes through the session's
    :class:`~couchlite.replicator.store_worker.StoreWorker` (``calls``). Without ``calls`` (a
    one-off computation such as ``pending_document_ids``) :meth:`load` and :meth:`flush` call
    the store directly.
    """

    def __init__(
        self, store: CollectionStore, remote: str, calls: StoreWorker | None = None
    ) -> None:
        self._store = store
        self._remote = remote
        self._calls = calls
        self._known: dict[str, str] = {}
        self._looked_up: set[str] = set()
        self._dirty: dict[str, str] = {}
        self._trust_stored = True

    def distrust_stored(self) -> None:
        """From now on, ignore the record on disk (it is still updated with what is learnt)."""
        self._trust_stored = False
        self._known = dict(self._dirty)
        self._looked_up.clear()

    def wanted(self, doc_ids: Iterable[str]) -> list[str]:
        """The documents whose recorded revision is still to be read (none when the record
        is not trusted)."""
        if not self._trust_stored:
            return []
        known, looked_up = self._known, self._looked_up
        return [d for d in doc_ids if d not in known and d not in looked_up]

    def read(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """The recorded revisions of ``doc_ids`` (a store read: on the store thread)."""
        return self._store.remote_revisions(self._remote, doc_ids) if doc_ids else {}

    def merge(self, doc_ids: Sequence[str], found: dict[str, str]) -> None:
        """Take what :meth:`read` found; what was learnt meanwhile is newer and stays."""
        known = self._known
        for doc_id, rev_id in found.items():
            known.setdefault(doc_id, rev_id)
        self._looked_up.update(doc_ids)

    def load(self, doc_ids: Iterable[str]) -> None:
        """Fetch the recorded revisions of these documents (those not already known)."""
        wanted = self.wanted(doc_ids)
        if wanted:
            self.merge(wanted, self.read(wanted))

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
            if len(self._dirty) >= REMOTE_REVS_FLUSH_AFTER:
                if self._calls is not None:
                    self._write_behind()
                else:
                    self.flush()

    def pop(self, doc_id: str, default: str | None = None) -> str | None:
        self._dirty.pop(doc_id, None)
        return self._known.pop(doc_id, default)

    def _take(self) -> list[tuple[str, str]]:
        items = list(self._dirty.items())
        self._dirty.clear()
        if len(self._known) > REMOTE_REVS_MAX_CACHED:
            self._known.clear()
            self._looked_up.clear()
        return items

    def _write_behind(self) -> None:
        """Queue the write of what accumulated (in order with the session's other calls)."""
        assert self._calls is not None
        written = self._calls.call(self._store.set_remote_revisions, self._remote, self._take())
        written.add_done_callback(_log_failure)

    async def save(self) -> None:
        """Write the changes since the last write (one transaction, on the store thread)."""
        items = self._take()
        if items:
            assert self._calls is not None
            await self._calls.call(self._store.set_remote_revisions, self._remote, items)

    def flush(self) -> None:
        """Write the changes since the last write, from the calling thread."""
        items = self._take()
        if items:
            self._store.set_remote_revisions(self._remote, items)


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and isinstance(future.exception(), CouchliteError):
        logger.warning("remote revisions not saved: %s", future.exception())
