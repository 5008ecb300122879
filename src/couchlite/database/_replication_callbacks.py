"""The user's replication callbacks, adapted to the byte-level calls the engine makes.

A push or pull filter is written against a read-only ``Document``; the engine holds a revision
as ``(doc_id, rev_id, deleted, body bytes)``. A conflict resolver takes a ``Conflict`` of two
``Document`` objects and answers with a document (or ``None`` for a deletion); the engine wants
the body bytes of the resolution. Building ``Document`` objects is the database's business, so
the adaptation lives here and the replicator only sees the results
(``CollectionStore.revision_filter`` / ``revision_resolver``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any

from couchlite.database.blob import Blob
from couchlite.database.document import Document, MutableDocument
from couchlite.errors import InvalidArgumentError
from couchlite.model.canonical import canonical_json, encode_date
from couchlite.replicator.store import ConflictingRevisions, RevisionFilter, RevisionResolver
from couchlite.replicator.types import Conflict, DocumentFlags

if TYPE_CHECKING:
    from couchlite.database.collection import Collection
    from couchlite.replicator.config import ConflictResolver, ReplicationFilter

logger = logging.getLogger("couchlite.replicator")


def revision_filter(
    collection: Collection, fn: ReplicationFilter, direction: str
) -> RevisionFilter:
    """``fn`` as the engine calls it: a filter that raises skips the document, as in
    Couchbase Lite (the document is not replicated)."""

    def keep(doc_id: str, rev_id: str, deleted: bool, body: bytes) -> bool:
        document = Document(collection, doc_id, rev_id, 0, body, deleted)
        flags = DocumentFlags.DELETED if deleted else DocumentFlags.NONE
        try:
            return bool(fn(document, flags))
        except Exception:
            logger.exception("%s filter raised for document %r; skipping it", direction, doc_id)
            return False

    return keep


def revision_resolver(collection: Collection, fn: ConflictResolver) -> RevisionResolver:
    """``fn`` as the engine calls it: a coroutine function runs on the loop; a plain one may
    block (reading the database, asking a user...), so it runs off the loop, and the
    connection keeps answering pings meanwhile."""

    async def resolve(revisions: ConflictingRevisions) -> bytes | None:
        doc_id = revisions.doc_id
        local = _side(collection, doc_id, revisions.local_rev, revisions.local_body)
        remote = _side(collection, doc_id, revisions.remote_rev, revisions.remote_body)
        conflict = Conflict(doc_id, local, remote)
        if inspect.iscoroutinefunction(fn):
            result = await fn(conflict)
        else:
            result = await asyncio.to_thread(fn, conflict)
            if inspect.isawaitable(result):
                result = await result
        return resolution_body(result, collection, doc_id)

    return resolve


def _side(collection: Collection, doc_id: str, rev_id: str, body: bytes | None) -> Document | None:
    return None if body is None else Document(collection, doc_id, rev_id, 0, body)


def resolution_body(result: object, collection: Collection, doc_id: str) -> bytes | None:
    """The body bytes of a resolver's answer; ``None`` means "delete the document".

    Blobs: a ``MutableDocument`` may hold ``Blob`` objects, new ones included; they are written
    to the local blob store here. A read-only ``Document`` is taken as stored, so its blobs must
    already be in this database (true of both sides of the conflict).
    """
    if result is None:
        return None
    if not isinstance(result, Document):
        raise InvalidArgumentError(
            f"a conflict resolver must return a Document or None, not {type(result).__name__}"
        )
    if result.id != doc_id:
        # Couchbase Lite warns and uses the resolution's content for the conflicted document.
        logger.warning("conflict resolver for %r returned document %r", doc_id, result.id)
    if isinstance(result, MutableDocument):
        store = collection._blob_store()

        def encode_blob(value: Any) -> Any:
            if isinstance(value, Blob):
                return value._install(store)
            return encode_date(value)  # dates as a save writes them; anything else refused

        return canonical_json(result.to_dict(), encode_blob)
    return result.to_json().encode("utf-8")
