"""Engine-level options of a replication session, and the callbacks it reports through.

The public ``ReplicatorConfiguration`` (another module) is translated by the façade into these
plain objects, one :class:`SessionCollectionOptions` per replicated collection; the sessions
(:mod:`couchlite.replicator.active`, :mod:`couchlite.replicator.passive`) never see the public
configuration. :class:`SessionEvents` is what the sessions call back, always on the event loop.
Filters and resolvers are the store's adaptations of the user's callbacks
(``RevisionFilter``/``RevisionResolver`` of :mod:`couchlite.replicator.store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from couchlite.replicator.store import CollectionStore, RevisionFilter, RevisionResolver
from couchlite.replicator.types import ReplicatedDocument


@dataclass
class SessionCollectionOptions:
    """How one collection is replicated by an ``ActiveSession``."""

    store: CollectionStore
    document_ids: frozenset[str] | None = None
    push_filter: RevisionFilter | None = None
    pull_filter: RevisionFilter | None = None
    #: ``None``: Couchbase Lite 3.x's default rule (notes §8).
    conflict_resolver: RevisionResolver | None = None


class SessionEvents(Protocol):
    """Callbacks to the façade; called on the event loop, so they must not block."""

    def activity_changed(self, busy: bool) -> None: ...

    def progress(self, completed: int, total: int) -> None: ...

    def documents_replicated(self, is_push: bool, documents: list[ReplicatedDocument]) -> None: ...


class NullEvents:
    """The events sink used when the caller passes none."""

    def activity_changed(self, busy: bool) -> None:
        pass

    def progress(self, completed: int, total: int) -> None:
        pass

    def documents_replicated(self, is_push: bool, documents: list[ReplicatedDocument]) -> None:
        pass


__all__ = ["NullEvents", "SessionCollectionOptions", "SessionEvents"]
