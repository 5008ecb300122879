"""Conflict resolution on the active puller (notes §8; interop fact 8).

Theory of operation
-------------------
A conflict appears only on an active puller: the remote revision is inserted as a branch next
to the local one (``insert_revisions`` reports ``conflicted``). Resolution then happens locally,
never on the wire: the two branches go to a resolver -- the user's (adapted by the store,
``CollectionStore.revision_resolver``) or Couchbase Lite 3.x's default rule
(:func:`~couchlite.replicator.protocol.conflicts.default_resolution`) -- and the chosen body is
saved with ``resolve_conflict`` as a child of the *remote* revision, closing the local branch.
With the default rule the resolution is made in the same store call as the insert that caused
the conflict (:func:`resolve_by_default`): the conflicted state is never visible to the pusher.
That is a new local change, so the pusher sends it next, with a ``history`` that contains the
remote revision the peer already has. Reading the branches and saving the resolution run on
the session's store thread; the resolver is awaited on the loop (the store's adapter runs a
blocking one on a thread of its own).

A resolver that raises, times out (``RESOLVER_TIMEOUT_S``), or returns something that is not a
JSON object body (or ``None``) is reported as a document error and the document simply stays
conflicted: the next session resolves it again. It never wedges the session.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from couchlite._tuning import RESOLVE_ATTEMPTS, RESOLVER_TIMEOUT_S
from couchlite.errors import ConflictError, CouchliteError
from couchlite.replicator.protocol.conflicts import default_resolution
from couchlite.replicator.store import CollectionStore, ConflictingRevisions, RevisionResolver
from couchlite.replicator.store_worker import StoreWorker

logger = logging.getLogger("couchlite.replicator")


def resolve_by_default(
    store: CollectionStore, doc_id: str, remote_rev: str
) -> CouchliteError | None:
    """On the store thread: resolve with the default rule. The inserter runs this in the same
    call as the insert that made the conflict, so no reader of the store (the pusher's feed)
    ever sees the conflicted state in between."""
    for _ in range(RESOLVE_ATTEMPTS):
        conflict = store.conflicting_revisions(doc_id, remote_rev)
        if conflict is None:
            return None
        body = default_resolution(conflict)
        try:
            store.resolve_conflict(doc_id, conflict.local_rev, conflict.remote_rev, body)
        except ConflictError:
            continue  # a branch moved meanwhile: look again
        except CouchliteError as exc:
            return exc
        return None
    return _kept_changing(doc_id)


def _kept_changing(doc_id: str) -> ConflictError:
    return ConflictError(
        f"could not resolve the conflict of {doc_id!r}: the document kept changing"
    )


async def _run_resolver(
    resolver: RevisionResolver | None, conflict: ConflictingRevisions
) -> bytes | None:
    if resolver is None:
        return default_resolution(conflict)
    async with asyncio.timeout(RESOLVER_TIMEOUT_S):
        result: object = await resolver(conflict)
    if result is None:
        return None
    if isinstance(result, bytes | bytearray | memoryview):
        body = bytes(result)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return body
    raise CouchliteError(
        f"conflict resolver returned {type(result).__name__}, not a JSON object body or None"
    )


async def resolve_conflict(
    store: CollectionStore,
    calls: StoreWorker,
    doc_id: str,
    remote_rev: str,
    resolver: RevisionResolver | None,
) -> CouchliteError | None:
    """Resolve ``doc_id`` if it is conflicted with ``remote_rev``; the error to report, if
    any (the document then stays conflicted)."""
    for _ in range(RESOLVE_ATTEMPTS):
        conflict = await calls.call(store.conflicting_revisions, doc_id, remote_rev)
        if conflict is None:
            return None
        try:
            body = await _run_resolver(resolver, conflict)
        except CouchliteError as exc:
            return exc
        except Exception as exc:  # the user's code: any exception becomes a document error
            logger.warning("conflict resolver for %r raised %r", doc_id, exc)
            error = CouchliteError(f"conflict resolver failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            return error
        try:
            await calls.call(
                store.resolve_conflict, doc_id, conflict.local_rev, conflict.remote_rev, body
            )
        except ConflictError:
            continue  # a branch moved while the resolver ran: look again
        except CouchliteError as exc:
            return exc
        return None
    return _kept_changing(doc_id)


__all__ = ["resolve_by_default", "resolve_conflict"]
