"""Per-document results and progress, handed to the façade in batches.

Results are collected and handed over every ``EVENT_FLUSH_INTERVAL_S``, never one callback per
document; "idle" is announced only after the results that precede it. A failing callback
belongs to the façade and never stops replication.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from couchlite._tuning import EVENT_FLUSH_INTERVAL_S
from couchlite.replicator.options import NullEvents, SessionEvents
from couchlite.replicator.store import CollectionStore
from couchlite.replicator.types import DocumentFlags, ReplicatedDocument

logger = logging.getLogger("couchlite.replicator")


def doc_flags(deleted: bool) -> DocumentFlags:
    return DocumentFlags.DELETED if deleted else DocumentFlags.NONE


class Reporter:
    """Collects per-document results and progress; hands them to the façade in batches."""

    def __init__(self, events: SessionEvents | None) -> None:
        self._events: SessionEvents = events if events is not None else NullEvents()
        self._docs: dict[bool, list[ReplicatedDocument]] = {True: [], False: []}
        self.completed = 0
        self.total = 0
        self._reported = (-1, -1)
        self._timer: asyncio.TimerHandle | None = None
        self._busy_parts: set[object] = set()
        self._busy = False

    def add_total(self, n: int) -> None:
        self.total += n
        self._schedule()

    def add_completed(self, n: int = 1) -> None:
        self.completed += n
        self._schedule()

    def document(self, is_push: bool, doc: ReplicatedDocument, *, count: bool = True) -> None:
        self._docs[is_push].append(doc)
        if count:
            self.completed += 1
        self._schedule()

    def result(
        self,
        is_push: bool,
        store: CollectionStore,
        doc_id: str,
        deleted: bool,
        error: Any = None,
        *,
        count: bool = True,
    ) -> None:
        """Report one document of ``store`` (``error``: a ``CouchliteError`` or ``None``)."""
        self.document(
            is_push,
            ReplicatedDocument(doc_id, store.scope_name, store.name, doc_flags(deleted), error),
            count=count,
        )

    def set_busy(self, part: object, busy: bool) -> None:
        """Activity is the OR of every part's (pusher, puller...) own busy state."""
        if busy:
            self._busy_parts.add(part)
        else:
            self._busy_parts.discard(part)
        now = bool(self._busy_parts)
        if now != self._busy:
            self._busy = now
            if not now:
                self.flush()  # results before "idle", as a façade expects
            self._safe(self._events.activity_changed, now)

    @property
    def busy(self) -> bool:
        return self._busy

    def _schedule(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(EVENT_FLUSH_INTERVAL_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for is_push in (True, False):
            docs = self._docs[is_push]
            if docs:
                self._docs[is_push] = []
                self._safe(self._events.documents_replicated, is_push, docs)
        progress = (self.completed, max(self.total, self.completed))
        if progress != self._reported:
            self._reported = progress
            self._safe(self._events.progress, *progress)

    def close(self) -> None:
        self.flush()

    @staticmethod
    def _safe(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            logger.exception("replication event callback failed")


__all__ = ["Reporter", "doc_flags"]
