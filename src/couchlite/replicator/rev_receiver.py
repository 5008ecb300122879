"""Turning a received ``rev`` into a revision to insert (notes §4.8, §6.3; interop fact 10).

The message itself is parsed and validated by
:class:`~couchlite.replicator.protocol.revs.Rev`. A ``rev`` with ``deltaSrc`` carries a JSON
delta against that revision: :func:`expand_delta` applies it to the local body of the base
(``document_body``) before anything else looks at the revision (filter, blobs, insertion), so
the rest of the receiver only ever sees full bodies. A base we do not have, or a delta that
does not fit it, is answered ``HTTP``/422 and the sender resends the full body. A delta is
applied even if this side did not advertise ``deltas``: refusing a well-formed one would only
cost the peer a round trip. As LiteCore does with what arrives from a peer, every top-level
``_`` property of the result is dropped (``model.legacy``).

:func:`expand_delta` reads the store: it runs on the session's store thread.
"""

from __future__ import annotations

import dataclasses

import orjson

from couchlite.model.jsondelta import CorruptDeltaError, apply_delta
from couchlite.model.legacy import has_old_meta_properties, strip_old_meta_properties
from couchlite.replicator.protocol.revs import Rev
from couchlite.replicator.protocol.wire import http_reply
from couchlite.replicator.store import CollectionStore, IncomingRevision


def expand_delta(store: CollectionStore, rev: Rev) -> Rev:
    """``rev`` with its delta applied to the local base: a full body (see the module
    docstring); ``HTTP``/422 when the base is unknown or the delta does not apply."""
    if rev.delta_src is None:
        return rev
    base = store.document_body(rev.doc_id, rev.delta_src)
    if base is None:
        raise http_reply(422, f"unknown delta base {rev.delta_src} of {rev.doc_id!r}")
    try:
        applied = apply_delta(orjson.loads(base), orjson.loads(rev.body))
        if isinstance(applied, dict) and has_old_meta_properties(applied):
            applied = strip_old_meta_properties(applied)
        body = orjson.dumps(applied)
    except (CorruptDeltaError, orjson.JSONDecodeError, orjson.JSONEncodeError) as exc:
        raise http_reply(422, f"invalid delta for {rev.doc_id!r}: {exc}") from None
    return dataclasses.replace(rev, body=body, delta_src=None)


def incoming(rev: Rev, *, no_conflicts: bool) -> IncomingRevision:
    return IncomingRevision(
        rev.doc_id, rev.rev_id, rev.history, rev.body, rev.deleted, no_conflicts
    )


__all__ = ["expand_delta", "incoming"]
