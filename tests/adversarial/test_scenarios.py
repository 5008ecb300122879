"""Cross-area scenarios: real clients after a barrage of attacks, and peers failing mid-message.

* After junk frames, a request flood, text floods, idle and half-sent connections, a large
  message and a subscription flood, a listener
  in its own process still syncs a real replicator correctly, within a generous memory bound.
* A pushing peer that vanishes or stalls in the middle of a ``rev`` loses nothing the listener
  acknowledged, and the document can be pushed again.
* A listener that vanishes or stalls in the middle of a ``rev`` costs a replicator nothing it
  acknowledged, and the replicator resumes and completes against the next connection.
* A listener killed (SIGKILL) during a pull restarts on its port with all its data, and the
  continuous replicator resumes and completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.adversarial.fuzzgen import rev_id
from tests.adversarial.peers import (
    ListenerProcess,
    PeerClosed,
    RawPeer,
    ReplicatorProcess,
    hostile_listener,
    raw_client,
    run,
)

pytestmark = pytest.mark.timeout(180)

SEED_DOCS = {f"seed-{i}": {"i": i, "text": "before the barrage"} for i in range(20)}
#: Growth of the listener's memory the whole barrage may cause (generous: it is a few MiB of
#: traffic, and the bound is only there to catch buffering without limit).
BARRAGE_RSS_CEILING = 300 * 1024 * 1024
#: Log lines 100 bad messages on one connection may cause: a few, not one per message.
QUIET_LOG_LINES_PER_CONNECTION = 10
#: A body spanning several BLIP frames, so that a peer can stop in the middle of it.
BIG = "x" * 300_000


async def _junk_connection(url: str, junk: bytes) -> None:
    async with raw_client(url) as peer:
        await peer.send_frame(junk)
        with contextlib.suppress(TimeoutError):
            await peer.closed(15)


async def _flood(url: str, count: int) -> None:
    """Pipelined requests without reading a single reply first, then a sudden drop."""
    async with raw_client(url) as peer:
        for i in range(count):
            await peer.send_request({"Profile": "getCheckpoint", "client": f"flood-{i % 7}"})
        await peer.abort()


async def _texts(url: str, count: int) -> None:
    async with raw_client(url) as peer:
        for i in range(count):
            if not peer.is_open:
                break
            await peer.send_text(f"not BLIP {i}")
        await peer.close()


async def _half_sent(url: str) -> None:
    async with raw_client(url) as peer:
        _, frames = peer.encode_request(
            {"Profile": "setCheckpoint", "client": "half"}, orjson.dumps({"big": BIG})
        )
        await peer.send_frame(frames[0])
        await asyncio.sleep(1)
        await peer.abort()


async def _big_message(url: str, size: int) -> None:
    """One large request (flow-controlled by the listener's ACKs): refused or cut, either way."""
    async with raw_client(url) as peer:
        number = await peer.send_request(
            {"Profile": "setCheckpoint", "client": "big"}, b'{"x":"' + b"y" * size + b'"}'
        )
        with contextlib.suppress(TimeoutError, PeerClosed):
            await peer.response(number, 30)


async def _subscriptions(url: str, count: int) -> None:
    """Many continuous subChanges on one connection, never read, then a close."""
    async with raw_client(url) as peer:
        for _ in range(count):
            if not peer.is_open:
                break
            await peer.send_request({"Profile": "subChanges", "continuous": "true"})
        await asyncio.sleep(0.5)


def test_a_real_client_syncs_after_a_barrage(tmp_path: Path) -> None:
    with ListenerProcess(tmp_path, docs=SEED_DOCS) as listener:
        before = listener.rss()

        async def barrage() -> None:
            url = listener.url
            idle = [raw_client(url) for _ in range(20)]
            peers = [await connection.__aenter__() for connection in idle]
            try:
                junk = [b"\xff" * 12, b"\x01\x00", b"\x01\x40" + b"\x00" * 50, b"", b"\x00"]
                await asyncio.gather(
                    *(_junk_connection(url, j) for j in junk * 6),
                    _flood(url, 2000),
                    _texts(url, 500),
                    *(_half_sent(url) for _ in range(5)),
                    _big_message(url, 4 * 1024 * 1024),
                    _subscriptions(url, 300),
                )
            finally:
                for connection in idle:
                    await connection.__aexit__(None, None, None)
            assert all(not p.is_open for p in peers)

        run(barrage(), timeout=120)
        assert listener.alive(), listener.stderr_text()[-3000:]
        growth = listener.rss() - before
        assert growth < BARRAGE_RSS_CEILING, growth

        with ReplicatorProcess(
            tmp_path, listener.url, docs={f"client-{i}": {"i": i} for i in range(30)}
        ) as client:
            final = client.wait_status("STOPPED", 60)
            assert final["error"] is None, (final, client.stderr_text()[-3000:])
            expected = {**SEED_DOCS, **{f"client-{i}": {"i": i} for i in range(30)}}
            assert client.dump() == expected
        assert listener.dump() == expected
        assert listener.status()["listening"]


def test_bad_messages_are_logged_per_connection_not_per_message(tmp_path: Path) -> None:
    with ListenerProcess(tmp_path) as listener:

        async def noise() -> None:
            await asyncio.gather(*(_texts(listener.url, 100) for _ in range(10)))

        run(noise(), timeout=60)
        log = listener.stderr_text().splitlines()
        assert len(log) < 10 * QUIET_LOG_LINES_PER_CONNECTION, (len(log), log[:3])
        for _ in range(100):  # the listener notices the closes asynchronously
            if listener.status()["connections"] == 0:
                break
            time.sleep(0.1)
        assert listener.status()["connections"] == 0


# --- a pushing peer failing mid-rev ------------------------------------------------------------


async def _push(peer: RawPeer, doc_id: str, body: dict[str, Any]) -> None:
    rev = rev_id(1, doc_id)
    answer = await peer.request({"Profile": "proposeChanges"}, orjson.dumps([[doc_id, rev]]))
    assert not answer.is_error and answer.json() == [], answer
    reply = await peer.request({"Profile": "rev", "id": doc_id, "rev": rev}, orjson.dumps(body))
    assert not reply.is_error, reply


@pytest.mark.parametrize("fault", ["vanish", "stall"])
def test_a_pusher_failing_mid_rev_loses_nothing_acknowledged(tmp_path: Path, fault: str) -> None:
    pushed = {f"pushed-{i}": {"i": i} for i in range(10)}

    with ListenerProcess(tmp_path) as listener:

        async def main() -> None:
            async with raw_client(listener.url) as peer:
                for doc_id, body in pushed.items():
                    await _push(peer, doc_id, body)
                rev = rev_id(1, "half")
                answer = await peer.request(
                    {"Profile": "proposeChanges"}, orjson.dumps([["half", rev]])
                )
                assert answer.json() == []
                _, frames = peer.encode_request(
                    {"Profile": "rev", "id": "half", "rev": rev}, orjson.dumps({"big": BIG})
                )
                assert len(frames) > 1
                await peer.send_frame(frames[0])
                if fault == "stall":
                    # the listener keeps serving others meanwhile, and has what it acknowledged
                    status = await asyncio.to_thread(listener.status)
                    assert status["connections"] == 1
                    assert await asyncio.to_thread(listener.dump) == pushed
                    await asyncio.sleep(1)
                await peer.abort()

        run(main())
        assert listener.dump() == pushed
        # the same document, pushed again by a real replicator, goes through
        with ReplicatorProcess(
            tmp_path, listener.url, type="push", docs={"half": {"big": BIG}}
        ) as client:
            final = client.wait_status("STOPPED", 60)
            assert final["error"] is None, final
        assert listener.dump() == {**pushed, "half": {"big": BIG}}


# --- a listener failing mid-rev ----------------------------------------------------------------


async def _serve_documents(
    peer: RawPeer, docs: dict[str, dict[str, Any]], fault_at: str | None, fault: str
) -> None:
    """A passive peer sending ``docs`` to a pulling replicator; at ``fault_at`` it sends the
    first frame of that ``rev`` only, then vanishes or stalls."""
    feeding: asyncio.Task[None] | None = None

    async def feed() -> None:
        entries = [[i + 1, doc_id, rev_id(1, doc_id)] for i, doc_id in enumerate(docs)]
        reply = await peer.request({"Profile": "changes"}, orjson.dumps(entries), timeout=30)
        answers = reply.json()
        for i, (seq, doc_id, rev) in enumerate(entries):
            if i >= len(answers) or answers[i] == 0:
                continue
            props = {"Profile": "rev", "id": doc_id, "rev": rev, "sequence": str(seq)}
            body = orjson.dumps(docs[doc_id])
            if doc_id == fault_at:
                _, frames = peer.encode_request(props, body)
                await peer.send_frame(frames[0])
                if fault == "vanish":
                    await peer.abort()
                return  # stalled: nothing more is ever sent on this connection
            answer = await peer.request(props, body, timeout=30)
            assert not answer.is_error, answer
        await peer.request({"Profile": "changes"}, b"[]", timeout=30)

    try:
        while True:
            request = await peer.next_request(120)
            if request.no_reply:
                continue
            if request.profile == "getCheckpoint":
                await peer.reply_error(request, "HTTP", 404, "missing")
            elif request.profile == "setCheckpoint":
                await peer.reply(request, {"rev": "1-cc"})
            elif request.profile == "subChanges":
                await peer.reply(request)
                feeding = asyncio.get_running_loop().create_task(feed())
            else:
                await peer.reply_error(request, "BLIP", 404, "no handler for message")
    except (PeerClosed, TimeoutError):
        pass
    finally:
        if feeding is not None:
            feeding.cancel()
            await asyncio.gather(feeding, return_exceptions=True)


@pytest.mark.parametrize("fault", ["vanish", "stall"])
def test_a_listener_failing_mid_rev_costs_the_replicator_nothing(
    tmp_path: Path, fault: str
) -> None:
    docs = {f"doc-{i:02d}": {"i": i} for i in range(8)}
    docs["doc-05"] = {"i": 5, "big": BIG}
    before_fault = {k: v for k, v in docs.items() if k < "doc-05"}
    connections = itertools.count()

    async def handler(peer: RawPeer) -> None:
        first = next(connections) == 0
        await _serve_documents(peer, docs, "doc-05" if first else None, fault)

    async def main() -> None:
        async with hostile_listener(handler) as url:
            client = await asyncio.to_thread(
                ReplicatorProcess, tmp_path, url, type="pull", continuous=True
            )
            try:
                if fault == "stall":
                    # the documents before the stalled one are stored while it hangs...
                    for _ in range(100):
                        if await client.adump() == before_fault:
                            break
                        await asyncio.sleep(0.1)
                    assert await client.adump() == before_fault
                    # ...and a restart, bounded, resumes on a new connection
                    await client.astop_replicator()
                    await asyncio.to_thread(client.start)
                # a vanished listener: the continuous replicator reconnects by itself
                for _ in range(300):
                    if await client.adump() == docs:
                        break
                    await asyncio.sleep(0.1)
                assert await client.adump() == docs
            finally:
                await client.astop()
            assert client.proc.returncode == 0, client.stderr_text()[-3000:]

    run(main(), timeout=150)


def test_a_listener_killed_mid_pull_restarts_and_the_replicator_resumes(tmp_path: Path) -> None:
    docs = {f"doc-{i:03d}": {"i": i, "text": "y" * 2000} for i in range(300)}
    listener = ListenerProcess(tmp_path, docs=docs)
    port = listener.port
    try:
        with ReplicatorProcess(tmp_path, listener.url, type="pull", continuous=True) as client:
            client.wait_event(lambda e: e["event"] == "documents", 60)
            listener.kill()  # SIGKILL, mid-pull (or just after, on a fast machine)
            listener = ListenerProcess(tmp_path, config={"port": port})
            assert listener.dump() == docs  # nothing lost by the kill on its side
            client.wait_event(
                lambda e: e["event"] == "status" and e["activity"] == "IDLE",
                90,
                since=len(client.events),
            )
            for _ in range(100):
                if len(client.dump()) == len(docs):
                    break
                time.sleep(0.1)
            assert client.dump() == docs
    finally:
        listener.close()
