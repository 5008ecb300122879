"""BLIP-level memory attacks, against a listener in its own process and against a replicator.

Each attack tries to make its victim buffer without bound: a message whose frames all carry
``moreComing``, compressed frames inflating a thousandfold, many messages each kept below the
per-message cap, and requests whose replies are never read. Asserted: the victim closes the
connection with the right code (1009 for sizes, 1008 for the rest), its resident memory grows by
less than a generous ceiling, and it still serves a real client afterwards; a replicator facing
such a listener stops with a typed error instead of staying busy.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from couchlite.blip import BlipProtocol
from couchlite.blip.message import (
    FLAG_COMPRESSED,
    FLAG_MORE_COMING,
    TYPE_REQUEST,
    TYPE_RESPONSE,
    encode_properties,
)
from tests.adversarial.peers import (
    SUBPROTOCOL,
    ListenerProcess,
    RawPeer,
    ReplicatorProcess,
    hostile_listener,
    raw_client,
    run,
)
from tests.blip.frames import Forger

pytestmark = pytest.mark.timeout(240)

MIB = 1024 * 1024
#: Resident growth allowed to a victim (the limits bound it near 64 MiB of buffered messages).
RSS_CEILING = 200 * MIB
#: Growth allowed to a listener whose replies are never read. Measured: about 3 MiB with the
#: out-box bound, 89 MiB without it for the 300,000 requests sent here.
UNREAD_RSS_CEILING = 60 * MIB


def _props(properties: dict[str, str]) -> bytes:
    return encode_properties(properties, 100 * 1024)


async def _send_all(peer: RawPeer, frames: list[bytes]) -> int:
    """Send frames until the listener closes; how many went out."""
    sent = 0
    with contextlib.suppress(ConnectionClosed):
        for frame in frames:
            await peer.send_frame(frame)
            sent += 1
    return sent


async def _still_serves(listener: ListenerProcess) -> None:
    async with raw_client(listener.url) as peer:
        reply = await peer.request({"Profile": "getCheckpoint", "client": "after-attack"})
        assert reply.is_error and reply.error_code == 404  # answered: no such checkpoint


def _attack(listener: ListenerProcess, frames: list[bytes]) -> tuple[int | None, int, int]:
    """Send ``frames`` on one raw connection; (close code, frames sent, RSS growth)."""

    async def main() -> tuple[int | None, int]:
        async with raw_client(listener.url) as peer:
            sent = await _send_all(peer, frames)
            code, _ = await peer.closed(30)
            return code, sent

    before = listener.rss()
    code, sent = run(main())
    growth = listener.rss() - before
    run(_still_serves(listener))
    assert listener.alive()
    return code, sent, growth


# ------------------------------------------------------------------ against a listener


def test_more_coming_flood_is_closed_with_1009(tmp_path: Path) -> None:
    forger = Forger()
    chunk = bytes(range(256)) * 240  # 60 KB per frame, uncompressed
    frames = [forger.frame(1, TYPE_REQUEST | FLAG_MORE_COMING, _props({"Profile": "rev"}))]
    frames += [forger.frame(1, TYPE_REQUEST | FLAG_MORE_COMING, chunk) for _ in range(1000)]
    with ListenerProcess(tmp_path) as listener:
        code, sent, growth = _attack(listener, frames)
    assert code == 1009
    assert sent < len(frames)  # 60 MB offered, refused after about 21 MiB
    assert growth < RSS_CEILING, f"listener grew by {growth / MIB:.0f} MiB"


def test_zip_bomb_frames_are_closed_with_1009(tmp_path: Path) -> None:
    """19 compressed frames of ~60 KB, each inflating to 60 MiB (1.3 GiB if buffered)."""
    forger = Forger()
    flags = TYPE_REQUEST | FLAG_MORE_COMING | FLAG_COMPRESSED
    frames = [forger.frame(1, flags, _props({"Profile": "rev"}) + bytes(60 * MIB))]
    frames += [forger.frame(1, flags, bytes(60 * MIB)) for _ in range(18)]
    assert sum(map(len, frames)) < 2 * MIB
    with ListenerProcess(tmp_path) as listener:
        code, _, growth = _attack(listener, frames)
    assert code == 1009
    assert growth < RSS_CEILING, f"listener grew by {growth / MIB:.0f} MiB"


def test_many_messages_below_the_cap_are_closed_at_the_connection_budget(
    tmp_path: Path,
) -> None:
    """Messages each 15 MiB (inflated), never finished: refused at max_buffered_bytes."""
    forger = Forger()
    flags = TYPE_REQUEST | FLAG_MORE_COMING | FLAG_COMPRESSED
    frames = [
        forger.frame(number, flags, _props({"Profile": "rev"}) + bytes(15 * MIB))
        for number in range(1, 41)
    ]
    with ListenerProcess(tmp_path) as listener:
        code, _, growth = _attack(listener, frames)
    assert code == 1009
    assert growth < RSS_CEILING, f"listener grew by {growth / MIB:.0f} MiB"


def test_thousands_of_partial_requests_are_closed_with_1008(tmp_path: Path) -> None:
    forger = Forger()
    flags = TYPE_REQUEST | FLAG_MORE_COMING
    frames = [
        forger.frame(number, flags, _props({"Profile": "rev", "id": f"d{number}"}))
        for number in range(1, 5001)
    ]
    with ListenerProcess(tmp_path) as listener:
        code, _, growth = _attack(listener, frames)
    assert code == 1008
    assert growth < RSS_CEILING


def test_requests_whose_replies_are_never_read_stop_being_read(tmp_path: Path) -> None:
    """A client that sends getCheckpoint after getCheckpoint and reads nothing: the listener
    stops reading once its out-box is full, so the client's sends block and the listener's
    memory stays bounded; other clients are served meanwhile."""

    async def main(listener: ListenerProcess) -> tuple[int, int]:
        protocol = BlipProtocol()
        ws = await ws_connect(
            listener.blipsync_url,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
            max_queue=4,  # we never read: websockets stops reading the socket after 4
            ping_interval=None,
            close_timeout=2,
        )
        before = listener.rss()
        sent = 0
        try:
            async with asyncio.timeout(30):
                for _ in range(300_000):
                    protocol.send_request({"Profile": "getCheckpoint", "client": f"c{sent}"})
                    frame = protocol.next_frame()
                    assert frame is not None
                    await ws.send(frame)
                    sent += 1
        except TimeoutError:
            pass  # the listener stopped reading: our sends block
        await _still_serves(listener)
        growth = listener.rss() - before
        ws.transport.abort()
        return sent, growth

    with ListenerProcess(tmp_path) as listener:
        sent, growth = run(main(listener))
        assert listener.alive()
        run(_still_serves(listener))
    assert sent > 10_000  # enough requests to matter
    assert growth < UNREAD_RSS_CEILING, f"listener grew by {growth / MIB:.0f} MiB"


def test_listener_max_message_size_is_configurable(tmp_path: Path) -> None:
    forger = Forger()
    frames = [forger.frame(1, TYPE_REQUEST, _props({"Profile": "rev"}) + bytes(200_000))]
    with ListenerProcess(tmp_path, config={"max_message_size": 100_000}) as listener:
        code, _, _ = _attack(listener, frames)
    assert code == 1009


# ------------------------------------------------------------------ against a replicator


@pytest.mark.parametrize("attack", ["bomb", "flood"])
def test_replicator_facing_a_hostile_listener_stops_with_a_typed_error(
    tmp_path: Path, attack: str
) -> None:
    """The hostile listener answers the replicator's first request with a reply that never
    ends: compressed frames each inflating to 60 MiB, or 60 KB frames that all say
    moreComing: a continuous replicator must not stay BUSY while its memory grows."""

    async def handler(peer: RawPeer) -> None:
        request = await peer.next_request(30)
        forger = Forger()
        number = request.number
        if attack == "bomb":
            flags = TYPE_RESPONSE | FLAG_MORE_COMING | FLAG_COMPRESSED
            frames = [forger.frame(number, flags, _props({}) + bytes(60 * MIB))]
            frames += [forger.frame(number, flags, bytes(60 * MIB)) for _ in range(18)]
        else:
            flags = TYPE_RESPONSE | FLAG_MORE_COMING
            frames = [forger.frame(number, flags, _props({}))]
            frames += [forger.frame(number, flags, bytes(60_000)) for _ in range(1000)]
        await _send_all(peer, frames)
        await peer.closed(30)

    async def main() -> None:
        async with hostile_listener(handler) as url:
            client = ReplicatorProcess(tmp_path, url, type="pull", continuous=True)
            try:
                before = client.rss()
                final = await client.await_status("STOPPED", 60)
                growth = client.rss() - before
            finally:
                await client.astop()
            assert growth < RSS_CEILING, f"replicator grew by {growth / MIB:.0f} MiB"
            error = final["error"]
            assert error is not None and error["type"] == "BlipLimitExceeded", error
            assert error["code"] == 1009 and error["transient"] is False
            # (what the hostile side sees of the close depends on whether it was still sending
            # when the replicator closed: 1009, or an abrupt end)
            # it never went back to BUSY: stopped at the first attempt, not retried
            assert len(url.peers) == 1

    run(main(), timeout=180)


def test_replicator_max_message_size_is_configurable(tmp_path: Path) -> None:
    async def handler(peer: RawPeer) -> None:
        request = await peer.next_request(30)
        await peer.reply(request, {}, b"x" * 200_000)  # well-formed, just too big for it
        await peer.closed(30)

    async def main() -> None:
        async with hostile_listener(handler) as url:
            client = ReplicatorProcess(
                tmp_path, url, type="pull", config={"max_message_size": 100_000}
            )
            try:
                final = await client.await_status("STOPPED", 60)
            finally:
                await client.astop()
            error = final["error"]
            assert error is not None and error["type"] == "BlipLimitExceeded", error
            assert "max_message_size" in error["message"]

    run(main(), timeout=120)
