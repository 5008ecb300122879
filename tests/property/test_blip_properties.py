"""Property-based tests of the BLIP core: round trips through two BlipProtocols, and fuzzing."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from couchlite.blip import (
    BlipError,
    BlipLimitExceeded,
    BlipProtocol,
    Message,
    decode_varint,
    encode_varint,
)
from couchlite.blip.message import decode_properties, encode_properties

pytestmark = pytest.mark.timeout(120)

FAST = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])

no_nul_text = st.text(
    alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=20
)
props_strategy = st.lists(
    st.tuples(no_nul_text, no_nul_text), max_size=6, unique_by=lambda kv: kv[0]
)


@FAST
@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert len(encoded) <= 10
    assert decode_varint(encoded + b"tail") == (value, len(encoded))


@FAST
@given(props_strategy)
def test_properties_round_trip_in_order(props: list[tuple[str, str]]) -> None:
    encoded = encode_properties(props, 100 * 1024)
    length, start = decode_varint(encoded)
    assert len(encoded) == start + length
    assert list(decode_properties(encoded[start:]).items()) == props


def pump(
    a: BlipProtocol, b: BlipProtocol, rng: random.Random
) -> tuple[list[Message], list[Message]]:
    """Move frames both ways in a random interleaving until both are idle."""
    got_a: list[Message] = []
    got_b: list[Message] = []
    while a.has_output or b.has_output:
        for _ in range(rng.randint(1, 5)):
            if (f := a.next_frame()) is not None:
                got_b.extend(b.receive_frame(f))
        for _ in range(rng.randint(1, 5)):
            if (f := b.next_frame()) is not None:
                got_a.extend(a.receive_frame(f))
    return got_a, got_b


message_strategy = st.tuples(
    props_strategy,
    st.binary(max_size=3000) | st.integers(0, 20_000).map(lambda n: b"ab" * n),
    st.booleans(),  # urgent
    st.booleans(),  # compressed
    st.booleans(),  # no_reply
)


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(message_strategy, min_size=1, max_size=6),
    frame_size=st.sampled_from([64, 97, 300, 1024, 4096, 16384]),
    ack_threshold=st.sampled_from([50, 1000, 50_000]),
    extra_window=st.sampled_from([1, 200, 5000, 128_000]),
    seed=st.integers(0, 2**32),
)
def test_messages_round_trip_in_any_frame_size_with_replies(
    messages: list[tuple[list[tuple[str, str]], bytes, bool, bool, bool]],
    frame_size: int,
    ack_threshold: int,
    extra_window: int,
    seed: int,
) -> None:
    rng = random.Random(seed)
    # The sender's window must exceed the receiver's ACK threshold, or the sender stalls
    # waiting for an ACK the receiver will never send (true of LiteCore as well).
    max_unacked = ack_threshold + extra_window
    opts = {"frame_size": frame_size, "ack_threshold": ack_threshold}
    a = BlipProtocol(max_unacked_bytes=max_unacked, **opts)
    b = BlipProtocol(max_unacked_bytes=max_unacked, **opts)
    for props, body, urgent, compressed, no_reply in messages:
        a.send_request(props, body, urgent=urgent, compressed=compressed, no_reply=no_reply)
    _, requests = pump(a, b, rng)
    assert sorted(m.number for m in requests) == list(range(1, len(messages) + 1))
    for m in requests:
        props, body, urgent, compressed, no_reply = messages[m.number - 1]
        assert list(m.properties.items()) == props and m.body == body
        assert (m.urgent, m.compressed, m.no_reply) == (urgent, compressed, no_reply)
        if not no_reply:
            if m.number % 3:
                b.send_response(
                    m.number,
                    m.properties,
                    m.body[::-1],
                    urgent=m.urgent,
                    compressed=not m.compressed,
                )
            else:
                b.send_error(m.number, "HTTP", 404 + m.number, "gone")
    replies, _ = pump(a, b, rng)
    expected = {m.number for m in requests if not m.no_reply}
    assert {r.number for r in replies} == expected
    for r in replies:
        props, body, *_ = messages[r.number - 1]
        if r.is_error:
            assert (r.error_domain, r.error_code, r.error_message) == (
                "HTTP",
                404 + r.number,
                "gone",
            )
        else:
            assert list(r.properties.items()) == props and r.body == body[::-1]
    assert a.pending_messages == b.pending_messages == 0
    assert not a.has_output and not b.has_output


def _random_body(rng: random.Random, size: int) -> bytes:
    # Half incompressible, half repetitive JSON-ish text, so frames see both kinds of data.
    half = size // 2
    return rng.randbytes(half) + (b'{"item": "%d"},' % rng.randint(0, 9)) * (
        (size - half) // 14 + 1
    )


@settings(deadline=None, max_examples=6)
@given(
    size=st.integers(200_000, 1_100_000),
    compressed=st.booleans(),
    ack_threshold=st.sampled_from([4096, 50_000]),
    seed=st.integers(0, 2**32),
)
def test_big_bodies_round_trip_under_flow_control(
    size: int, compressed: bool, ack_threshold: int, seed: int
) -> None:
    rng = random.Random(seed)
    a = BlipProtocol(ack_threshold=ack_threshold, max_unacked_bytes=3 * ack_threshold)
    b = BlipProtocol(ack_threshold=ack_threshold, max_unacked_bytes=3 * ack_threshold)
    big = _random_body(rng, size)
    a.send_request({"Profile": "rev"}, big, compressed=compressed)
    a.send_request({"Profile": "small"}, b"{}", urgent=True)
    frames = 0
    got: list[Message] = []
    while a.has_output or b.has_output:
        if (f := a.next_frame()) is not None:
            assert len(f) <= 16384  # a frame never exceeds its budget, even compressed
            frames += 1
            got.extend(b.receive_frame(f))
        if (f := b.next_frame()) is not None:
            a.receive_frame(f)
    by_profile = {m.profile: m for m in got}
    assert by_profile["rev"].body == big and by_profile["small"].body == b"{}"
    # One ACK per threshold crossed (at most one per frame), counted in wire bytes.
    wire = b.statistics().bytes_received
    assert b.statistics().acks_sent >= max(wire // (ack_threshold + 16384) - 1, 1)
    assert frames == a.statistics().frames_sent


@settings(deadline=None, max_examples=150)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_random_bytes_raise_only_blip_errors(frames: list[bytes]) -> None:
    proto = BlipProtocol(max_message_size=1 << 20)
    for data in frames:
        try:
            proto.receive_frame(data)
        except BlipError:
            return


def _valid_session() -> list[bytes]:
    a = BlipProtocol(frame_size=200)
    a.send_request({"Profile": "rev", "id": "x"}, b'{"a": [1, 2, 3]}' * 40, compressed=True)
    a.send_request({"Profile": "ping"}, b"hello" * 30, urgent=True)
    a.send_request({}, bytes(range(256)), no_reply=True)
    out = []
    while (f := a.next_frame()) is not None:
        out.append(f)
    return out


VALID = _valid_session()


@settings(deadline=None, max_examples=250)
@given(
    index=st.integers(0, len(VALID) - 1),
    position=st.integers(0, 10_000),
    mutation=st.sampled_from(["flip", "truncate", "insert", "delete", "varint"]),
    byte=st.integers(0, 255),
)
def test_mutated_valid_frames_raise_only_blip_errors(
    index: int, position: int, mutation: str, byte: int
) -> None:
    frames = list(VALID)
    victim = bytearray(frames[index])
    pos = position % max(len(victim), 1)
    if mutation == "flip":
        victim[pos] ^= byte or 1
    elif mutation == "truncate":
        del victim[pos:]
    elif mutation == "insert":
        victim.insert(pos, byte)
    elif mutation == "delete":
        del victim[pos]
    else:
        victim[0:0] = b"\xff" * (byte % 12)
    frames[index] = bytes(victim)
    proto = BlipProtocol(max_message_size=1 << 20)
    received = 0
    try:
        for data in frames:
            received += len(proto.receive_frame(data))
    except BlipError as exc:
        assert exc.close_code in (1002, 1009, 1011)
    else:
        # Only a mutation that keeps every frame meaningful can pass (e.g. in a reserved bit).
        assert received <= 3


def test_decompression_bomb_is_bounded_by_max_message_size() -> None:
    sender = BlipProtocol(frame_size=16384)
    sender.send_request({}, bytes(8 * 1024 * 1024), compressed=True)
    receiver = BlipProtocol(max_message_size=1 << 20)
    with pytest.raises(BlipError) as info:
        while (f := sender.next_frame()) is not None:
            receiver.receive_frame(f)
            if (ack := receiver.next_frame()) is not None:
                sender.receive_frame(ack)
    assert info.value.close_code == 1009


@settings(deadline=None, max_examples=80)
@given(
    size=st.integers(0, 60_000),
    cap=st.integers(0, 60_000),
    frame_size=st.integers(64, 8192),
    compressed=st.booleans(),
    props=props_strategy,
)
def test_streamed_reply_is_the_body_or_refused_at_its_cap(
    size: int, cap: int, frame_size: int, compressed: bool, props: list[tuple[str, str]]
) -> None:
    """Whatever the framing: the sink gets exactly the body when it fits the cap, otherwise a
    BlipLimitExceeded after at most ``cap`` bytes; nothing is ever buffered beyond the
    properties."""
    requester, responder = BlipProtocol(), BlipProtocol(frame_size=frame_size)
    number = requester.send_request({"Profile": "getAttachment"})
    while (f := requester.next_frame()) is not None:
        responder.receive_frame(f)
    pieces: list[bytes] = []
    requester.stream_response(number, cap, lambda v: pieces.append(bytes(v)))
    body = random.Random(size).randbytes(size // 2) + bytes(size - size // 2)
    responder.send_response(number, props, body, compressed=compressed)
    done: list[Message] = []
    try:
        while (f := responder.next_frame()) is not None:
            done.extend(requester.receive_frame(f))
            assert requester.buffered_bytes == 0
            while (ack := requester.next_frame()) is not None:
                responder.receive_frame(ack)
    except BlipLimitExceeded as exc:
        assert size > cap and exc.limit == "max_size" and exc.close_code == 1009
        assert sum(map(len, pieces)) <= cap
        return
    assert size <= cap
    assert b"".join(pieces) == body
    assert list(done[0].properties.items()) == props and done[0].body == b""


@settings(deadline=None, max_examples=60)
@given(
    sizes=st.lists(st.integers(1, 40_000), min_size=1, max_size=12),
    limit=st.integers(1_000, 100_000),
    budget=st.integers(1_000, 200_000),
    frame_size=st.integers(64, 4096),
)
def test_buffered_bytes_never_exceed_their_bounds(
    sizes: list[int], limit: int, budget: int, frame_size: int
) -> None:
    """Interleaved multi-frame messages: the receiver never holds more than max_buffered_bytes
    (or one max_message_size) at once, and refuses with the limit that was crossed."""
    sender = BlipProtocol(frame_size=frame_size)
    receiver = BlipProtocol(max_message_size=limit, max_buffered_bytes=budget)
    for i, size in enumerate(sizes):
        sender.send_request({"Profile": f"m{i}"}, bytes(size))
    bound = max(limit, budget)
    try:
        while (f := sender.next_frame()) is not None:
            receiver.receive_frame(f)
            assert receiver.buffered_bytes <= bound
            while (ack := receiver.next_frame()) is not None:
                sender.receive_frame(ack)
    except BlipLimitExceeded as exc:
        assert exc.limit in ("max_message_size", "max_buffered_bytes")
        assert receiver.buffered_bytes <= bound
        return
    assert max(sizes) < limit  # every message, properties included, fitted max_message_size
