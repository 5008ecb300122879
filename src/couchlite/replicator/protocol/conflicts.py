"""Couchbase Lite 3.x's default conflict rule (notes §8; ``ConflictResolver.cc``): a deletion
wins; else the higher generation; else the greater revID by byte comparison."""

from __future__ import annotations

from couchlite.model.revid import generation
from couchlite.replicator.store import ConflictingRevisions


def default_resolution(conflict: ConflictingRevisions) -> bytes | None:
    """The body of the resolution (``None``: the document is deleted)."""
    if conflict.local_body is None or conflict.remote_body is None:
        return None
    local_gen, remote_gen = generation(conflict.local_rev), generation(conflict.remote_rev)
    if local_gen != remote_gen:
        return conflict.local_body if local_gen > remote_gen else conflict.remote_body
    if conflict.local_rev.encode() > conflict.remote_rev.encode():
        return conflict.local_body
    return conflict.remote_body


__all__ = ["default_resolution"]
