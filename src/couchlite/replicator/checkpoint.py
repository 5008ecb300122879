"""Checkpoints of an active session: their IDs, bodies, reconciliation and saving (notes §9,
§4.3, §4.4; interop fact 4).

Theory of operation
-------------------
A checkpoint records, per (local database, remote, collection, filter configuration), how far
each direction got: ``local`` -- the highest local sequence such that every earlier change was
pushed (or deliberately skipped) -- and ``remote`` -- the highest remote sequence such that every
earlier requested revision was pulled. It is stored twice: locally (``set_local_checkpoint``)
and on the peer (``setCheckpoint``, an MVCC document with an opaque ``rev``).

* **ID**: ``"cp-" + base64(digest)`` over a stable serialization (canonical JSON) of the
  private UUID, [for a named collection: its name, scope, pull and push flags], the remote URL
  and, when filtered, the sorted document IDs -- the same ingredients LiteCore hashes (SHA-1 for
  the default collection, SHA-256 otherwise). The peer treats it as opaque.
* **Start**: the local body is compared with the peer's (``getCheckpoint``, or the
  ``getCollections`` reply). If either is missing, replication starts from scratch; if they
  disagree, the lower (older) value of each direction wins, as LiteCore's ``validateWith``
  does. ``reset=True`` ignores both (but keeps the peer's ``rev`` to overwrite it).
* **Save**: ``setCheckpoint`` with the peer's ``rev`` (present but empty the first time); on 409
  the current ``rev`` is re-read with ``getCheckpoint`` and the save retried; the local copy is
  written only after the peer acknowledged. Body: ``{"time", "local", "remote"}`` with zero /
  absent values omitted.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from couchlite._tuning import MAX_CHECKPOINT_BODY_SIZE
from couchlite.blip import BlipErrorReply
from couchlite.errors import CouchliteError, DatabaseClosedError, InvalidArgumentError
from couchlite.model.canonical import check_json_text
from couchlite.replicator._common import (
    CHECKPOINT_CONFLICT_RETRIES,
    CollectionContext,
    remote_error,
)
from couchlite.replicator.store import DatabaseStore
from couchlite.transport.blip_connection import BlipConnection

logger = logging.getLogger(__name__)


def checkpoint_id(
    private_uuid: str,
    remote_url: str,
    scope: str,
    name: str,
    *,
    pull: bool,
    push: bool,
    document_ids: Iterable[str] | None,
) -> str:
    """The checkpoint ID of one collection's replication with one remote (notes §9.1)."""
    is_default = scope == "_default" and name == "_default"
    parts: list[Any] = [private_uuid]
    if not is_default:
        parts += [name, scope, pull, push]
    parts.append(remote_url)
    if document_ids is not None:
        # channels, filter, filterParams are unused by couchlite; their slots keep the layout
        parts += [None, None, None, sorted(document_ids) or None]
    data = orjson.dumps(parts)
    digest = hashlib.sha1(data).digest() if is_default else hashlib.sha256(data).digest()
    return "cp-" + base64.b64encode(digest).decode("ascii")


@dataclass
class CheckpointState:
    """The two positions a checkpoint records."""

    local: int = 0
    remote: Any = None

    @classmethod
    def parse(cls, body: bytes | None) -> CheckpointState | None:
        """The positions of a checkpoint body; ``None`` (start from scratch) when it is missing
        or unusable -- also when a peer sent one larger than checkpoints are, or holding JSON
        the local API could not (its ``remote`` is echoed back in ``subChanges``)."""
        if not body or len(body) > MAX_CHECKPOINT_BODY_SIZE:
            return None
        try:
            check_json_text(body)
            value = orjson.loads(body)
        except (InvalidArgumentError, orjson.JSONDecodeError):
            return None
        if not isinstance(value, dict):
            return None
        local = value.get("local", 0)
        return cls(local if isinstance(local, int) and local >= 0 else 0, value.get("remote"))

    def encode(self) -> bytes:
        body: dict[str, Any] = {"time": int(time.time())}
        if self.local:
            body["local"] = self.local
        if self.remote not in (None, 0, ""):
            body["remote"] = self.remote
        return orjson.dumps(body)


def reconcile(local: CheckpointState | None, remote: CheckpointState | None) -> CheckpointState:
    """Where to start from a local and a remote checkpoint body (LiteCore ``validateWith``)."""
    if local is None or remote is None:
        return CheckpointState()
    result = CheckpointState(min(local.local, remote.local), local.remote)
    if local.remote != remote.remote:
        a, b = local.remote, remote.remote
        if isinstance(a, int) and isinstance(b, int):
            result.remote = min(a, b)
        else:
            result.remote = None  # not comparable: pull from the start
    return result


class Checkpointer:
    """The checkpoint of one collection in an active session."""

    def __init__(
        self,
        connection: BlipConnection,
        db: DatabaseStore,
        context: CollectionContext,
        checkpoint_id: str,
        *,
        reset: bool,
    ) -> None:
        self.connection = connection
        self.db = db
        self.context = context
        self.id = checkpoint_id
        self.reset = reset
        self.remote_rev: str | None = None
        self.start = CheckpointState()
        self.saved: CheckpointState | None = None
        self.had_local = False

    def load_local(self) -> CheckpointState | None:
        state = CheckpointState.parse(self.db.get_local_checkpoint(self.id))
        self.had_local = state is not None
        return state

    def begin(self, remote_body: bytes | None, remote_rev: str | None) -> CheckpointState:
        """Decide the starting point from the local body and the peer's answer."""
        self.remote_rev = remote_rev or None
        local = self.load_local()
        remote = CheckpointState.parse(remote_body)
        self.start = CheckpointState() if self.reset else reconcile(local, remote)
        self.saved = CheckpointState(self.start.local, self.start.remote)
        return self.start

    async def fetch_remote(self) -> tuple[bytes | None, str | None]:
        """``getCheckpoint``: the peer's body and rev, ``(None, None)`` when it has none."""
        props = self.context.props("getCheckpoint")
        props["client"] = self.id
        try:
            reply = await self.connection.request(props)
        except BlipErrorReply as exc:
            if exc.code == 404 and exc.error_domain in ("HTTP", "BLIP"):
                return None, None
            raise remote_error(exc, "getCheckpoint failed") from exc
        return reply.body, reply.properties.get("rev")

    async def save(self, state: CheckpointState) -> None:
        """Save on the peer, then locally; no-op when nothing changed since the last save."""
        if self.saved is not None and (state.local, state.remote) == (
            self.saved.local,
            self.saved.remote,
        ):
            return
        body = state.encode()
        for attempt in range(CHECKPOINT_CONFLICT_RETRIES + 1):
            props = self.context.props("setCheckpoint")
            props["client"] = self.id
            props["rev"] = self.remote_rev or ""
            try:
                reply = await self.connection.request(props, body)
            except BlipErrorReply as exc:
                if exc.code == 409 and attempt < CHECKPOINT_CONFLICT_RETRIES:
                    _, self.remote_rev = await self.fetch_remote()
                    continue
                raise remote_error(exc, "setCheckpoint failed") from exc
            self.remote_rev = reply.properties.get("rev") or self.remote_rev
            break
        try:
            self.db.set_local_checkpoint(self.id, body)
        except DatabaseClosedError:
            raise  # closed under the session: it ends with this error, nothing is broken
        except CouchliteError:
            logger.exception("could not save checkpoint %s locally", self.id)
            raise
        self.saved = CheckpointState(state.local, state.remote)


__all__ = ["CheckpointState", "Checkpointer", "checkpoint_id", "reconcile"]
