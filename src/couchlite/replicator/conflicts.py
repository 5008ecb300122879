"""Conflict resolution on the active puller (notes §8; interop fact 8).

Theory of operation
-------------------
A conflict appears only on an active puller: the remote revision is inserted as a branch next
to the local one (``insert_revisions`` reports ``conflicted``). Resolution then happens locally,
never on the wire: the two branches go to a resolver -- the user's (sync or async) or Couchbase
Lite 3.x's default rule -- and the chosen body is saved with ``resolve_conflict`` as a child of
the *remote* revision, closing the local branch. That is a new local change, so the pusher sends
it next, with a ``history`` that contains the remote revision the peer already has.

Default rule (CBL ≤ 3.x, ``ConflictResolver.cc``): a deletion wins; else the higher generation;
else the greater revID by byte comparison (local on a tie that favours it, else remote).

A resolver that raises, times out, or returns something that is not a JSON object body (or
``None``) is reported as a document error and the document simply stays conflicted: the next
session resolves it again. It never wedges the session.
"""

from __future__ import annotations

import asyncio
import inspect
import logging

import orjson

from couchlite.errors import ConflictError, CouchliteError
from couchlite.model.revid import generation
from couchlite.replicator._common import RESOLVER_TIMEOUT_S
from couchlite.replicator.options import ConflictResolverFn
from couchlite.replicator.store import CollectionStore, ConflictingRevisions

logger = logging.getLogger(__name__)

#: Attempts at saving a resolution when a branch changed meanwhile (``ConflictError``).
RESOLVE_ATTEMPTS = 3


def default_resolution(conflict: ConflictingRevisions) -> bytes | None:
    """Couchbase Lite 3.x's default conflict resolver (notes §8)."""
    if conflict.local_body is None or conflict.remote_body is None:
        return None
    local_gen, remote_gen = generation(conflict.local_rev), generation(conflict.remote_rev)
    if local_gen != remote_gen:
        return conflict.local_body if local_gen > remote_gen else conflict.remote_body
    if conflict.local_rev.encode() > conflict.remote_rev.encode():
        return conflict.local_body
    return conflict.remote_body


async def _run_resolver(
    resolver: ConflictResolverFn | None, conflict: ConflictingRevisions
) -> bytes | None:
    if resolver is None:
        return default_resolution(conflict)
    result = resolver(conflict)
    if inspect.isawaitable(result):
        async with asyncio.timeout(RESOLVER_TIMEOUT_S):
            result = await result
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
    doc_id: str,
    remote_rev: str,
    resolver: ConflictResolverFn | None,
) -> CouchliteError | None:
    """Resolve ``doc_id`` if it is conflicted with ``remote_rev``; the error to report, if
    any (the document then stays conflicted)."""
    for _ in range(RESOLVE_ATTEMPTS):
        conflict = store.conflicting_revisions(doc_id, remote_rev)
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
            store.resolve_conflict(doc_id, conflict.local_rev, conflict.remote_rev, body)
        except ConflictError:
            continue  # a branch moved while the resolver ran: look again
        except CouchliteError as exc:
            return exc
        return None
    return ConflictError(
        f"could not resolve the conflict of {doc_id!r}: the document kept changing"
    )


__all__ = ["default_resolution", "resolve_conflict"]
