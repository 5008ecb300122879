"""``subChanges``, ``changes``, ``proposeChanges`` and their replies (notes §4.5-§4.7; interop
facts 6, 7).

Each message is a frozen value with ``parse`` (from a received :class:`~couchlite.blip.Message`,
validated as the receiving side must: a bad body is ``BLIP``/400, one bad row ``HTTP``/400 for
the whole message, nothing acted on) and ``to_message``/``to_reply`` (properties in LiteCore's
order, so the bytes on the wire are those of a Couchbase Lite peer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from couchlite._tuning import CHANGES_BATCH_SIZE
from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import LiteCoreCode
from couchlite.model.revid import is_valid_rev_id
from couchlite.replicator.protocol.wire import (
    MAX_HISTORY,
    Outgoing,
    checked_json,
    http_reply,
    json_list_body,
    lenient_json_list,
    start_properties,
)

_REPLY_PROPS = {"maxHistory": str(MAX_HISTORY), "blobs": "true"}
_REPLY_PROPS_DELTAS = {**_REPLY_PROPS, "deltas": "true"}


def sequence_key(value: Any) -> str:
    """The key of a remote sequence: its JSON text, as the ``sequence`` property carries it."""
    return orjson.dumps(value).decode()


def _invalid(what: str, index: int) -> BlipErrorReply:
    return http_reply(400, f"Invalid entry {index} in '{what}' message")


def _reply_properties(deltas: bool, max_history: int) -> dict[str, str]:
    if max_history == MAX_HISTORY:
        return _REPLY_PROPS_DELTAS if deltas else _REPLY_PROPS
    props = {"maxHistory": str(max_history), "blobs": "true"}
    if deltas:
        props["deltas"] = "true"
    return props


def trim_zeros(answers: list[Any]) -> list[Any]:
    """``answers`` without its trailing ``0`` entries (a passive peer omits them, as LiteCore)."""
    while answers and answers[-1] == 0:
        answers.pop()
    return answers


# --- subChanges ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubChanges:
    """An active puller's subscription to the peer's changes feed."""

    #: the remote checkpoint to start after (any JSON value), ``None`` to start from scratch
    since: Any = None
    continuous: bool = False
    batch: int | None = CHANGES_BATCH_SIZE
    send_replacement_revs: bool = True
    active_only: bool = False
    revocations: bool = True
    document_ids: frozenset[str] | None = None

    def to_message(self, address: Mapping[str, str]) -> Outgoing:
        props = start_properties("subChanges", address)
        if self.since is not None:
            props["since"] = sequence_key(self.since)
        if self.continuous:
            props["continuous"] = "true"
        if self.batch is not None:
            props["batch"] = str(self.batch)
        if self.send_replacement_revs:
            props["sendReplacementRevs"] = "1"
        props["versioning"] = "rev-trees"
        if self.active_only:
            props["activeOnly"] = "true"
        if self.revocations:
            props["revocations"] = "true"
        body = b""
        if self.document_ids is not None:
            body = orjson.dumps({"docIDs": sorted(self.document_ids)})
        return Outgoing(props, body)

    @property
    def since_sequence(self) -> int:
        """``since`` as a passive peer reads it: a local sequence, 0 unless a positive int."""
        since = self.since
        return since if isinstance(since, int) and since > 0 else 0

    @classmethod
    def parse(cls, message: Message) -> SubChanges:
        """``LiteCore``/UNSUPPORTED for a ``filter``, ``LiteCore``/501 for another versioning,
        ``BLIP``/400 for a malformed body."""
        props = message.properties
        if props.get("filter"):
            raise BlipErrorReply("LiteCore", LiteCoreCode.UNSUPPORTED, "Filtering not supported")
        if props.get("versioning") not in (None, "rev-trees"):
            raise BlipErrorReply("LiteCore", 501, "Incompatible document versioning.")
        since: Any = None
        if props.get("since"):
            try:
                since = orjson.loads(props["since"])
            except orjson.JSONDecodeError:
                since = None
        document_ids: frozenset[str] | None = None
        if message.body:
            body = checked_json(message)
            if isinstance(body, dict) and isinstance(body.get("docIDs"), list):
                document_ids = frozenset(d for d in body["docIDs"] if isinstance(d, str))
        return cls(
            since,
            message.bool_property("continuous"),
            message.int_property("batch"),
            message.bool_property("sendReplacementRevs"),
            message.bool_property("activeOnly"),
            message.bool_property("revocations"),
            document_ids,
        )


# --- changes ---------------------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: one per revision, and frozen costs 5x to make
class ChangeRow:
    """One entry ``[sequence, docID, revID, deleted, bodySize]`` of a ``changes`` list."""

    sequence: Any
    doc_id: str
    rev_id: str
    #: the ``deleted`` value: bit 1 a tombstone, bits 2/4 (but not 5) an access removal
    deleted: int = 0
    body_size: int = 0

    @property
    def access_removed(self) -> bool:
        return self.deleted >= 2 and self.deleted != 5


@dataclass(frozen=True, slots=True)
class Changes:
    """A ``changes`` list; an empty one means "caught up" (sent urgent and noreply)."""

    rows: tuple[ChangeRow, ...] = ()
    no_reply: bool = False
    #: non-empty but sent noreply: it cannot be answered, so it is not acted on (notes §4.6)
    unanswerable: bool = False

    @property
    def caught_up(self) -> bool:
        return not self.rows and not self.unanswerable

    def to_message(self, address: Mapping[str, str]) -> Outgoing:
        props = start_properties("changes", address)
        if not self.rows:
            return Outgoing(props, b"[]", urgent=True, no_reply=True)
        body = orjson.dumps(
            [
                [r.sequence, r.doc_id, r.rev_id, 1 if r.deleted else 0, r.body_size]
                for r in self.rows
            ]
        )
        return Outgoing(props, body, urgent=True, compressed=True)

    @classmethod
    def parse(cls, message: Message) -> Changes:
        entries = json_list_body(message)
        if not entries:
            return cls((), message.no_reply)
        if message.no_reply:
            return cls((), True, unanswerable=True)
        rows: list[ChangeRow] = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, list) or len(entry) < 3:
                raise _invalid("changes", i)
            seq, doc_id, rev_id = entry[0], entry[1], entry[2]
            if not isinstance(doc_id, str) or not doc_id or not is_valid_rev_id(rev_id):
                raise _invalid("changes", i)
            deleted = entry[3] if len(entry) > 3 else 0
            size = entry[4] if len(entry) > 4 else 0
            rows.append(
                ChangeRow(
                    seq,
                    doc_id,
                    rev_id,
                    int(deleted) if isinstance(deleted, bool | int) else 0,
                    size if isinstance(size, int) and not isinstance(size, bool) else 0,
                )
            )
        return cls(tuple(rows))


@dataclass(frozen=True, slots=True)
class ChangesReply:
    """The answer to ``changes``: per entry ``0`` (not wanted) or the known ancestors."""

    answers: Sequence[Any]
    deltas: bool = False
    max_history: int = MAX_HISTORY

    def to_reply(self) -> tuple[dict[str, str], bytes]:
        """Properties and body (sent compressed; urgent copies the request)."""
        return _reply_properties(self.deltas, self.max_history), orjson.dumps(list(self.answers))

    @classmethod
    def parse(cls, reply: Message) -> ChangesReply:
        """Lenient, as LiteCore: a missing or malformed answer leaves its entries unwanted."""
        return cls(
            lenient_json_list(reply.body),
            reply.bool_property("deltas"),
            reply.int_property("maxHistory") or MAX_HISTORY,
        )

    def known(self, index: int) -> list[str] | None:
        """The ancestors the peer has of entry ``index``, or ``None`` when it is not wanted."""
        answer = self.answers[index] if index < len(self.answers) else 0
        if not isinstance(answer, list):
            return None
        return [r for r in answer if isinstance(r, str)]


# --- proposeChanges --------------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: one per revision, and frozen costs 5x to make
class ProposedChange:
    """One entry ``[docID, revID, serverRevID, bodySize]`` of a ``proposeChanges`` list."""

    doc_id: str
    rev_id: str
    #: the revision the proposer believes the peer has (``""`` on the wire when none)
    server_rev: str | None = None
    body_size: int = 0


@dataclass(frozen=True, slots=True)
class ProposeChanges:
    """A pusher's proposal of revisions (``conflictIncludesRev``: 409 answers name the rev)."""

    rows: tuple[ProposedChange, ...]
    conflict_includes_rev: bool = True

    def to_message(self, address: Mapping[str, str]) -> Outgoing:
        props = start_properties("proposeChanges", address)
        if self.conflict_includes_rev:
            props["conflictIncludesRev"] = "true"
        body = orjson.dumps(
            [[r.doc_id, r.rev_id, r.server_rev or "", r.body_size] for r in self.rows]
        )
        return Outgoing(props, body, urgent=True, compressed=True)

    @classmethod
    def parse(cls, message: Message) -> ProposeChanges:
        entries = json_list_body(message)
        rows: list[ProposedChange] = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, list) or len(entry) < 2:
                raise _invalid("proposeChanges", i)
            doc_id, rev_id = entry[0], entry[1]
            if not isinstance(doc_id, str) or not doc_id or not is_valid_rev_id(rev_id):
                raise _invalid("proposeChanges", i)
            server_rev = entry[2] if len(entry) > 2 and isinstance(entry[2], str) else None
            if server_rev and not is_valid_rev_id(server_rev):
                raise _invalid("proposeChanges", i)
            size = entry[3] if len(entry) > 3 else 0
            rows.append(
                ProposedChange(
                    doc_id,
                    rev_id,
                    server_rev or None,
                    size if isinstance(size, int) and not isinstance(size, bool) else 0,
                )
            )
        return cls(tuple(rows), message.bool_property("conflictIncludesRev"))


@dataclass(slots=True)  # not frozen: one per revision, and frozen costs 5x to make
class ProposalAnswer:
    """One answer to a proposal: ``0`` send it, ``304`` the peer has it, ``409`` conflict
    (``server_rev``: the peer's current revision, with ``conflictIncludesRev``); any other
    value is the peer's refusal."""

    status: Any
    server_rev: str | None = None


@dataclass(frozen=True, slots=True)
class ProposeChangesReply:
    """The answer to ``proposeChanges``."""

    answers: tuple[ProposalAnswer, ...]
    deltas: bool = False
    max_history: int = MAX_HISTORY

    @classmethod
    def from_statuses(
        cls,
        statuses: Sequence[int | tuple[int, str]],
        *,
        deltas: bool = False,
    ) -> ProposeChangesReply:
        """From ``CollectionStore.check_proposed`` results (``(409, current_rev)`` tuples)."""
        answers = tuple(
            ProposalAnswer(s[0], s[1]) if isinstance(s, tuple) else ProposalAnswer(s)
            for s in statuses
        )
        return cls(answers, deltas)

    def to_reply(self, conflict_includes_rev: bool) -> tuple[dict[str, str], bytes]:
        """Properties and body (sent compressed); trailing zeros omitted, as LiteCore."""
        body: list[Any] = []
        for answer in self.answers:
            if answer.server_rev is not None and conflict_includes_rev:
                body.append({"status": answer.status, "rev": answer.server_rev})
            else:
                body.append(answer.status)
        return _reply_properties(self.deltas, self.max_history), orjson.dumps(trim_zeros(body))

    @classmethod
    def parse(cls, reply: Message) -> ProposeChangesReply:
        """Lenient: a missing answer (trailing zeros omitted) is ``0``."""
        answers: list[ProposalAnswer] = []
        for status in lenient_json_list(reply.body):
            server_rev: str | None = None
            if isinstance(status, dict):
                rev = status.get("rev")
                server_rev = rev if isinstance(rev, str) else None
                status = status.get("status", 0)
            answers.append(ProposalAnswer(status, server_rev))
        return cls(
            tuple(answers),
            reply.bool_property("deltas"),
            reply.int_property("maxHistory") or MAX_HISTORY,
        )

    def answer(self, index: int) -> ProposalAnswer:
        return self.answers[index] if index < len(self.answers) else _SEND


_SEND = ProposalAnswer(0)


__all__ = [
    "ChangeRow",
    "Changes",
    "ChangesReply",
    "ProposalAnswer",
    "ProposeChanges",
    "ProposeChangesReply",
    "ProposedChange",
    "SubChanges",
    "sequence_key",
    "trim_zeros",
]
