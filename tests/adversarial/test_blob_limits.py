"""Hostile blob transfers: a peer answering ``getAttachment`` with more than the cap, or with
content that is not what the digest names, or a huge honest blob.

The receiver streams every ``getAttachment`` reply into a spool file of its blob store, hashing
as it goes: beyond its ``max_attachment_size`` the connection is closed with 1009; a digest
mismatch refuses the revision. Either way nothing is stored, the spool file is gone, and memory
does not grow with the reply (checked against generous ceilings). Both sides: a listener in its
own process facing a raw pushing client, and a replicator in its own process pulling from a
hostile listener.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from couchlite.blip import Message
from tests.adversarial.peers import (
    ListenerProcess,
    RawPeer,
    ReplicatorProcess,
    hostile_listener,
    raw_client,
    run,
)

pytestmark = pytest.mark.timeout(240)

MiB = 1024 * 1024
REV_ID = "1-" + "ab" * 20


def sha1_digest(data: bytes) -> str:
    return "sha1-" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def blob_body(digest: str, length: int) -> bytes:
    return orjson.dumps(
        {"photo": {"@type": "blob", "digest": digest, "length": length, "content_type": "x/y"}}
    )


def blob_folder_files(directory: Path) -> tuple[list[str], list[str]]:
    """(blob files, spool/temporary files) in every blob store under ``directory``."""
    blobs: list[str] = []
    spool: list[str] = []
    for folder in directory.rglob("Attachments"):
        for path in folder.iterdir():
            (blobs if path.suffix == ".blob" else spool).append(path.name)
    return blobs, spool


async def push_rev_with_blob(peer: RawPeer, doc_id: str, body: bytes) -> tuple[int, Message]:
    """Propose and send a ``rev`` whose body references a blob; return the ``rev`` request's
    number and the listener's ``getAttachment`` request."""
    proposal = await peer.request({"Profile": "proposeChanges"}, orjson.dumps([[doc_id, REV_ID]]))
    assert not proposal.is_error, proposal
    number = await peer.send_request(
        {"Profile": "rev", "id": doc_id, "rev": REV_ID, "sequence": "1"}, body
    )
    request = await peer.next_request(30)
    assert request.properties.get("Profile") == "getAttachment"
    return number, request


# --- a listener facing a pushing client ---------------------------------------------------


def test_listener_closes_an_oversized_attachment_reply_with_1009(tmp_path: Path) -> None:
    cap = 2 * MiB
    content = os.urandom(12 * MiB)  # what the hostile client sends: six times the cap
    digest = sha1_digest(content)

    async def attack(listener: ListenerProcess) -> None:
        async with raw_client(listener.url) as peer:
            _, request = await push_rev_with_blob(peer, "hostile", blob_body(digest, 100))
            assert request.properties["digest"] == digest
            await peer.reply(request, {}, content)
            code, _ = await peer.closed(60)
            assert code == 1009

    with ListenerProcess(tmp_path, config={"max_attachment_size": cap}) as listener:
        before = listener.rss()
        run(attack(listener))
        assert listener.alive()
        assert "hostile" not in listener.dump()
        assert blob_folder_files(listener.directory) == ([], [])  # no blob, no spool file
        assert listener.rss() - before < 64 * MiB
        # real clients are still served
        with ReplicatorProcess(tmp_path, listener.url, type="push", docs={"ok": {"n": 1}}) as c:
            assert c.wait_status("STOPPED", 60)["error"] is None, c.stderr_text()
        assert listener.dump() == {"ok": {"n": 1}}


def test_listener_refuses_attachment_content_not_matching_its_digest(tmp_path: Path) -> None:
    promised = b"the content the digest names"
    digest = sha1_digest(promised)

    async def attack(listener: ListenerProcess) -> None:
        async with raw_client(listener.url) as peer:
            number, request = await push_rev_with_blob(
                peer, "forged", blob_body(digest, len(promised))
            )
            await peer.reply(request, {}, b"something else entirely " * 1000)
            reply = await peer.response(number, 30)
            assert reply.is_error  # the rev is refused...
            assert peer.is_open  # ...and the connection stays usable
            again = await peer.request({"Profile": "getCheckpoint", "client": "x"})
            assert again.is_error and again.error_code == 404

    with ListenerProcess(tmp_path) as listener:
        run(attack(listener))
        assert "forged" not in listener.dump()
        assert blob_folder_files(listener.directory) == ([], [])


def test_listener_streams_a_large_blob_to_disk(tmp_path: Path) -> None:
    content = os.urandom(64 * MiB)
    digest = sha1_digest(content)

    async def push(listener: ListenerProcess) -> None:
        async with raw_client(listener.url) as peer:
            number, request = await push_rev_with_blob(peer, "big", blob_body(digest, len(content)))
            await peer.reply(request, {}, content)
            reply = await peer.response(number, 120)
            assert not reply.is_error, reply.body

    with ListenerProcess(tmp_path) as listener:
        before = listener.rss()
        run(push(listener))
        grown = listener.rss() - before
        assert "big" in listener.dump() and listener.missing_blobs() == []
        blobs, spool = blob_folder_files(listener.directory)
        assert len(blobs) == 1 and spool == []
        # held in memory whole, the reply alone would be 64 MiB (plus copies)
        assert grown < 32 * MiB, grown


# --- a replicator facing a hostile listener -----------------------------------------------


def _hostile_source(content: bytes, digest: str, seen: dict[str, Any]) -> Any:
    """A listener that offers one document with a blob, then answers ``getAttachment`` with
    ``content`` (whatever the digest says)."""

    async def handler(peer: RawPeer) -> None:
        while True:
            request = await peer.next_request(60)
            profile = request.properties.get("Profile")
            if profile == "getCheckpoint":
                await peer.reply_error(request, "HTTP", 404, "missing")
            elif profile == "subChanges":
                await peer.reply(request, {})
                answer = await peer.request(
                    {"Profile": "changes"}, orjson.dumps([[1, "evil", REV_ID]])
                )
                assert not answer.is_error, answer
                await peer.send_request(
                    {"Profile": "rev", "id": "evil", "rev": REV_ID, "sequence": "1"},
                    blob_body(digest, 100),
                )
            elif profile == "getAttachment":
                seen["getAttachment"] = seen.get("getAttachment", 0) + 1
                await peer.reply(request, {}, content)
            elif not request.no_reply:
                await peer.reply(request, {})

    return handler


def test_replicator_closes_an_oversized_attachment_reply_with_1009(tmp_path: Path) -> None:
    content = os.urandom(12 * MiB)
    digest = sha1_digest(content)
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with hostile_listener(_hostile_source(content, digest, seen)) as url:
            client = await asyncio.to_thread(
                ReplicatorProcess,
                tmp_path,
                url,
                type="pull",
                config={"max_attachment_size": 2 * MiB},
            )
            try:
                final = await client.await_status("STOPPED", 90)
                error = client.last_error()
                dump = await client.adump()
                rss = client.rss()
            finally:
                await client.astop()
            assert final["error"] is not None
            assert error is not None and error["code"] == 1009, error
            assert "evil" not in dump
            assert rss < 400 * MiB
            assert blob_folder_files(client.directory) == ([], [])
            assert seen.get("getAttachment", 0) >= 1

    run(main())
