"""BLIP over real WebSockets between two real processes on 127.0.0.1.

The server is ``blip_peer.py`` in a child process (real sockets, real ``websockets`` server,
real ``BlipConnection``); the client is this process. Hand-rolled raw clients send broken BLIP
to check that the server closes just that connection, with the right code, and keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from couchlite.blip import BlipProtocol, Message
from couchlite.transport.blip_connection import BlipConnection
from couchlite.transport.websocket import HandshakeRefused, connect_channel
from tests.transport.helpers import run

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

PEER = Path(__file__).with_name("blip_peer.py")
EVENT_TIMEOUT_S = 10.0


class Peer:
    """The child process and the JSON events it prints."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(PEER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        first = self.next_event()
        assert first["event"] == "listening"
        self.port: int = first["port"]
        self.url = f"ws://127.0.0.1:{self.port}/db/_blipsync"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))

    def next_event(self, timeout: float = EVENT_TIMEOUT_S) -> dict[str, Any]:
        return self.events.get(timeout=timeout)

    def closed_event_for(self, local_port: int) -> dict[str, Any]:
        """The server's record of the connection whose client side used ``local_port``."""
        for _ in range(50):
            event = self.next_event()
            if event["event"] == "closed" and event["remote"].endswith(f":{local_port}"):
                return event
        raise AssertionError("no close event for that connection")

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._thread.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    p = Peer()
    try:
        yield p
    finally:
        p.stop()
    assert p.process.returncode == 0


async def _open(peer: Peer, **kwargs: Any) -> BlipConnection:
    channel = await connect_channel(peer.url, **kwargs)
    conn = BlipConnection(channel, BlipProtocol())
    conn.start()
    return conn


def test_many_concurrent_requests(peer: Peer) -> None:
    async def main() -> None:
        conn = await _open(peer)
        try:
            bodies = [(b"%04d-" % i) * (i % 50 + 1) for i in range(1000)]
            replies = await asyncio.gather(
                *(
                    conn.request({"Profile": "echo", "n": str(i)}, body, compressed=bool(i % 3))
                    for i, body in enumerate(bodies)
                )
            )
            assert [r.body for r in replies] == bodies
            assert [r.properties["n"] for r in replies] == [str(i) for i in range(1000)]
        finally:
            await conn.close()

    run(main(), timeout=40)


def test_ten_megabyte_echo_flows_through_acks(peer: Peer) -> None:
    async def main() -> None:
        conn = await _open(peer)
        try:
            body = bytes(range(256)) * (10 * 4096)  # 10 MiB
            reply = await conn.request({"Profile": "echo"}, memoryview(body), timeout=60)
            assert reply.body == body
            mine = conn.statistics()["blip"]
            # BLIP_MAX_UNACKED_BYTES is 128 KB: 10 MB can only have crossed if ACKs flowed
            assert mine["acks_received"] > 50
            assert mine["acks_sent"] > 50
            theirs = json.loads((await conn.request({"Profile": "stats"})).body)["blip"]
            assert theirs["acks_sent"] == mine["acks_received"]
            assert theirs["acks_received"] == mine["acks_sent"]
        finally:
            await conn.close()

    run(main(), timeout=50)


def test_urgent_messages_overtake_a_bulk_one(peer: Peer) -> None:
    async def main() -> None:
        conn = await _open(peer)
        try:
            order: list[str] = []

            async def call(tag: str, body: bytes, urgent: bool) -> Message:
                reply = await conn.request({"Profile": "echo"}, body, urgent=urgent, timeout=60)
                order.append(tag)
                return reply

            bulk = asyncio.create_task(call("bulk", b"b" * (10 * 1024 * 1024), False))
            await asyncio.sleep(0)
            for i in range(5):
                reply = await call(f"urgent-{i}", b"u%d" % i, True)
                assert reply.urgent  # replies copy the request's urgent flag
            await bulk
            assert order == [*(f"urgent-{i}" for i in range(5)), "bulk"]
        finally:
            await conn.close()

    run(main(), timeout=50)


def test_subprotocol_negotiation(peer: Peer) -> None:
    async def main() -> None:
        channel = await connect_channel(peer.url)
        assert channel.subprotocol == "BLIP_3+CBMobile_3"
        await channel.close()
        channel = await connect_channel(peer.url, subprotocols=["BLIP_3+CBMobile_2"])
        assert channel.subprotocol == "BLIP_3+CBMobile_2"
        await channel.close()
        # the client's order wins (LiteCore's listener picks the first offer it supports)
        channel = await connect_channel(
            peer.url, subprotocols=["BLIP_3+CBMobile_4", "BLIP_3+CBMobile_2", "BLIP_3+CBMobile_3"]
        )
        assert channel.subprotocol == "BLIP_3+CBMobile_2"
        await channel.close()
        with pytest.raises(HandshakeRefused) as info:
            await connect_channel(peer.url, subprotocols=["BLIP_3+CBMobile_4"])
        assert info.value.code == 400 and not info.value.is_transient
        assert "sub-protocol" in str(info.value)

    run(main())


def test_pings_are_answered(peer: Peer) -> None:
    async def main() -> None:
        async with ws_connect(
            peer.url, subprotocols=["BLIP_3+CBMobile_3"], compression=None, proxy=None
        ) as ws:
            for _ in range(3):
                pong = await ws.ping()
                await asyncio.wait_for(pong, 5)

    run(main())


# --- bad peers ---------------------------------------------------------------------------


def _frame(number: int, flags: int, payload: bytes, crc: int | None = None) -> bytes:
    assert number < 128 and flags < 128
    checksum = zlib.crc32(payload) if crc is None else crc
    return bytes([number, flags]) + payload + checksum.to_bytes(4, "big")


def _props(**props: str) -> bytes:
    block = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in props.items())
    assert len(block) < 128
    return bytes([len(block)]) + block


GOOD = _frame(1, 0x00, _props(Profile="echo") + b"hi")
BAD_FRAMES = {
    "bad-checksum": [_frame(1, 0x00, _props(Profile="echo") + b"hi", crc=0xDEADBEEF)],
    # compressed flag (0x08) over bytes that are not a deflate stream
    "corrupt-deflate": [bytes([1, 0x08]) + b"\xff\xfe\xfd\xfc\xfb\xfa" + b"\0\0\0\0"],
    # a properties block announced as 200 KiB (LiteCore's limit is 100 KiB), spread over
    # frames with MoreComing so it has to be rejected from the length alone
    "oversized-properties": [
        bytes([1, 0x40]) + b"\x80\xb2\x0c" + b"a" * 1000 + b"\0\0\0\0",
    ],
    "out-of-sequence": [_frame(5, 0x00, _props(Profile="echo") + b"hi")],
}


def _fix_crc_of_first(frames: list[bytes]) -> list[bytes]:
    # the oversized-properties frame must pass the CRC check to reach the size check
    frame = frames[0]
    payload = frame[2:-4]
    return [frame[:2] + payload + zlib.crc32(payload).to_bytes(4, "big"), *frames[1:]]


BAD_FRAMES["oversized-properties"] = _fix_crc_of_first(BAD_FRAMES["oversized-properties"])


EXPECTED_ERROR = {
    "bad-checksum": "checksum",
    "corrupt-deflate": "corrupt compressed",
    "oversized-properties": "oversized properties",
    "out-of-sequence": "request number",
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_peer_is_closed_and_others_keep_working(peer: Peer, case: str) -> None:
    async def main() -> dict[str, Any]:
        good = await _open(peer)
        try:
            assert (await good.request({"Profile": "echo"}, b"before")).body == b"before"
            async with ws_connect(
                peer.url, subprotocols=["BLIP_3+CBMobile_3"], compression=None, proxy=None
            ) as raw:
                local_port = raw.local_address[1]
                # a well-formed request first: the server is fine with this connection so far
                await raw.send(GOOD)
                reply = await asyncio.wait_for(raw.recv(), 5)
                assert isinstance(reply, bytes) and reply[:2] == bytes([1, 0x01])
                for frame in BAD_FRAMES[case]:
                    # the good frame already used #1 and its CRC; renumber to keep each
                    # case about its one defect
                    await raw.send(_renumber(frame, case))
                with pytest.raises(ConnectionClosed):
                    while True:
                        await asyncio.wait_for(raw.recv(), 5)
                code, reason = raw.close_code, raw.close_reason
            assert code in (1002, 1011), (code, reason)
            assert reason
            assert (await good.request({"Profile": "echo"}, b"after")).body == b"after"
        finally:
            await good.close()
        event = await asyncio.to_thread(peer.closed_event_for, local_port)
        assert event["code"] == code
        return event

    event = run(main())
    assert event["error_type"] == "BlipError"
    assert EXPECTED_ERROR[case] in event["error"].lower()


def _renumber(frame: bytes, case: str) -> bytes:
    """Adapt a frame written as if it were the first on the connection to come second."""
    number, flags, payload = frame[0], frame[1], frame[2:-4]
    crc_ok = zlib.crc32(payload, zlib.crc32(_props(Profile="echo") + b"hi"))
    if case == "out-of-sequence":
        return bytes([number, flags]) + payload + crc_ok.to_bytes(4, "big")
    if case == "bad-checksum":
        return bytes([2, flags]) + payload + (crc_ok ^ 0xFFFFFFFF).to_bytes(4, "big")
    return bytes([2, flags]) + payload + crc_ok.to_bytes(4, "big")
