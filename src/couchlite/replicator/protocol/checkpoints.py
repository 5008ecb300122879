"""Checkpoints on the wire and in memory (notes §9, §4.3, §4.4; interop fact 4).

A checkpoint records, per (local database, remote, collection, filter configuration), how far
each direction got: ``local`` -- the highest local sequence such that every earlier change was
pushed (or deliberately skipped) -- and ``remote`` -- the highest remote sequence such that every
earlier requested revision was pulled.

* **ID** (:func:`checkpoint_id`): ``"cp-" + base64(digest)`` over a stable serialization
  (canonical JSON) of the private UUID, [for a named collection: its name, scope, pull and push
  flags], the remote URL and, when filtered, the sorted document IDs -- the same ingredients
  LiteCore hashes (SHA-1 for the default collection, SHA-256 otherwise).
* **Start** (:func:`reconcile`): if the local or the peer's body is missing, replication starts
  from scratch; if they disagree, the lower (older) value of each direction wins, as LiteCore's
  ``validateWith`` does.
* **Body** (:class:`CheckpointState`): ``{"time", "local", "remote"}``, zero / absent values
  omitted.
* **Messages**: ``getCheckpoint``/``setCheckpoint`` (``client`` = the ID; the peer's MVCC
  ``rev``, ``<n>-cc`` when we are the peer) and ``getCollections`` (the IDs of every collection
  at once; its reply carries each body plus ``rev``/``_rev``). A passive side bounds what it
  accepts: IDs of at most ``MAX_CHECKPOINT_ID_LENGTH`` (``BLIP``/400), bodies of at most
  ``MAX_CHECKPOINT_BODY_SIZE`` (``HTTP``/413) that are JSON objects (``HTTP``/400).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from couchlite._tuning import MAX_CHECKPOINT_BODY_SIZE, MAX_CHECKPOINT_ID_LENGTH
from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import CouchliteError, InvalidArgumentError, ProtocolError
from couchlite.model.canonical import check_json_text
from couchlite.replicator.protocol.wire import (
    Outgoing,
    checked_json,
    http_reply,
    start_properties,
)

#: The revisions a passive side hands out for the checkpoints it keeps (``<n>-cc``, notes §4.4)
CHECKPOINT_REV = re.compile(r"[1-9][0-9]{0,15}-cc")


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


@dataclass(frozen=True)
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
    start_remote = local.remote
    if local.remote != remote.remote:
        a, b = local.remote, remote.remote
        # not comparable: pull from the start
        start_remote = min(a, b) if isinstance(a, int) and isinstance(b, int) else None
    return CheckpointState(min(local.local, remote.local), start_remote)


def _client(message: Message) -> str:
    client = message.properties.get("client")
    if not client:
        raise BlipErrorReply("BLIP", 400, "missing checkpoint ID")
    if len(client) > MAX_CHECKPOINT_ID_LENGTH:
        raise BlipErrorReply("BLIP", 400, "checkpoint ID too long")
    return client


def _check_body(body: bytes) -> None:
    """A checkpoint body must be a JSON object the local API could hold (HTTP/400)."""
    try:
        check_json_text(body)
        parsed = orjson.loads(body)
    except (InvalidArgumentError, orjson.JSONDecodeError):
        parsed = None
    if not isinstance(parsed, dict):
        raise http_reply(400, "checkpoint body is not a JSON object")


@dataclass(frozen=True, slots=True)
class GetCheckpoint:
    client: str

    def to_message(self, address: Mapping[str, str]) -> Outgoing:
        props = start_properties("getCheckpoint", address)
        props["client"] = self.client
        return Outgoing(props)

    @classmethod
    def parse(cls, message: Message) -> GetCheckpoint:
        return cls(_client(message))


@dataclass(frozen=True, slots=True)
class CheckpointReply:
    """The answer to ``getCheckpoint`` (body and ``rev``) or ``setCheckpoint`` (``rev``)."""

    rev: str | None
    body: bytes = b""

    def to_reply(self) -> tuple[dict[str, str], bytes]:
        return ({"rev": self.rev} if self.rev is not None else {}), self.body

    @classmethod
    def parse(cls, reply: Message) -> CheckpointReply:
        return cls(reply.properties.get("rev"), reply.body)


@dataclass(frozen=True, slots=True)
class SetCheckpoint:
    client: str
    body: bytes
    #: the revision being replaced; ``None`` for a first save (sent as an empty ``rev``)
    rev: str | None = None

    def to_message(self, address: Mapping[str, str]) -> Outgoing:
        props = start_properties("setCheckpoint", address)
        props["client"] = self.client
        props["rev"] = self.rev or ""
        return Outgoing(props, self.body)

    @classmethod
    def parse(cls, message: Message) -> SetCheckpoint:
        """As a passive side bounds it (module docstring); a ``rev`` that is not one we hand
        out is ``HTTP``/400."""
        client = _client(message)
        body = message.body
        if len(body) > MAX_CHECKPOINT_BODY_SIZE:
            raise http_reply(413, f"checkpoint larger than {MAX_CHECKPOINT_BODY_SIZE} bytes")
        _check_body(body)
        rev = message.properties.get("rev") or None
        if rev is not None and not CHECKPOINT_REV.fullmatch(rev):
            raise http_reply(400, "invalid checkpoint revision")
        return cls(client, body, rev)


def _checkpoint_id_ok(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_CHECKPOINT_ID_LENGTH


@dataclass(frozen=True, slots=True)
class GetCollections:
    """The first message of a collection-aware session: checkpoints of every collection."""

    checkpoint_ids: tuple[str, ...]
    #: ``scope.name`` paths (the default scope omitted)
    collections: tuple[str, ...]

    def to_message(self) -> Outgoing:
        body = {"checkpoint_ids": list(self.checkpoint_ids), "collections": list(self.collections)}
        return Outgoing({"Profile": "getCollections"}, orjson.dumps(body))

    @classmethod
    def parse(cls, message: Message) -> GetCollections:
        """``BLIP``/400 for anything but equally long, non-empty lists of valid IDs and of
        distinct paths."""
        try:
            request = checked_json(message)
        except BlipErrorReply:
            request = None
        if not isinstance(request, dict):
            raise BlipErrorReply("BLIP", 400, "Invalid getCollections message: no body")
        ids, paths = request.get("checkpoint_ids"), request.get("collections")
        if not isinstance(ids, list) or not ids or not all(_checkpoint_id_ok(i) for i in ids):
            raise BlipErrorReply("BLIP", 400, "Invalid getCollections message: checkpoint_ids")
        if not isinstance(paths, list) or not paths:
            raise BlipErrorReply("BLIP", 400, "Invalid getCollections message: collections")
        if len(ids) != len(paths):
            raise BlipErrorReply("BLIP", 400, "Invalid getCollections message: length mismatch")
        if not all(isinstance(p, str) and p for p in paths) or len(set(paths)) != len(paths):
            raise BlipErrorReply("BLIP", 400, "Invalid getCollections message: bad collections")
        return cls(tuple(ids), tuple(paths))


@dataclass(frozen=True, slots=True)
class GetCollectionsReply:
    """Per requested collection: ``None`` when the peer does not share it, else its checkpoint
    as ``(body or None, rev or None)``."""

    entries: tuple[CheckpointReply | None, ...]

    def to_reply(self) -> bytes:
        """The body: ``null``, ``{}``, or the checkpoint body plus both ``rev`` and ``_rev``
        (LiteCore's and Sync Gateway's spellings)."""
        answers: list[Any] = []
        for entry in self.entries:
            if entry is None:
                answers.append(None)
                continue
            found: dict[str, Any] = {}
            if entry.rev is not None:
                try:
                    parsed = orjson.loads(entry.body)
                except orjson.JSONDecodeError:
                    parsed = None
                if isinstance(parsed, dict):
                    found = parsed
                found["rev"] = entry.rev
                found["_rev"] = entry.rev
            answers.append(found)
        return orjson.dumps(answers)

    @classmethod
    def parse(cls, reply: Message, expected: int) -> GetCollectionsReply:
        """``ProtocolError`` unless it is a list of ``expected`` objects or nulls."""
        try:
            check_json_text(reply.body)
            entries = reply.json()
        except CouchliteError:
            entries = None
        if not isinstance(entries, list) or len(entries) != expected:
            raise ProtocolError("invalid getCollections reply")
        result: list[CheckpointReply | None] = []
        for entry in entries:
            if entry is None:
                result.append(None)
                continue
            if not isinstance(entry, dict):
                raise ProtocolError("invalid getCollections reply entry")
            rev = entry.pop("rev", None) or entry.pop("_rev", None)
            entry.pop("_rev", None)
            result.append(CheckpointReply(rev, orjson.dumps(entry) if entry else b""))
        return cls(tuple(result))


def checkpoint_replies(found: Sequence[tuple[str, bytes] | None]) -> list[CheckpointReply]:
    """``get_peer_checkpoint`` results as reply entries (``None``: no checkpoint yet)."""
    return [CheckpointReply(None) if f is None else CheckpointReply(f[0], f[1]) for f in found]


__all__ = [
    "CHECKPOINT_REV",
    "CheckpointReply",
    "CheckpointState",
    "GetCheckpoint",
    "GetCollections",
    "GetCollectionsReply",
    "SetCheckpoint",
    "checkpoint_id",
    "reconcile",
]
