"""The adversarial harness itself: real peers in processes, raw and hostile BLIP peers."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from couchlite.blip import Message
from tests.adversarial.peers import (
    ChildFailed,
    ListenerProcess,
    RawPeer,
    ReplicatorProcess,
    hostile_listener,
    kill_children,
    live_children,
    raw_client,
    rss_of,
    run,
)

pytestmark = pytest.mark.timeout(120)


def test_listener_process_syncs_with_replicator_process(tmp_path: Path) -> None:
    with ListenerProcess(tmp_path, docs={"from-listener": {"n": 1}}) as listener:
        assert listener.alive() and listener.status()["listening"]
        assert rss_of(listener.pid) > 1_000_000
        with ReplicatorProcess(
            tmp_path, listener.url, type="pushpull", docs={"from-client": {"n": 2}}
        ) as client:
            final = client.wait_status("STOPPED", 60)
            assert final["error"] is None, client.stderr_text()
            assert client.dump() == {"from-listener": {"n": 1}, "from-client": {"n": 2}}
            pushed = [d["id"] for e in client.document_events() if e["is_push"] for d in e["docs"]]
            assert pushed == ["from-client"]
            assert client.document_errors() == []
            assert client.last_error() is None
        assert listener.dump() == {"from-listener": {"n": 1}, "from-client": {"n": 2}}
        assert listener.revs()["from-client"].startswith("1-")


def test_replicator_process_options_reach_the_configuration(tmp_path: Path) -> None:
    docs = {"a": {"v": 1}, "b": {"v": 2}, "c": {"v": 3}}
    with ListenerProcess(tmp_path, docs=docs) as listener:
        with ReplicatorProcess(
            tmp_path, listener.url, type="pull", document_ids=["a", "c"], config={"heartbeat": 30}
        ) as client:
            assert client.wait_status("STOPPED", 60)["error"] is None
            assert client.dump() == {"a": {"v": 1}, "c": {"v": 3}}
        # a misspelt field is refused, not silently ignored
        with pytest.raises(ChildFailed, match="no_such_field"):
            ReplicatorProcess(tmp_path, listener.url, name="other", config={"no_such_field": 1})


def test_raw_peer_gets_checkpoint_replies(tmp_path: Path) -> None:
    async def main(listener: ListenerProcess) -> None:
        async with raw_client(listener.url) as peer:
            missing = await peer.request({"Profile": "getCheckpoint", "client": "harness"})
            assert missing.is_error and missing.error_code == 404
            saved = await peer.request(
                {"Profile": "setCheckpoint", "client": "harness"}, b'{"local":7}'
            )
            assert not saved.is_error and saved.properties["rev"]
            found = await peer.request({"Profile": "getCheckpoint", "client": "harness"})
            assert found.json() == {"local": 7}
            assert found.properties["rev"] == saved.properties["rev"]
            assert peer.is_open
            # arbitrary bytes: a fatal framing error, closed with a typed code
            await peer.send_frame(b"\xff" * 12)
            code, _ = await peer.closed(10)
            assert code == 1002
            assert not peer.is_open

    with ListenerProcess(tmp_path) as listener:
        run(main(listener))
        assert listener.alive()
        assert listener.status()["listening"]


def test_hostile_listener_sees_the_replicators_first_messages(tmp_path: Path) -> None:
    seen: list[Message] = []

    async def handler(peer: RawPeer) -> None:
        # refuses everything, until the replicator gives up and hangs up
        while True:
            request = await peer.next_request(30)
            seen.append(request)
            if not request.no_reply:
                await peer.reply_error(request, "HTTP", 403, "forbidden")

    async def main() -> None:
        async with hostile_listener(handler) as url:
            client = await asyncio.to_thread(
                ReplicatorProcess, tmp_path, url, type="pull", config={"max_attempts": 1}
            )
            try:
                final = await client.await_status("STOPPED", 60)
            finally:
                await client.astop()
            assert url.requests and url.requests[0].path == "/db/_blipsync"
            assert final["error"] is not None

    run(main())
    # a default-collection-only replicator speaks the 3.0 dialect: its checkpoint first
    assert seen and seen[0].profile == "getCheckpoint"
    assert seen[0].properties["client"].startswith("cp-")


def test_a_peer_vanishing_mid_message_leaves_the_listener_serving(tmp_path: Path) -> None:
    async def main(listener: ListenerProcess) -> None:
        async with raw_client(listener.url) as peer:
            _, frames = peer.encode_request(
                {"Profile": "setCheckpoint", "client": "half"}, b'{"x":"' + b"y" * 200_000 + b'"}'
            )
            assert len(frames) > 1
            await peer.send_frame(frames[0])
            await peer.abort()
        async with raw_client(listener.url) as peer:
            reply = await peer.request({"Profile": "getCheckpoint", "client": "half"})
            assert reply.error_code == 404

    with ListenerProcess(tmp_path) as listener:
        run(main(listener))
        assert listener.alive()


def test_documents_with_blobs_replicate_between_processes(tmp_path: Path) -> None:
    content = b"blob bytes " * 100
    blob = {"@blob": base64.b64encode(content).decode(), "content_type": "text/plain"}
    with ListenerProcess(tmp_path, docs={"with-blob": {"file": blob}}) as listener:
        stored = listener.dump()["with-blob"]["file"]
        assert stored["length"] == len(content) and stored["digest"].startswith("sha1-")
        with ReplicatorProcess(tmp_path, listener.url, type="pull") as client:
            assert client.wait_status("STOPPED", 60)["error"] is None
            assert client.dump() == listener.dump()
        assert listener.missing_blobs() == []


def test_children_left_behind_are_killed(tmp_path: Path) -> None:
    before = live_children()
    forgotten = ListenerProcess(tmp_path)  # never closed by this test
    assert forgotten.alive()
    assert kill_children(keep=before) == 1
    assert not forgotten.alive()
