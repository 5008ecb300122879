"""The BLIP core against real Couchbase Lite 3.2 sessions (``tests/data/interop``, ground truth).

Decoding: every frame of every recording goes through a ``BlipProtocol`` per direction (CRC and
inflate checked), and each completed message must equal the recorder's own decoding.
Encoding: replaying one peer's side of a session through our sender must reproduce LiteCore's
frames byte for byte, except where the interop README says LiteCore's deflater chunks
differently (facts 11 and 12).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from couchlite.blip import BlipProtocol, Message, MessageType, parse_frame_header
from couchlite.blip.codec import decode_ack_payload
from couchlite.blip.message import flag_names
from tests.data import INTEROP

FILES = sorted(INTEROP.glob("*.jsonl"))


def _load(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return lines[0], [r for r in lines[1:] if "hex" in r]


def _body_matches(message: Message, expected: Any) -> bool:
    if isinstance(expected, dict) and set(expected) <= {"hex", "text"} and "hex" in expected:
        if message.body.hex() != expected["hex"]:
            return False
        return "text" not in expected or message.body.decode("utf-8") == expected["text"]
    return message.json() == expected


def _decode_all(records: list[dict[str, Any]]) -> dict[tuple[str, bool, int], Message]:
    """Decode a session; return its messages keyed by (dir, is_reply, msgno)."""
    decoders = {d: BlipProtocol(strict_numbering=False) for d in ("c2s", "s2c")}
    out: dict[tuple[str, bool, int], Message] = {}
    for record in records:
        for message in decoders[record["dir"]].receive_frame(bytes.fromhex(record["hex"])):
            out[(record["dir"], not message.is_request, message.number)] = message
    return out


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_message_matches_the_recorded_decoding(path: Path) -> None:
    header, records = _load(path)
    decoders = {d: BlipProtocol(strict_numbering=False) for d in ("c2s", "s2c")}
    completed = 0
    for record in records:
        decoded = record["decoded"]
        frame = bytes.fromhex(record["hex"])
        frame_header = parse_frame_header(frame)
        assert frame_header.number == decoded["msgno"]
        assert frame_header.raw_flags == decoded["flags_byte"]
        messages = decoders[record["dir"]].receive_frame(frame)
        if decoded["type"].startswith("ACK"):
            assert frame_header.is_ack
            assert decode_ack_payload(frame_header, frame) == decoded["ack_bytes"]
            assert messages == []
            continue
        if not decoded["message_complete"]:
            assert messages == []
            continue
        assert len(messages) == 1
        message = messages[0]
        completed += 1
        assert message.number == decoded["msgno"]
        assert message.type.wire_name == decoded["type"]
        assert flag_names(message.flags) == decoded["flags"]
        assert list(message.properties.items()) == list(decoded["properties"].items())
        assert message.frame_count == len(decoded["frames"])
        assert len(message.body) == decoded["body_len"]
        assert _body_matches(message, decoded["body"]), record["i"]
    assert header["message_count"] == len(records)  # WebSocket messages, ACKs included
    assert completed == sum(1 for r in records if r["decoded"].get("message_complete"))
    if header.get("subprotocol"):
        assert completed > 0


def test_large_message_acks_are_reproduced_byte_for_byte() -> None:
    """Our receiver, fed the 11-frame rev of 08, emits exactly the passive's two ACK frames."""
    path = INTEROP / "08-large-doc.jsonl"
    _, records = _load(path)
    receiver = BlipProtocol(strict_numbering=False)
    ours: list[bytes] = []
    for record in records:
        if record["dir"] == "c2s":
            receiver.receive_frame(bytes.fromhex(record["hex"]))
            while (frame := receiver.next_frame()) is not None:
                ours.append(frame)
    recorded = [bytes.fromhex(r["hex"]) for r in records if r["decoded"]["type"] == "ACKMSG"]
    assert len(recorded) == 2
    assert ours == recorded
    assert recorded[0][1] == 0x34


def _replay(path: Path, side: str) -> tuple[int, list[int]]:
    """Play ``side`` of a session through our sender; return (#identical frames, differing i's).

    The other side's frames are fed to the same protocol object, so responses can be sent and the
    ACK queue evolves as in a live connection.
    """
    _, records = _load(path)
    messages = _decode_all(records)
    # LiteCore compresses with zlib at level 6: so does the replay, to compare bytes
    proto = BlipProtocol(compression_level=6, standard_zlib=True)
    identical = 0
    differing: list[int] = []
    for record in records:
        frame = bytes.fromhex(record["hex"])
        decoded = record["decoded"]
        if record["dir"] != side:
            proto.receive_frame(frame)
            continue
        if not decoded["type"].startswith("ACK") and decoded["frame_index"] == 0:
            is_reply = decoded["type"] != "MSG"
            message = messages[(side, is_reply, decoded["msgno"])]
            if message.type is MessageType.REQUEST:
                number = proto.send_request(
                    message.properties,
                    message.body,
                    urgent=message.urgent,
                    compressed=message.compressed,
                    no_reply=message.no_reply,
                )
                assert number == message.number
            elif message.type is MessageType.RESPONSE:
                proto.send_response(
                    message.number,
                    message.properties,
                    message.body,
                    urgent=message.urgent,
                    compressed=message.compressed,
                )
            else:
                assert message.error_domain is not None and message.error_code is not None
                proto.send_error(
                    message.number, message.error_domain, message.error_code, message.error_message
                )
        ours = proto.next_frame()
        assert ours is not None
        if ours == frame:
            identical += 1
        else:
            # Same frame header and the same running CRC: only the deflate chunking differs.
            assert ours[:2] == frame[:2] and ours[-4:] == frame[-4:], record["i"]
            differing.append(record["i"])
    assert proto.next_frame() is None
    return identical, differing


REPLAYABLE = [p for p in FILES if p.name not in ("08-large-doc.jsonl", "09-auth-failure.jsonl")]


@pytest.mark.parametrize("side", ["c2s", "s2c"])
@pytest.mark.parametrize("path", REPLAYABLE, ids=[p.name for p in REPLAYABLE])
def test_reencoding_reproduces_litecore_frames(path: Path, side: str) -> None:
    identical, differing = _replay(path, side)
    assert identical > 0
    _, records = _load(path)
    by_i = {r["i"]: r["decoded"] for r in records}
    for i in differing:
        # Only the getAttachment replies, whose props and body LiteCore flushes separately
        # (interop fact 11), may differ.
        decoded = by_i[i]
        assert decoded["type"] == "RPY" and "compressed" in decoded["flags"], i
        assert decoded["properties_len"] == 0


def test_push_basic_reencodes_byte_identically_both_ways() -> None:
    path = INTEROP / "01-push-basic.jsonl"
    for side, frames in (("c2s", 6), ("s2c", 6)):
        identical, differing = _replay(path, side)
        assert (identical, differing) == (frames, [])
