"""One replicated collection of a session: its store, how messages address it, and the
revision bookkeeping both sessions keep per collection."""

from __future__ import annotations

from dataclasses import dataclass, field

from couchlite.replicator.protocol.revisions import PeerRevisions, RequestedRevisions
from couchlite.replicator.protocol.wire import start_properties
from couchlite.replicator.store import CollectionStore


@dataclass(eq=False)
class CollectionContext:
    """One replicated collection of a session."""

    index: int
    store: CollectionStore
    #: ``{"collection": "<index>"}`` in collection-aware mode, empty in legacy mode (notes §4.1)
    address: dict[str, str] = field(default_factory=dict)
    #: what the peer pushed to us in this session (passive side): not announced back (no echo)
    peer_revs: PeerRevisions = field(default_factory=PeerRevisions)
    #: what the peer was told to send us (passive side: accepted proposals and wanted changes)
    requested: RequestedRevisions = field(default_factory=RequestedRevisions)

    @property
    def path(self) -> str:
        """The collection's name as ``getCollections`` writes it (default scope omitted)."""
        if self.store.scope_name == "_default":
            return self.store.name
        return f"{self.store.scope_name}.{self.store.name}"

    def props(self, profile: str) -> dict[str, str]:
        """A fresh property dict starting with ``Profile`` then ``collection`` (wire order)."""
        return start_properties(profile, self.address)


__all__ = ["CollectionContext"]
