"""Reading and saving the checkpoint of one collection in an active session (notes §9, §4.3,
§4.4; interop fact 4).

What a checkpoint holds, its ID and how the local and the peer's copies are reconciled are in
:mod:`couchlite.replicator.protocol.checkpoints`. It is stored twice: locally
(``set_local_checkpoint``, on the session's store thread) and on the peer (``setCheckpoint``,
an MVCC document with an opaque ``rev``). ``reset=True`` ignores both copies at the start (but
keeps the peer's ``rev`` to overwrite it). A save sends ``setCheckpoint`` with the peer's
``rev`` (present but empty the first time); on 409 the current ``rev`` is re-read with
``getCheckpoint`` and the save retried (``CHECKPOINT_CONFLICT_RETRIES``); the local copy is
written only after the peer acknowledged.
"""

from __future__ import annotations

import logging

from couchlite._tuning import CHECKPOINT_CONFLICT_RETRIES
from couchlite.blip import BlipErrorReply
from couchlite.errors import CouchliteError, DatabaseClosedError
from couchlite.replicator.collection_context import CollectionContext
from couchlite.replicator.error_mapping import remote_error
from couchlite.replicator.protocol.checkpoints import (
    CheckpointReply,
    CheckpointState,
    GetCheckpoint,
    SetCheckpoint,
    reconcile,
)
from couchlite.replicator.store import DatabaseStore
from couchlite.replicator.store_worker import StoreWorker
from couchlite.transport.blip_connection import BlipConnection

logger = logging.getLogger("couchlite.replicator")


class Checkpointer:
    """The checkpoint of one collection in an active session."""

    def __init__(
        self,
        connection: BlipConnection,
        db: DatabaseStore,
        calls: StoreWorker,
        context: CollectionContext,
        checkpoint_id: str,
        *,
        reset: bool,
    ) -> None:
        self.connection = connection
        self.db = db
        self._calls = calls
        self.context = context
        self.id = checkpoint_id
        self.reset = reset
        self.remote_rev: str | None = None
        self.start = CheckpointState()
        self.saved: CheckpointState | None = None
        self.had_local = False

    async def begin(self, remote_body: bytes | None, remote_rev: str | None) -> CheckpointState:
        """Decide the starting point from the local body and the peer's answer."""
        self.remote_rev = remote_rev or None
        local = CheckpointState.parse(await self._calls.call(self.db.get_local_checkpoint, self.id))
        self.had_local = local is not None
        remote = CheckpointState.parse(remote_body)
        self.start = CheckpointState() if self.reset else reconcile(local, remote)
        self.saved = self.start
        return self.start

    async def fetch_remote(self) -> tuple[bytes | None, str | None]:
        """``getCheckpoint``: the peer's body and rev, ``(None, None)`` when it has none."""
        out = GetCheckpoint(self.id).to_message(self.context.address)
        try:
            reply = await self.connection.request(out.properties)
        except BlipErrorReply as exc:
            if exc.code == 404 and exc.error_domain in ("HTTP", "BLIP"):
                return None, None
            raise remote_error(exc, "getCheckpoint failed") from exc
        answer = CheckpointReply.parse(reply)
        return answer.body, answer.rev

    async def save(self, state: CheckpointState) -> None:
        """Save on the peer, then locally; no-op when nothing changed since the last save."""
        if self.saved is not None and (state.local, state.remote) == (
            self.saved.local,
            self.saved.remote,
        ):
            return
        body = state.encode()
        for attempt in range(CHECKPOINT_CONFLICT_RETRIES + 1):
            out = SetCheckpoint(self.id, body, self.remote_rev).to_message(self.context.address)
            try:
                reply = await self.connection.request(out.properties, out.body)
            except BlipErrorReply as exc:
                if exc.code == 409 and attempt < CHECKPOINT_CONFLICT_RETRIES:
                    _, self.remote_rev = await self.fetch_remote()
                    continue
                raise remote_error(exc, "setCheckpoint failed") from exc
            self.remote_rev = reply.properties.get("rev") or self.remote_rev
            break
        try:
            await self._calls.call(self.db.set_local_checkpoint, self.id, body)
        except DatabaseClosedError:
            raise  # closed under the session: it ends with this error, nothing is broken
        except CouchliteError:
            logger.exception("could not save checkpoint %s locally", self.id)
            raise
        self.saved = state


__all__ = ["Checkpointer"]
