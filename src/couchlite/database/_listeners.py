"""Change listeners of one open database file: their registration, and their dispatch after
each commit (on the committing thread, once the engine lock is released)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from couchlite.database.changes import CollectionChange, DocumentChange, ListenerToken

if TYPE_CHECKING:
    from couchlite.database._transaction import CollectionState, Transaction
    from couchlite.database.collection import Collection

log = logging.getLogger("couchlite.database.engine")


@dataclass(slots=True)
class ListenerEntry:
    """One registered change listener (what a ``ListenerToken`` removes)."""

    collection: Collection
    fn: Callable[[Any], None]
    doc_id: str | None
    active: bool = True


class ChangeNotifier:
    """The listener half of ``Engine``: listeners by collection, called after a commit."""

    def __init__(self) -> None:
        self._listeners: dict[int, list[ListenerEntry]] = {}
        self._listeners_lock = threading.Lock()

    def _after_commit(self, txn: Transaction) -> None:
        with self._listeners_lock:
            listeners = {
                cid: list(found) for cid in txn.collections if (found := self._listeners.get(cid))
            }
        if not listeners:  # nobody listens: don't even list the changed documents
            return
        changed: dict[int, list[str]] = {}
        for coll_id, doc_id in txn.records:
            if coll_id in listeners:
                changed.setdefault(coll_id, []).append(doc_id)
        for coll_id, doc_ids in changed.items():
            for listener in listeners[coll_id]:
                if not listener.active:
                    continue
                try:
                    if listener.doc_id is None:
                        listener.fn(CollectionChange(listener.collection, doc_ids))
                    elif listener.doc_id in doc_ids:
                        listener.fn(DocumentChange(listener.collection, listener.doc_id))
                except Exception:
                    log.exception("a change listener raised")

    # --- listeners -----------------------------------------------------------------------

    def add_listener(
        self,
        state: CollectionState,
        collection: Collection,
        fn: Callable[[Any], None],
        doc_id: str | None,
    ) -> ListenerToken:
        listener = ListenerEntry(collection, fn, doc_id)
        with self._listeners_lock:
            self._listeners.setdefault(state.id, []).append(listener)
        return ListenerToken(self, listener)

    def remove_listener(self, listener: ListenerEntry) -> None:
        listener.active = False
        with self._listeners_lock:
            for entries in self._listeners.values():
                if listener in entries:
                    entries.remove(listener)

    def remove_listeners_of(self, owner: object) -> None:
        with self._listeners_lock:
            for entries in self._listeners.values():
                for listener in [e for e in entries if e.collection.database is owner]:
                    listener.active = False
                    entries.remove(listener)
