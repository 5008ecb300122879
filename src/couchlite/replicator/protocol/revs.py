"""``rev``, ``norev`` and ``getAttachment`` (notes §4.8-§4.10; interop facts 5, 9, 10, 15).

A ``rev`` goes with properties in the order LiteCore writes them: ``Profile, [collection], id,
rev, sequence, [replacedRev], [noconflicts], [deleted], [history], [deltaSrc]``. Parsing a
received one checks what the receiving side must (notes §4.8): ``id``/``rev`` present, every
revision ID well formed (``rev``, ``history``, ``deltaSrc``, ``replacedRev``), a body the local
API could hold -- else ``HTTP``/400 -- and drops the body's reserved top-level ``_`` properties
(``model.legacy``) unless it is a delta, whose result is cleaned once applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import InvalidArgumentError, LiteCoreCode
from couchlite.model.canonical import check_json_text
from couchlite.model.legacy import strip_old_meta_body
from couchlite.model.revid import is_valid_rev_id
from couchlite.replicator.protocol.wire import Outgoing, http_reply, start_properties


@dataclass(slots=True)  # not frozen: one per revision, and frozen costs 5x to make
class Rev:
    """One revision as a ``rev`` message carries it."""

    doc_id: str
    rev_id: str
    #: the ``sequence`` property verbatim (JSON text), ``None`` when absent
    sequence: str | None
    deleted: bool = False
    #: ancestors newest first, excluding ``rev_id``
    history: Sequence[str] = field(default_factory=list)
    body: bytes = b"{}"
    no_conflicts: bool = False
    #: ``deltaSrc``: ``body`` is a delta against this revision
    delta_src: str | None = None
    #: ``replacedRev``: the revision announced, which this current one stands in for
    replaced_rev: str | None = None

    @property
    def announced(self) -> str:
        """The revision the peer announced for this one (what was requested)."""
        return self.replaced_rev or self.rev_id

    def properties(self, address: Mapping[str, str]) -> dict[str, str]:
        """The properties in wire order (``deltaSrc`` last, when the body is a delta)."""
        props = start_properties("rev", address)
        props["id"] = self.doc_id
        props["rev"] = self.rev_id
        if self.sequence is not None:
            props["sequence"] = self.sequence
        if self.replaced_rev is not None:
            props["replacedRev"] = self.replaced_rev
        if self.no_conflicts:
            props["noconflicts"] = "1"
        if self.deleted:
            props["deleted"] = "1"
        if self.history:
            props["history"] = ",".join(self.history)
        if self.delta_src is not None:
            props["deltaSrc"] = self.delta_src
        return props

    def to_message(self, address: Mapping[str, str], *, compressed: bool = True) -> Outgoing:
        return Outgoing(self.properties(address), self.body, compressed=compressed)

    @classmethod
    def parse(cls, message: Message) -> Rev:
        """The fields of a ``rev`` message; ``HTTP``/400 when it is unusable (see the module
        docstring); a ``rev`` carrying ``error`` (the sender could not produce it after all) is
        refused too, never echoed back as our own status."""
        props = message.properties
        doc_id = props.get("id")
        rev_id = props.get("rev")
        if not doc_id or not rev_id:
            raise http_reply(400, "received 'rev' message with missing 'id' or 'rev'")
        error = props.get("error")
        if error is not None:
            raise http_reply(400, f"rev carried error {error[:20]!r}")
        if not is_valid_rev_id(rev_id):
            raise http_reply(400, f"received invalid revision ID {rev_id[:100]!r}")
        history_text = props.get("history")
        history = [h.strip() for h in history_text.split(",") if h.strip()] if history_text else []
        for ancestor in history:
            if not is_valid_rev_id(ancestor):
                raise http_reply(400, f"received invalid revision ID {ancestor[:100]!r} in history")
        delta_src = props.get("deltaSrc") or None
        replaced = props.get("replacedRev") or None
        for other in (delta_src, replaced):
            if other is not None and not is_valid_rev_id(other):
                raise http_reply(400, f"received invalid revision ID {other[:100]!r}")
        body = message.body or b"{}"
        try:
            check_json_text(body)
        except InvalidArgumentError as exc:
            raise http_reply(400, f"invalid body of {doc_id[:100]!r}: {exc.message}") from None
        if delta_src is None:
            body = strip_old_meta_body(body)
        return cls(
            doc_id,
            rev_id,
            props.get("sequence"),
            message.bool_property("deleted"),
            history,
            body,
            message.bool_property("noconflicts"),
            delta_src,
            replaced,
        )


@dataclass(frozen=True, slots=True)
class NoRev:
    """A promised revision that will never come (notes §4.9)."""

    doc_id: str
    rev_id: str
    sequence: str | None = None
    error: int = 404

    def to_message(self, address: Mapping[str, str]) -> Outgoing:
        props = start_properties("norev", address)
        props["id"] = self.doc_id
        props["rev"] = self.rev_id
        if self.sequence is not None:
            props["sequence"] = self.sequence
        props["error"] = str(self.error)
        return Outgoing(props, compressed=True, no_reply=True)

    @classmethod
    def parse(cls, message: Message) -> NoRev | None:
        """``None`` when it names no document or revision (it is then ignored)."""
        props = message.properties
        doc_id, rev_id = props.get("id"), props.get("rev")
        if not doc_id or not rev_id:
            return None
        return cls(doc_id, rev_id, props.get("sequence"), message.int_property("error") or 0)


@dataclass(frozen=True, slots=True)
class GetAttachment:
    """A request for a blob that a received revision references (notes §4.10)."""

    digest: str
    doc_id: str | None = None
    compress: bool = True

    def to_message(self, address: Mapping[str, str]) -> Outgoing:
        props = start_properties("getAttachment", address)
        props["digest"] = self.digest
        if self.doc_id is not None:
            props["docID"] = self.doc_id
        if self.compress:
            props["compress"] = "true"
        return Outgoing(props)

    @classmethod
    def parse(cls, message: Message) -> GetAttachment:
        """``LiteCore``/INVALID_PARAMETER without a ``sha1-`` digest."""
        props = message.properties
        digest = props.get("digest")
        if not digest or not digest.startswith("sha1-"):
            raise BlipErrorReply(
                "LiteCore", LiteCoreCode.INVALID_PARAMETER, "Missing or invalid 'digest'"
            )
        return cls(digest, props.get("docID"), message.bool_property("compress"))


__all__ = ["GetAttachment", "NoRev", "Rev"]
