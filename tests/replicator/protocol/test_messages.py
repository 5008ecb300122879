"""Every message type: ``to_message`` then ``parse`` gives the value back; the recorded
Couchbase Lite sessions parse and re-encode to the very properties (order included) and bodies
they carry; malformed input gives the typed BLIP error the receiving side answers with."""

from __future__ import annotations

import orjson
import pytest

from couchlite.blip import BlipErrorReply
from couchlite.errors import LiteCoreCode, ProtocolError
from couchlite.replicator.protocol.changes import (
    ChangeRow,
    Changes,
    ChangesReply,
    ProposalAnswer,
    ProposeChanges,
    ProposeChangesReply,
    ProposedChange,
    SubChanges,
)
from couchlite.replicator.protocol.checkpoints import (
    CheckpointReply,
    GetCheckpoint,
    GetCollections,
    GetCollectionsReply,
    SetCheckpoint,
)
from couchlite.replicator.protocol.revs import GetAttachment, NoRev, Rev
from tests.data import INTEROP
from tests.replicator.test_replay_active import load

from .helpers import received, reply, request

R1 = "1-" + "a" * 40
R2 = "2-" + "b" * 40
R3 = "3-" + "c" * 40
ADDR = {"collection": "1"}


def test_sub_changes_round_trip() -> None:
    value = SubChanges(
        since="12:3", continuous=True, active_only=True, document_ids=frozenset({"b", "a"})
    )
    out = value.to_message(ADDR)
    assert list(out.properties) == [
        "Profile", "collection", "since", "continuous", "batch", "sendReplacementRevs",
        "versioning", "activeOnly", "revocations",
    ]  # fmt: skip
    assert out.body == b'{"docIDs":["a","b"]}'
    assert SubChanges.parse(received(out)) == value
    assert SubChanges.parse(received(SubChanges().to_message({}))) == SubChanges()
    assert SubChanges(since=7).since_sequence == 7 and SubChanges(since="x").since_sequence == 0


def test_changes_round_trip_and_caught_up() -> None:
    rows = (ChangeRow(4, "d1", R1, 0, 20), ChangeRow(5, "d2", R2, 1, 2))
    out = Changes(rows).to_message(ADDR)
    assert out.urgent and out.compressed and not out.no_reply
    assert Changes.parse(received(out)) == Changes(rows)
    caught_up = Changes().to_message(ADDR)
    assert caught_up.body == b"[]" and caught_up.no_reply and not caught_up.compressed
    parsed = Changes.parse(received(caught_up))
    assert parsed.caught_up and not parsed.rows
    # a non-empty list sent noreply cannot be answered: not acted on, and not "caught up"
    unanswerable = Changes.parse(
        request({"Profile": "changes"}, b'[[1,"d",' + f'"{R1}"]]'.encode(), no_reply=True)
    )
    assert unanswerable.unanswerable and not unanswerable.caught_up


def test_changes_reply_round_trip() -> None:
    props, body = ChangesReply([0, [R1], []], deltas=True).to_reply()
    assert props == {"maxHistory": "50", "blobs": "true", "deltas": "true"}
    parsed = ChangesReply.parse(reply(props, body))
    assert parsed.deltas and parsed.max_history == 50
    assert [parsed.known(i) for i in range(4)] == [None, [R1], [], None]
    assert ChangesReply.parse(reply({}, b"not json")).known(0) is None


def test_propose_changes_round_trip() -> None:
    rows = (ProposedChange("d1", R2, R1, 30), ProposedChange("d2", R1, None, 5))
    out = ProposeChanges(rows).to_message(ADDR)
    assert orjson.loads(out.body) == [["d1", R2, R1, 30], ["d2", R1, "", 5]]
    assert ProposeChanges.parse(received(out)) == ProposeChanges(rows)


def test_propose_changes_reply_round_trip() -> None:
    answer = ProposeChangesReply.from_statuses([304, (409, R2), 0, 0])
    props, body = answer.to_reply(conflict_includes_rev=True)
    assert orjson.loads(body) == [304, {"status": 409, "rev": R2}]  # trailing zeros omitted
    parsed = ProposeChangesReply.parse(reply(props, body))
    assert [parsed.answer(i) for i in range(4)] == [
        ProposalAnswer(304),
        ProposalAnswer(409, R2),
        ProposalAnswer(0),
        ProposalAnswer(0),
    ]
    _, plain = answer.to_reply(conflict_includes_rev=False)
    assert orjson.loads(plain) == [304, 409]


def test_rev_norev_get_attachment_round_trips() -> None:
    rev = Rev("d1", R3, "17", True, [R2, R1], b"{}", True, replaced_rev=R2)
    out = rev.to_message(ADDR)
    assert list(out.properties) == [
        "Profile", "collection", "id", "rev", "sequence", "replacedRev", "noconflicts",
        "deleted", "history",
    ]  # fmt: skip
    assert Rev.parse(received(out)) == rev
    delta = Rev("d1", R3, "17", body=b'{"a":1}', delta_src=R2)
    assert list(delta.properties({}))[-1] == "deltaSrc"
    assert Rev.parse(received(delta.to_message({}))) == delta
    norev = NoRev("d1", R1, "9", 404)
    out = norev.to_message(ADDR)
    assert out.no_reply and out.compressed and NoRev.parse(received(out)) == norev
    assert NoRev.parse(request({"Profile": "norev", "id": "d1"})) is None
    attachment = GetAttachment("sha1-abc=", "d1")
    assert GetAttachment.parse(received(attachment.to_message(ADDR))) == attachment


def test_checkpoint_messages_round_trip() -> None:
    get = GetCheckpoint("cp-x")
    assert GetCheckpoint.parse(received(get.to_message({}))) == get
    set_ = SetCheckpoint("cp-x", b'{"local":3}', "2-cc")
    assert SetCheckpoint.parse(received(set_.to_message({}))) == set_
    first = SetCheckpoint("cp-x", b"{}").to_message({})
    assert first.properties["rev"] == ""  # present but empty the first time
    assert CheckpointReply.parse(reply(*CheckpointReply("1-cc", b"{}").to_reply())) == (
        CheckpointReply("1-cc", b"{}")
    )
    collections = GetCollections(("cp-a", "cp-b"), ("_default", "s.c"))
    assert GetCollections.parse(received(collections.to_message())) == collections
    body = GetCollectionsReply(
        (CheckpointReply("1-cc", b'{"local":2}'), CheckpointReply(None), None)
    ).to_reply()
    assert orjson.loads(body) == [{"local": 2, "rev": "1-cc", "_rev": "1-cc"}, {}, None]
    parsed = GetCollectionsReply.parse(reply({}, body), 3)
    assert parsed.entries == (
        CheckpointReply("1-cc", b'{"local":2}'),
        CheckpointReply(None, b""),
        None,
    )


PARSERS = {
    "subChanges": SubChanges,
    "changes": Changes,
    "proposeChanges": ProposeChanges,
    "rev": Rev,
    "norev": NoRev,
    "getAttachment": GetAttachment,
    "getCheckpoint": GetCheckpoint,
    "setCheckpoint": SetCheckpoint,
}


@pytest.mark.parametrize("name", sorted(p.stem for p in INTEROP.glob("*.jsonl")))
def test_recorded_messages_re_encode_to_their_own_properties(name: str) -> None:
    recording = load(name)
    relevant = [
        m
        for m in recording.client_requests + recording.server_requests
        if m.profile in PARSERS or m.profile == "getCollections"
    ]
    if not relevant:
        pytest.skip("no replication messages in this recording (the handshake failed)")
    checked = 0
    for message in recording.client_requests + recording.server_requests:
        address = {k: v for k, v in message.properties.items() if k == "collection"}
        if message.profile == "getCollections":
            out = GetCollections.parse(message).to_message()
        elif message.profile in PARSERS:
            value = PARSERS[message.profile].parse(message)
            if value is None:
                continue
            out = value.to_message(address)
        else:
            continue
        assert list(out.properties.items()) == list(message.properties.items()), message
        if message.profile == "rev":
            assert orjson.loads(out.body or b"{}") == orjson.loads(message.body or b"{}")
        else:
            assert out.body == message.body or orjson.loads(out.body) == orjson.loads(message.body)
        checked += 1
    assert checked


def _error(exc: pytest.ExceptionInfo[BlipErrorReply]) -> tuple[str, int]:
    return exc.value.error_domain or "", exc.value.code


@pytest.mark.parametrize(
    ("parser", "properties", "body", "expected"),
    [
        (Changes, {}, b"{", ("BLIP", 400)),
        (Changes, {}, b'{"a":1}', ("BLIP", 400)),
        (Changes, {}, b"[[1]]", ("HTTP", 400)),
        (Changes, {}, b'[[1, "", "1-abc"]]', ("HTTP", 400)),
        (Changes, {}, b'[[1, "d", "bad"]]', ("HTTP", 400)),
        (Changes, {}, orjson.dumps([[i, "d", R1] for i in range(5001)]), ("BLIP", 413)),
        (ProposeChanges, {}, b'[["d"]]', ("HTTP", 400)),
        (ProposeChanges, {}, b'[["d", "1-abc", "junk"]]', ("HTTP", 400)),
        (SubChanges, {"filter": "x"}, b"", ("LiteCore", int(LiteCoreCode.UNSUPPORTED))),
        (SubChanges, {"versioning": "version-vectors"}, b"", ("LiteCore", 501)),
        (SubChanges, {}, b"{", ("BLIP", 400)),
        (Rev, {"id": "d"}, b"{}", ("HTTP", 400)),
        (Rev, {"id": "d", "rev": "nope"}, b"{}", ("HTTP", 400)),
        (Rev, {"id": "d", "rev": R2, "history": "x"}, b"{}", ("HTTP", 400)),
        (Rev, {"id": "d", "rev": R2, "deltaSrc": "x"}, b"{}", ("HTTP", 400)),
        (Rev, {"id": "d", "rev": R2, "error": "404"}, b"{}", ("HTTP", 400)),
        (Rev, {"id": "d", "rev": R2}, b"[" * 300 + b"]" * 300, ("HTTP", 400)),
        (
            GetAttachment,
            {"digest": "md5-x"},
            b"",
            ("LiteCore", int(LiteCoreCode.INVALID_PARAMETER)),
        ),
        (GetCheckpoint, {}, b"", ("BLIP", 400)),
        (GetCheckpoint, {"client": "x" * 257}, b"", ("BLIP", 400)),
        (SetCheckpoint, {"client": "c"}, b"[]", ("HTTP", 400)),
        (SetCheckpoint, {"client": "c"}, b"{" + b" " * (64 * 1024) + b"}", ("HTTP", 413)),
        (SetCheckpoint, {"client": "c", "rev": "7-xx"}, b"{}", ("HTTP", 400)),
        (GetCollections, {}, b"", ("BLIP", 400)),
        (GetCollections, {}, b'{"checkpoint_ids": ["a"], "collections": []}', ("BLIP", 400)),
        (
            GetCollections,
            {},
            b'{"checkpoint_ids": ["a", "b"], "collections": ["x", "x"]}',
            ("BLIP", 400),
        ),
    ],
)
def test_malformed_input_is_the_typed_error_of_the_receiving_side(
    parser: type, properties: dict[str, str], body: bytes, expected: tuple[str, int]
) -> None:
    with pytest.raises(BlipErrorReply) as exc:
        parser.parse(request(properties, body))
    assert _error(exc) == expected


def test_a_malformed_get_collections_reply_is_a_protocol_error() -> None:
    for body in (b"{}", b"[1]", b"[null, null]"):
        with pytest.raises(ProtocolError):
            GetCollectionsReply.parse(reply({}, body), 1 if body != b"[null, null]" else 3)
