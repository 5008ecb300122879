"""BlipProtocol: messages, replies, out-box order, flow control and bad peers (notes §2)."""

from __future__ import annotations

import zlib

import pytest

from couchlite.blip import (
    BlipError,
    BlipErrorReply,
    BlipMessageError,
    BlipProtocol,
    FrameFlags,
    Message,
    MessageType,
    encode_varint,
    parse_frame_header,
)
from couchlite.blip.codec import decode_ack_payload, encode_ack_frame
from couchlite.errors import ErrorDomain, InvalidArgumentError, ProtocolError

pytestmark = pytest.mark.timeout(30)


def pump(a: BlipProtocol, b: BlipProtocol) -> tuple[list[Message], list[Message]]:
    """Move frames both ways until both are idle; return (messages a got, messages b got)."""
    got: dict[int, list[Message]] = {id(a): [], id(b): []}
    moved = True
    while moved:
        moved = False
        for src, dst in ((a, b), (b, a)):
            while (frame := src.next_frame()) is not None:
                got[id(dst)].extend(dst.receive_frame(frame))
                moved = True
    return got[id(a)], got[id(b)]


def pump_lockstep(a: BlipProtocol, b: BlipProtocol) -> tuple[list[Message], list[Message]]:
    """Like :func:`pump`, one frame per side in turn: ACKs leave as soon as they are queued,
    as they do over a connection whose peer keeps reading."""
    got: dict[int, list[Message]] = {id(a): [], id(b): []}
    moved = True
    while moved:
        moved = False
        for src, dst in ((a, b), (b, a)):
            if (frame := src.next_frame()) is not None:
                got[id(dst)].extend(dst.receive_frame(frame))
                moved = True
    return got[id(a)], got[id(b)]


def frame(number: int, flags: int, data: bytes, crc_base: int = 0) -> bytes:
    """A hand-built uncompressed frame whose CRC starts a fresh direction."""
    crc = zlib.crc32(data, crc_base)
    return encode_varint(number) + encode_varint(flags) + data + crc.to_bytes(4, "big")


def message_bytes(props: bytes, body: bytes = b"") -> bytes:
    return encode_varint(len(props)) + props + body


# ------------------------------------------------------------------ requests and replies


def test_request_and_response_round_trip_with_flags_and_property_order() -> None:
    client, server = BlipProtocol(), BlipProtocol()
    props = [("Profile", "rev"), ("id", "doc"), ("rev", "1-abc"), ("a", "")]
    number = client.send_request(props, b'{"k": 1}', urgent=True, compressed=True)
    assert number == 1
    assert client.send_request({"Profile": "x"}, no_reply=True) == 2
    _, at_server = pump(client, server)
    assert [m.number for m in at_server] == [1, 2]
    request = at_server[0]
    assert request.type is MessageType.REQUEST and request.profile == "rev"
    assert list(request.properties.items()) == props
    assert request.urgent and request.compressed and not request.no_reply
    assert request.json() == {"k": 1}
    assert at_server[1].no_reply and at_server[1].body == b""

    server.send_response(1, {"ok": "1"}, b"[]", urgent=True, compressed=True)
    at_client, _ = pump(client, server)
    (reply,) = at_client
    assert reply.type is MessageType.RESPONSE and reply.number == 1
    assert reply.properties == {"ok": "1"} and reply.json() == []
    assert reply.urgent and reply.compressed and not reply.is_error
    assert reply.error_domain is None and reply.error_code is None
    assert not client.is_awaiting_response(1)


def test_error_reply_fields_and_defaults() -> None:
    client, server = BlipProtocol(), BlipProtocol()
    client.send_request({"Profile": "getAttachment"})
    pump(client, server)
    server.send_error(1, "LiteCore", 7, "No such blob")
    (err,) = pump(client, server)[0]
    assert err.is_error and err.type is MessageType.ERROR
    assert list(err.properties.items()) == [("Error-Domain", "LiteCore"), ("Error-Code", "7")]
    assert (err.error_domain, err.error_code, err.error_message) == ("LiteCore", 7, "No such blob")
    bare = Message(MessageType.ERROR, 3, FrameFlags(0), {}, b"")
    assert bare.error_domain == "BLIP" and bare.error_code is None and bare.error_message == ""


def test_blip_error_reply_maps_domains() -> None:
    known = BlipErrorReply("LiteCore", 7, "No such blob")
    assert known.domain is ErrorDomain.LITECORE and known.error_domain == "LiteCore"
    assert (known.code, known.message) == (7, "No such blob")
    foreign = BlipErrorReply("mbedTLS", -9984)
    assert foreign.domain is ErrorDomain.BLIP and foreign.error_domain == "mbedTLS"
    assert "mbedTLS" in str(foreign)


def test_bad_json_body_raises_message_error() -> None:
    message = Message(MessageType.REQUEST, 1, FrameFlags(0), {}, b"{nope")
    with pytest.raises(BlipMessageError) as info:
        message.json()
    assert isinstance(info.value, ProtocolError) and not isinstance(info.value, BlipError)


def test_bool_and_int_properties_read_like_litecore() -> None:
    m = Message(
        MessageType.REQUEST,
        1,
        FrameFlags(0),
        {"a": "true", "b": "YES", "c": "1", "d": "0", "e": "false", "n": "42", "x": "?"},
        b"",
    )
    assert [m.bool_property(k) for k in "abcde"] == [True, True, True, False, False]
    assert m.int_property("n") == 42 and m.int_property("x") is None
    assert m.bool_property("missing", True) is True


def test_replies_are_refused_for_noreply_unknown_and_answered_requests() -> None:
    client, server = BlipProtocol(), BlipProtocol()
    client.send_request({"Profile": "changes"}, b"[]", no_reply=True)
    client.send_request({"Profile": "ping"})
    pump(client, server)
    for attempt in (
        lambda: server.send_response(1),
        lambda: server.send_error(1, "BLIP", 404),
        lambda: server.send_response(99),
    ):
        with pytest.raises(BlipError) as info:
            attempt()
        assert info.value.is_remote_fault is False
    assert server.pending_messages == 0 and not server.has_output
    server.send_response(2)
    with pytest.raises(BlipError):
        server.send_response(2)
    assert server.pending_messages == 1
    assert server.error is None  # local misuse does not kill the connection


@pytest.mark.parametrize(
    "props",
    [
        {"a\0b": "c"},
        {"a": "b\0"},
        {"a": 1},
        [("a",)],
        {"k": "v" * 200_000},
    ],
)
def test_invalid_outgoing_properties_raise_locally_and_queue_nothing(props: object) -> None:
    proto = BlipProtocol()
    with pytest.raises(BlipError) as info:
        proto.send_request(props)  # type: ignore[arg-type]
    assert info.value.is_remote_fault is False
    assert proto.pending_messages == 0
    assert proto.send_request({}) == 1  # the failed call did not use up a number


def test_constructor_rejects_nonsense() -> None:
    with pytest.raises(InvalidArgumentError):
        BlipProtocol(frame_size=10)
    with pytest.raises(InvalidArgumentError):
        BlipProtocol(compression_level=12)


def test_compression_level_zero_sends_uncompressed() -> None:
    client, server = BlipProtocol(compression_level=0), BlipProtocol()
    client.send_request({"Profile": "rev"}, b"x" * 1000, compressed=True)
    raw = client.next_frame()
    assert raw is not None and not parse_frame_header(raw).flags & FrameFlags.COMPRESSED
    (m,) = server.receive_frame(raw)
    assert m.body == b"x" * 1000


def test_statistics_count_frames_bytes_messages_and_acks() -> None:
    client = BlipProtocol(frame_size=1024)
    server = BlipProtocol(ack_threshold=2000)
    client.send_request({"Profile": "big"}, bytes(range(256)) * 40)  # 10 KB, ~10 frames
    pump_lockstep(client, server)
    c, s = client.statistics(), server.statistics()
    assert c.messages_sent == 1 and s.messages_received == 1
    assert c.frames_sent == s.frames_received >= 10
    assert s.acks_sent >= 4 and c.acks_received == s.acks_sent
    assert c.bytes_sent == s.bytes_received and c.bytes_received == s.bytes_sent
    assert s.frames_sent == s.acks_sent


# ------------------------------------------------------------------ out-box order


def _sent_numbers(proto: BlipProtocol) -> list[tuple[int, int, int]]:
    out = []
    while (f := proto.next_frame()) is not None:
        h = parse_frame_header(f)
        out.append((h.number, int(h.flags & FrameFlags.URGENT), len(f)))
    return out


def test_urgent_messages_interleave_but_first_frames_stay_in_number_order() -> None:
    proto = BlipProtocol(frame_size=256)
    proto.send_request({"Profile": "n1"}, b"a" * 2000)
    proto.send_request({"Profile": "n2"}, b"b" * 2000)
    proto.send_request({"Profile": "u3"}, b"c" * 2000, urgent=True)
    order = [n for n, _, _ in _sent_numbers(proto)]
    first_frames = [order.index(n) for n in (1, 2, 3)]
    assert first_frames == sorted(first_frames)
    start, end = order.index(3), len(order) - order[::-1].index(3)
    window = order[start:end]
    # While the urgent message is being sent, it gets at least every other frame.
    assert all(3 in window[i : i + 2] for i in range(0, len(window) - 1))
    assert window.count(3) > len(window) // 2 - 1
    assert order.count(1) == order.count(2)


def test_normal_frames_shrink_to_4096_while_an_urgent_message_waits() -> None:
    proto = BlipProtocol()
    proto.send_request({"Profile": "big"}, bytes(100_000))
    first = proto.next_frame()
    assert first is not None and len(first) == 16384
    proto.send_request({"Profile": "urgent"}, b"u" * 10, urgent=True)
    proto.send_request({"Profile": "later"}, b"u" * 10)
    frames = _sent_numbers(proto)
    # big (number 1) runs round robin; the urgent one must not wait behind a 16 KB frame.
    sizes_before_urgent = [size for n, _, size in frames[: [f[0] for f in frames].index(2)]]
    assert all(size <= 4096 for size in sizes_before_urgent)
    assert max(size for n, _, size in frames if n == 1) == 16384


def test_requeue_places_urgent_after_last_urgent_with_one_normal_between() -> None:
    proto = BlipProtocol(frame_size=128)
    for i in range(4):
        proto.send_request({"Profile": f"n{i}"}, b"x" * 1000)
    for n in range(1, 5):  # every normal message has started
        assert parse_frame_header(proto.next_frame() or b"").number == n
    proto.send_request({"Profile": "u5"}, b"y" * 1000, urgent=True)
    proto.send_request({"Profile": "u6"}, b"z" * 1000, urgent=True)
    upcoming = [parse_frame_header(proto.next_frame() or b"").number for _ in range(6)]
    # u5 jumps to position 1 (one normal message first); u6 after u5 with one normal between.
    assert upcoming[:4] == [1, 5, 2, 6]


# ------------------------------------------------------------------ flow control


def test_big_message_stalls_without_acks_and_resumes_after_them() -> None:
    sender = BlipProtocol(max_unacked_bytes=128_000)
    sender.send_request({"Profile": "rev"}, bytes(range(256)) * 4096)  # 1 MiB
    sent = 0
    while (f := sender.next_frame()) is not None:
        sent += len(f) - 2
    assert 128_000 <= sent < 128_000 + 16384
    assert sender.pending_messages == 1 and not sender.has_output
    # Other messages keep flowing while the big one waits.
    sender.send_request({"Profile": "ping"})
    small = sender.next_frame()
    assert small is not None and parse_frame_header(small).number == 2
    assert sender.next_frame() is None
    # An ACK for an unknown message changes nothing.
    sender.receive_frame(encode_ack_frame(9, MessageType.ACK_REQUEST, 10**6))
    assert sender.next_frame() is None
    sender.receive_frame(encode_ack_frame(1, MessageType.ACK_REQUEST, sent))
    assert sender.has_output
    more = 0
    while (f := sender.next_frame()) is not None:
        more += len(f) - 2
    assert 128_000 <= more < 128_000 + 16384
    assert sender.statistics().acks_received == 2


def test_receiver_acks_every_threshold_and_sender_finishes() -> None:
    sender = BlipProtocol(max_unacked_bytes=20_000, frame_size=4096)
    receiver = BlipProtocol(ack_threshold=10_000)
    body = bytes(range(256)) * 1024
    sender.send_request({"Profile": "rev"}, body)
    _, got = pump_lockstep(sender, receiver)
    assert got[0].body == body
    assert receiver.statistics().acks_sent >= 20
    receiver.send_response(1, {}, body)
    back, _ = pump_lockstep(sender, receiver)
    assert back[0].body == body and back[0].type is MessageType.RESPONSE
    acks = sender.statistics().acks_sent  # ACKRPY frames, one per 50,000 bytes still arriving
    assert acks in (4, 5) and receiver.statistics().acks_received == acks


def test_ack_frames_have_litecore_layout() -> None:
    receiver = BlipProtocol(ack_threshold=100)
    sender = BlipProtocol(frame_size=64)
    sender.send_request({}, b"q" * 500)
    ack = None
    while ack is None:
        f = sender.next_frame()
        assert f is not None
        receiver.receive_frame(f)
        ack = receiver.next_frame()
    header = parse_frame_header(ack)
    assert header.raw_flags == 0x34 and header.is_ack and header.number == 1
    count = decode_ack_payload(header, ack)
    assert count >= 100 and ack == b"\x01\x34" + encode_varint(count)


# ------------------------------------------------------------------ bad peers


def _expect_fatal(proto: BlipProtocol, data: bytes, close_code: int) -> BlipError:
    with pytest.raises(BlipError) as info:
        proto.receive_frame(data)
    err = info.value
    assert err.close_code == close_code and err.is_remote_fault
    # The connection is dead from now on.
    with pytest.raises(BlipError):
        proto.receive_frame(frame(1, 0, message_bytes(b"")))
    assert proto.next_frame() is None and not proto.has_output and proto.error is err
    return err


def test_bad_checksum_is_fatal_1011() -> None:
    good = frame(1, 0, message_bytes(b"Profile\0x\0"))
    err = _expect_fatal(BlipProtocol(), good[:-1] + bytes([good[-1] ^ 1]), 1011)
    assert "checksum" in str(err)


def test_corrupt_deflate_data_is_fatal_1011() -> None:
    junk = b"\xff\xff\xff\xff\xff"
    data = encode_varint(1) + encode_varint(FrameFlags.COMPRESSED) + junk + b"\0\0\0\0"
    _expect_fatal(BlipProtocol(), data, 1011)


def test_final_deflate_block_is_fatal_1011() -> None:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = message_bytes(b"")
    z = c.compress(payload) + c.flush(zlib.Z_FINISH)
    data = b"\x01\x08" + z + zlib.crc32(payload).to_bytes(4, "big")
    _expect_fatal(BlipProtocol(), data, 1011)


def test_oversized_properties_are_fatal_1002() -> None:
    data = encode_varint(200_000) + b"Profile\0"
    err = _expect_fatal(BlipProtocol(), frame(1, FrameFlags.MORE_COMING, data), 1002)
    assert "oversized properties" in str(err)


def test_out_of_sequence_request_number_is_fatal_1011() -> None:
    proto = BlipProtocol()
    proto.receive_frame(frame(1, 0, message_bytes(b"")))
    crc_base = zlib.crc32(message_bytes(b""))
    err = _expect_fatal(proto, frame(3, 0, message_bytes(b""), crc_base), 1011)
    assert "bad request number" in str(err)


def test_repeated_request_number_is_fatal_1011() -> None:
    proto = BlipProtocol()
    proto.receive_frame(frame(1, 0, message_bytes(b"")))
    crc_base = zlib.crc32(message_bytes(b""))
    _expect_fatal(proto, frame(1, 0, message_bytes(b""), crc_base), 1011)


@pytest.mark.parametrize("type_", [MessageType.RESPONSE, MessageType.ERROR])
def test_response_to_unknown_request_is_fatal_1011(type_: MessageType) -> None:
    _expect_fatal(BlipProtocol(), frame(1, type_, message_bytes(b"")), 1011)


def test_response_to_noreply_or_answered_request_is_fatal() -> None:
    proto = BlipProtocol()
    proto.send_request({}, no_reply=True)
    proto.send_request({})
    while proto.next_frame():
        pass
    proto.receive_frame(frame(2, MessageType.RESPONSE, message_bytes(b"")))
    crc_base = zlib.crc32(message_bytes(b""))
    _expect_fatal(proto, frame(1, MessageType.RESPONSE, message_bytes(b""), crc_base), 1011)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "truncated"),
        (b"\x80\x80", "truncated"),
        (b"\xff" * 11 + b"\x00", "10 bytes"),
        (b"\x01\x00\x00", "too short"),
        (frame(1, 0, message_bytes(b"a\0b")), "NUL"),
        (frame(1, 0, message_bytes(b"a\0b\0c\0")), "odd"),
        (frame(1, 0, message_bytes(b"\xff\0b\0")), "UTF-8"),
        (frame(1, 0, encode_varint(10) + b"a\0"), "inside its properties"),
        (frame(1, 0, b""), "before its properties length"),
        (frame(1, 0, b"\x80"), "before its properties length"),
    ],
)
def test_malformed_framing_and_properties_are_fatal_1002(data: bytes, why: str) -> None:
    err = _expect_fatal(BlipProtocol(), data, 1002)
    assert why in str(err)


def test_message_over_max_message_size_is_fatal() -> None:
    sender, receiver = BlipProtocol(frame_size=1024), BlipProtocol(max_message_size=5000)
    sender.send_request({}, bytes(10_000), compressed=True)
    with pytest.raises(BlipError) as info:
        pump(sender, receiver)
    assert info.value.close_code == 1009


def test_undefined_frame_types_and_stray_acks_are_ignored() -> None:
    proto = BlipProtocol()
    assert proto.receive_frame(b"\x01\x03garbage") == []
    assert proto.receive_frame(b"\x05\x07") == []
    assert proto.receive_frame(encode_ack_frame(7, MessageType.ACK_RESPONSE, 5)) == []
    # The running CRC was not disturbed by any of them.
    (m,) = proto.receive_frame(frame(1, 0, message_bytes(b"k\0v\0", b"body")))
    assert m.properties == {"k": "v"} and m.body == b"body"


def test_properties_and_length_varint_may_spill_across_frames() -> None:
    props = b"Profile\0" + b"x" * 300 + b"\0"
    raw = encode_varint(len(props)) + props + b"BODY"
    proto = BlipProtocol()
    crc = 0
    out: list[Message] = []
    pieces = [raw[:1], raw[1:2], raw[2:100], raw[100:]]
    for i, piece in enumerate(pieces):
        flags = 0 if i == len(pieces) - 1 else FrameFlags.MORE_COMING
        out += proto.receive_frame(frame(1, flags, piece, crc))
        crc = zlib.crc32(piece, crc)
    (m,) = out
    assert m.properties == {"Profile": "x" * 300} and m.body == b"BODY" and m.frame_count == 4


@pytest.mark.parametrize("compressed", [False, True])
def test_received_frames_may_live_in_a_reused_mutable_buffer(compressed: bool) -> None:
    sender, receiver = BlipProtocol(frame_size=200), BlipProtocol()
    body = bytes(range(256)) * 8
    sender.send_request({"Profile": "x", "k": "v"}, body, compressed=compressed)
    sender.send_request({"Profile": "small"}, b"tiny")
    buffer = bytearray()
    got: list[Message] = []
    while (data := sender.next_frame()) is not None:
        buffer[:] = data  # one buffer for every frame, overwritten each time
        got.extend(receiver.receive_frame(buffer))
        buffer[:] = b"\xff" * len(buffer)
    by_profile = {m.profile: m for m in got}
    assert (by_profile["x"].properties, by_profile["x"].body) == ({"Profile": "x", "k": "v"}, body)
    assert by_profile["x"].frame_count > 1
    assert by_profile["small"].body == b"tiny"
