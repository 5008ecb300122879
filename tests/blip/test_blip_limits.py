"""BlipProtocol's limits against a hostile peer, and streamed replies (sans I/O)."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from couchlite._tuning import (
    BLIP_MAX_ABANDONED_REPLIES,
    BLIP_MAX_BUFFERED_BYTES,
    BLIP_MAX_INCOMING_MESSAGES,
    BLIP_MAX_MESSAGE_SIZE,
)
from couchlite.blip import BlipError, BlipLimitExceeded, BlipProtocol, MessageType
from couchlite.blip.codec import BLIP_MAX_INFLATED_FRAME_SIZE
from couchlite.blip.message import (
    FLAG_COMPRESSED,
    FLAG_MORE_COMING,
    TYPE_ERROR,
    TYPE_REQUEST,
    TYPE_RESPONSE,
    encode_properties,
)
from tests.blip.frames import Forger

MIB = 1024 * 1024


def head(properties: dict[str, str] | None = None) -> bytes:
    return encode_properties(properties or {"Profile": "rev"}, 100 * 1024)


def test_defaults_bound_every_connection() -> None:
    proto = BlipProtocol()
    assert proto._max_message_size == BLIP_MAX_MESSAGE_SIZE == 21 * MIB
    assert proto._receiver._max_buffered == BLIP_MAX_BUFFERED_BYTES
    assert proto._receiver._max_incoming == BLIP_MAX_INCOMING_MESSAGES
    # a single maximum-size message always fits, whatever max_buffered_bytes says
    assert (
        BlipProtocol(max_message_size=10 * MIB, max_buffered_bytes=1)._receiver._max_buffered
        == 10 * MIB
    )
    for bad in (0, -1, 1.5, "1"):
        with pytest.raises(ValueError):
            BlipProtocol(max_message_size=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            BlipProtocol(max_incoming_messages=bad)  # type: ignore[arg-type]


def test_more_coming_flood_is_refused_at_max_message_size() -> None:
    """A message whose frames all carry moreComing is refused once it passes the limit, never
    buffered without end."""
    receiver = BlipProtocol(max_message_size=MIB)
    forger = Forger()
    receiver.receive_frame(forger.frame(1, TYPE_REQUEST | FLAG_MORE_COMING, head()))
    chunk = os.urandom(60_000)
    received = 0
    with pytest.raises(BlipLimitExceeded) as info:
        for _ in range(100):
            receiver.receive_frame(forger.frame(1, TYPE_REQUEST | FLAG_MORE_COMING, chunk))
            received += len(chunk)
    assert info.value.limit == "max_message_size" and info.value.maximum == MIB
    assert info.value.close_code == 1009 and info.value.is_remote_fault
    assert received <= MIB
    assert receiver.buffered_bytes <= MIB
    # poisoned: later frames re-raise, nothing more is sent
    with pytest.raises(BlipLimitExceeded):
        receiver.receive_frame(forger.frame(2, TYPE_REQUEST, head()))
    assert receiver.next_frame() is None


def test_default_limit_accepts_a_20_mib_document_and_refuses_more() -> None:
    sender, receiver = BlipProtocol(), BlipProtocol()
    body = b"[" + b"0," * (10 * MIB) + b"0]"  # ~20 MiB of JSON, compressible
    sender.send_request({"Profile": "rev", "id": "big"}, body, compressed=True)
    got = []
    while (frame := sender.next_frame()) is not None:
        got.extend(receiver.receive_frame(frame))
        while (ack := receiver.next_frame()) is not None:
            sender.receive_frame(ack)
    assert got[0].body == body and receiver.buffered_bytes == 0
    sender.send_request({"Profile": "rev"}, bytes(BLIP_MAX_MESSAGE_SIZE), compressed=True)
    with pytest.raises(BlipLimitExceeded):
        while (frame := sender.next_frame()) is not None:
            receiver.receive_frame(frame)
            while (ack := receiver.next_frame()) is not None:
                sender.receive_frame(ack)


def test_zip_bomb_frame_never_inflates_beyond_the_allowance() -> None:
    """One compressed frame of ~60 KB inflating to 60 MiB: refused after inflating at most
    what is left of the message's allowance (here 1 MiB), not 60 MiB."""
    receiver = BlipProtocol(max_message_size=MIB)
    forger = Forger()
    bomb = forger.frame(1, TYPE_REQUEST | FLAG_COMPRESSED, head() + bytes(60 * MIB))
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(BlipLimitExceeded) as info:
            receiver.receive_frame(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.close_code == 1009 and info.value.limit == "max_message_size"
    assert peak < 4 * MIB  # the allowance plus copies of the frame, nowhere near 60 MiB


def test_zip_bomb_frames_of_a_continued_message_get_only_the_remaining_allowance() -> None:
    receiver = BlipProtocol(max_message_size=2 * MIB)
    forger = Forger()
    flags = TYPE_REQUEST | FLAG_COMPRESSED | FLAG_MORE_COMING
    receiver.receive_frame(forger.frame(1, flags, head() + bytes(MIB + MIB // 2)))
    bomb = forger.frame(1, flags, bytes(40 * MIB))
    tracemalloc.start()
    try:
        with pytest.raises(BlipLimitExceeded):
            receiver.receive_frame(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MIB


def test_unbounded_message_size_still_caps_each_inflated_frame() -> None:
    receiver = BlipProtocol(max_message_size=None, max_buffered_bytes=None)
    forger = Forger()
    with pytest.raises(BlipLimitExceeded):
        receiver.receive_frame(
            forger.frame(1, TYPE_REQUEST | FLAG_COMPRESSED, bytes(BLIP_MAX_INFLATED_FRAME_SIZE + 1))
        )


def test_many_partial_requests_are_refused_at_max_incoming_messages() -> None:
    receiver = BlipProtocol(max_incoming_messages=10)
    forger = Forger()
    for number in range(1, 11):
        receiver.receive_frame(forger.frame(number, TYPE_REQUEST | FLAG_MORE_COMING, head()))
    assert receiver.incoming_in_progress == 10
    # single-frame messages never count: they are not buffered between frames
    assert receiver.receive_frame(forger.frame(11, TYPE_REQUEST, head()))[0].number == 11
    with pytest.raises(BlipLimitExceeded) as info:
        receiver.receive_frame(forger.frame(12, TYPE_REQUEST | FLAG_MORE_COMING, head()))
    assert info.value.limit == "max_incoming_messages" and info.value.close_code == 1008


def test_default_incoming_limit_is_above_what_litecore_sends() -> None:
    receiver = BlipProtocol()
    forger = Forger()
    for number in range(1, 201):  # 200 revs in progress at once: more than LiteCore's 10
        receiver.receive_frame(forger.frame(number, TYPE_REQUEST | FLAG_MORE_COMING, head()))
    for number in range(1, 201):
        done = receiver.receive_frame(forger.frame(number, TYPE_REQUEST, b"{}"))
        assert done[0].body == b"{}"
    assert receiver.incoming_in_progress == 0 and receiver.buffered_bytes == 0


def test_partial_messages_together_are_refused_at_max_buffered_bytes() -> None:
    """Many messages, each below max_message_size, together beyond max_buffered_bytes."""
    receiver = BlipProtocol(max_message_size=MIB, max_buffered_bytes=3 * MIB)
    forger = Forger()
    chunk = bytes(512 * 1024)
    flags = TYPE_REQUEST | FLAG_MORE_COMING | FLAG_COMPRESSED
    with pytest.raises(BlipLimitExceeded) as info:
        for number in range(1, 100):
            receiver.receive_frame(forger.frame(number, flags, head() + chunk))
    assert info.value.limit == "max_buffered_bytes" and info.value.close_code == 1009
    assert receiver.buffered_bytes <= 3 * MIB


def test_buffered_bytes_are_released_when_messages_complete() -> None:
    sender, receiver = BlipProtocol(frame_size=4096), BlipProtocol()
    for _ in range(3):
        sender.send_request({"Profile": "rev"}, os.urandom(50_000))
    frames = []
    while (frame := sender.next_frame()) is not None:
        frames.append(frame)
    for frame in frames[:-3]:
        receiver.receive_frame(frame)
    assert 0 < receiver.buffered_bytes < 150_100 and receiver.incoming_in_progress == 3
    for frame in frames[-3:]:
        receiver.receive_frame(frame)
    assert receiver.buffered_bytes == 0 and receiver.incoming_in_progress == 0


def test_acks_for_one_message_are_coalesced_while_we_cannot_send() -> None:
    """A peer that sends but never reads cannot grow our ACK queue: one ACK per message."""
    sender = BlipProtocol(max_unacked_bytes=10**9, frame_size=16384)
    receiver = BlipProtocol(ack_threshold=10_000)
    sender.send_request({"Profile": "a"}, os.urandom(500_000))
    sender.send_request({"Profile": "b"}, os.urandom(500_000))
    while (frame := sender.next_frame()) is not None:
        receiver.receive_frame(frame)
    acks = []
    while (ack := receiver.next_frame()) is not None:
        acks.append(ack)
    assert len(acks) == 2  # the latest, cumulative ACK of each message
    assert receiver.statistics().acks_sent == 2


# ------------------------------------------------------------------ streamed replies


def _answer(requester: BlipProtocol, responder: BlipProtocol, body: bytes, **kw: bool) -> list:  # type: ignore[type-arg]
    """Move the request to the responder, have it reply with ``body``, feed the reply back."""
    while (frame := requester.next_frame()) is not None:
        responder.receive_frame(frame)
    responder.send_response(1, {"Kind": "blob"}, body, **kw)
    done = []
    while (frame := responder.next_frame()) is not None:
        done.extend(requester.receive_frame(frame))
        while (ack := requester.next_frame()) is not None:
            responder.receive_frame(ack)
    return done


@pytest.mark.parametrize("compressed", [False, True])
def test_streamed_reply_goes_to_the_sink_and_is_never_buffered(compressed: bool) -> None:
    requester, responder = BlipProtocol(max_message_size=100_000), BlipProtocol(frame_size=4096)
    number = requester.send_request({"Profile": "getAttachment"})
    pieces: list[bytes] = []
    biggest_buffer = 0

    def sink(view: memoryview) -> None:
        nonlocal biggest_buffer
        biggest_buffer = max(biggest_buffer, requester.buffered_bytes)
        pieces.append(bytes(view))

    requester.stream_response(number, 1_000_000, sink)
    blob = os.urandom(500_000) + bytes(300_000)  # bigger than max_message_size
    done = _answer(requester, responder, blob, compressed=compressed)
    assert b"".join(pieces) == blob and len(pieces) > 10
    assert done[0].type is MessageType.RESPONSE and done[0].properties == {"Kind": "blob"}
    assert done[0].body == b""
    assert biggest_buffer == 0 and requester.buffered_bytes == 0
    assert not requester.is_awaiting_response(number) and not requester._receiver.streams


def test_streamed_reply_beyond_its_cap_is_fatal_and_the_sink_never_sees_the_excess() -> None:
    requester, responder = BlipProtocol(), BlipProtocol(frame_size=4096)
    number = requester.send_request({"Profile": "getAttachment"})
    pieces: list[bytes] = []
    requester.stream_response(number, 100_000, pieces.append)
    with pytest.raises(BlipLimitExceeded) as info:
        _answer(requester, responder, os.urandom(100_001))
    assert info.value.limit == "max_size" and info.value.maximum == 100_000
    assert info.value.close_code == 1009
    assert sum(map(len, pieces)) <= 100_000


def test_streamed_reply_of_exactly_its_cap_in_one_frame_and_properties_across_frames() -> None:
    requester = BlipProtocol()
    forger = Forger()
    number = requester.send_request({"Profile": "getAttachment"})
    pieces: list[bytes] = []
    requester.stream_response(number, 5, lambda v: pieces.append(bytes(v)))
    data = head({"Kind": "blob", "pad": "x" * 300}) + b"12345"
    # properties length varint and properties split over frames, one byte at a time at first
    frames = [data[:1], data[1:2], data[2:100], data[100:]]
    done = []
    for i, part in enumerate(frames):
        flags = TYPE_RESPONSE | (FLAG_MORE_COMING if i < len(frames) - 1 else 0)
        done.extend(requester.receive_frame(forger.frame(number, flags, part)))
    assert b"".join(pieces) == b"12345"
    assert done[0].properties == {"Kind": "blob", "pad": "x" * 300}


def test_streamed_reply_ending_inside_its_properties_is_fatal() -> None:
    requester = BlipProtocol()
    forger = Forger()
    number = requester.send_request({"Profile": "getAttachment"})
    requester.stream_response(number, 10, lambda v: None)
    with pytest.raises(BlipError, match="inside its properties"):
        requester.receive_frame(forger.frame(number, TYPE_RESPONSE, head()[:5]))


def test_err_reply_to_a_streamed_request_arrives_buffered() -> None:
    requester = BlipProtocol()
    forger = Forger()
    number = requester.send_request({"Profile": "getAttachment"})
    pieces: list[bytes] = []
    requester.stream_response(number, 10, pieces.append)
    props = encode_properties({"Error-Domain": "HTTP", "Error-Code": "404"}, 1000)
    done = requester.receive_frame(forger.frame(number, TYPE_ERROR, props + b"not found"))
    assert done[0].is_error and done[0].error_code == 404 and done[0].body == b"not found"
    assert pieces == [] and not requester._receiver.streams


def test_stream_response_is_refused_for_requests_that_await_nothing() -> None:
    proto = BlipProtocol()
    with pytest.raises(BlipError, match="awaits no reply"):
        proto.stream_response(1, 10, lambda v: None)
    no_reply = proto.send_request({"Profile": "x"}, no_reply=True)
    with pytest.raises(BlipError):
        proto.stream_response(no_reply, 10, lambda v: None)
    number = proto.send_request({"Profile": "x"})
    with pytest.raises(ValueError):
        proto.stream_response(number, -1, lambda v: None)
    proto.stream_response(number, 10, lambda v: None)
    with pytest.raises(BlipError, match="already"):
        proto.stream_response(number, 10, lambda v: None)


def test_abandoned_requests_are_remembered_only_up_to_a_bound() -> None:
    """Late replies to requests we gave up on are accepted, but a peer that never answers
    cannot make us remember every request number we sent."""
    requester, responder = BlipProtocol(), BlipProtocol()
    first = requester.send_request({"Profile": "slow"})
    requester.abandon_response(first)
    assert requester.is_awaiting_response(first)
    _answer(requester, responder, b"late")  # a late reply is still fine
    assert not requester.is_awaiting_response(first)
    requester.abandon_response(first)  # answered already: nothing to remember
    numbers = [
        requester.send_request({"Profile": "slow"}) for _ in range(BLIP_MAX_ABANDONED_REPLIES + 5)
    ]
    for number in numbers:
        requester.abandon_response(number)
    assert len(requester._abandoned) == BLIP_MAX_ABANDONED_REPLIES
    assert len(requester._awaiting_response) == BLIP_MAX_ABANDONED_REPLIES
    forgotten = numbers[0]
    props = encode_properties({}, 10)
    with pytest.raises(BlipError, match="answers no pending request"):
        requester.receive_frame(Forger().frame(forgotten, TYPE_RESPONSE, props))
