"""Replication semantics against hostile peers, each side in its own process: one live
``subChanges`` per collection, bounded checkpoints on a read-only listener, nothing stored that
was not asked for, and 4xx (never 501) for deep bodies, big integers and bad revision IDs."""

from __future__ import annotations

import asyncio
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

pytestmark = pytest.mark.timeout(300)

R1 = "1-" + "a1" * 20
R1B = "1-" + "b1" * 20
MIB = 1024 * 1024


async def _pipelined(
    peer: RawPeer, requests: list[tuple[dict[str, str], bytes]], timeout: float = 60
) -> list[Message]:
    """Send ``requests`` back to back, then wait for their replies (bounded). The futures are
    taken before any frame goes, so a reply cannot arrive before it is awaited."""
    futures: list[asyncio.Future[Message]] = []
    for props, body in requests:
        number, frames = peer.encode_request(props, body)
        futures.append(peer._pending[number])
        for frame in frames:
            await peer.send_frame(frame)
    async with asyncio.timeout(timeout):
        return list(await asyncio.gather(*futures))


async def _drain_changes(peer: RawPeer, stop: asyncio.Event) -> None:
    """Answer the listener's ``changes`` with "nothing wanted" until told to stop."""
    while not stop.is_set():
        try:
            request = await peer.next_request(0.5)
        except TimeoutError:
            continue
        if not request.no_reply:
            await peer.reply(request, {}, b"[]")


def test_8000_sub_changes_start_one_task(tmp_path: Path) -> None:
    async def main(listener: ListenerProcess) -> tuple[int, int, int, int]:
        async with raw_client(listener.url) as peer:
            stop = asyncio.Event()
            drain = asyncio.create_task(_drain_changes(peer, stop))
            sub = {"Profile": "subChanges", "continuous": "true"}
            first = await peer.request(sub)
            assert not first.is_error
            tasks_before = (await asyncio.to_thread(listener.tasks))["tasks"]
            rss_before = listener.rss()
            refused = 0
            for _ in range(16):  # 8,000 in batches of 500 (pipelined)
                for reply in await _pipelined(peer, [(sub, b"")] * 500):
                    assert reply.is_error and reply.error_code == 409
                    refused += 1
            tasks_after = (await asyncio.to_thread(listener.tasks))["tasks"]
            rss_after = listener.rss()
            assert peer.is_open
            stop.set()
            await drain
            return refused, tasks_before, tasks_after, rss_after - rss_before

    with ListenerProcess(tmp_path, docs={"d": {"n": 1}}) as listener:
        refused, before, after, growth = run(main(listener), timeout=240)
        assert refused == 8000
        assert after <= before + 5  # no task per message (was one each, 600 MiB)
        assert growth < 64 * MIB
        assert listener.alive()


def test_checkpoint_flood_on_a_read_only_listener_is_bounded(tmp_path: Path) -> None:
    body = b'{"pad": "' + b"x" * (50 * 1024) + b'"}'
    ids = [f"cp-invented-{i}" for i in range(1300)]

    async def main(listener: ListenerProcess) -> list[int]:
        async with raw_client(listener.url) as peer:
            too_big = await peer.request(
                {"Profile": "setCheckpoint", "client": "big"}, b'{"p":"' + b"x" * 65536 + b'"}'
            )
            assert too_big.is_error and too_big.error_code == 413
            long_id = await peer.request({"Profile": "setCheckpoint", "client": "c" * 300}, b"{}")
            assert long_id.is_error and long_id.error_code == 400
            for start in range(0, len(ids), 50):
                batch = [
                    ({"Profile": "setCheckpoint", "client": cp}, body)
                    for cp in ids[start : start + 50]
                ]
                for reply in await _pipelined(peer, batch):
                    assert not reply.is_error, reply.error_code
            present: list[int] = []
            for i, cp in enumerate(ids):
                found = await peer.request({"Profile": "getCheckpoint", "client": cp})
                if not found.is_error:
                    present.append(i)
            assert peer.is_open
            return present

    with ListenerProcess(tmp_path, read_only=True) as listener:
        present = run(main(listener), timeout=240)
        # the 1,000 updated most recently are kept; the disk holds those, not all 65 MB sent
        assert present == list(range(300, 1300))
        assert listener.disk_usage() < 160 * MIB
        assert listener.alive()


def test_deep_bodies_big_ints_and_bad_rev_ids_are_4xx_and_store_nothing(tmp_path: Path) -> None:
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000
    cases: list[tuple[dict[str, str], bytes]] = [
        ({"Profile": "rev", "id": "deep", "rev": R1}, deep),
        ({"Profile": "rev", "id": "big", "rev": R1}, b'{"n": 123456789012345678901234567890}'),
        ({"Profile": "rev", "id": "badrev", "rev": "1-nothex"}, b"{}"),
        ({"Profile": "rev", "id": "badhist", "rev": "2-" + "cc" * 20, "history": "x"}, b"{}"),
        ({"Profile": "rev", "id": "unproposed", "rev": R1}, b"{}"),
        ({"Profile": "changes"}, orjson.dumps([[1, "d", "bad-rev"]])),
        ({"Profile": "proposeChanges"}, orjson.dumps([["d", "bad"]])),
        ({"Profile": "proposeChanges"}, b"[" * 2000 + b"]" * 2000),
    ]

    async def main(listener: ListenerProcess) -> list[tuple[str, int | None]]:
        results: list[tuple[str, int | None]] = []
        async with raw_client(listener.url) as peer:
            proposal = [["deep", R1], ["big", R1], ["good", R1]]
            reply = await peer.request({"Profile": "proposeChanges"}, orjson.dumps(proposal))
            assert not reply.is_error
            for props, body in cases:
                answer = await peer.request(props, body)
                results.append((props.get("id", props["Profile"]), answer.error_code))
                assert answer.error_domain in ("HTTP", "BLIP")
            good = await peer.request(
                {"Profile": "rev", "id": "good", "rev": R1, "noconflicts": "1"},
                b'{"n": 18446744073709551615}',
            )
            assert not good.is_error
            assert peer.is_open
        return results

    with ListenerProcess(tmp_path) as listener:
        results = run(main(listener))
        assert all(code == 400 for _, code in results), results
        assert listener.dump() == {"good": {"n": 18446744073709551615}}
        assert listener.alive()


def test_hostile_listener_cannot_store_what_the_replicator_did_not_ask_for(
    tmp_path: Path,
) -> None:
    forged_history = ",".join(f"{g}-" + f"{g:02x}" * 20 for g in range(59, 0, -1))
    outcomes: dict[str, Any] = {}

    async def handler(peer: RawPeer) -> None:
        while True:
            request = await peer.next_request(60)
            if request.profile == "getCheckpoint":
                await peer.reply_error(request, "HTTP", 404, "missing")
            elif request.profile == "setCheckpoint":
                await peer.reply(request, {"rev": "1-cc"})
            elif request.profile == "subChanges":
                await peer.reply(request)
                await _attack(peer, forged_history, outcomes)
            elif not request.no_reply:
                await peer.reply_error(request, "HTTP", 404, "no")

    async def main() -> dict[str, Any]:
        async with hostile_listener(handler) as url:
            client = await asyncio.to_thread(
                ReplicatorProcess,
                tmp_path,
                url,
                type="pull",
                document_ids=["public"],
                docs={"local": {"v": "mine"}},
                config={"max_attempts": 1},
            )
            try:
                await client.await_status("STOPPED", 90)
                return {"dump": await client.adump(), "revs": client.revs()}
            finally:
                await client.astop()

    result = run(main(), timeout=200)
    assert outcomes["answers"] == [[], 0]
    assert outcomes["refused"] == {"secret": 400, "never": 400, "local": 400, "public-other": 400}
    assert outcomes["public"] is None
    assert result["dump"] == {"local": {"v": "mine"}, "public": {"v": "public"}}
    assert result["revs"]["local"].startswith("1-")


async def _attack(peer: RawPeer, forged_history: str, outcomes: dict[str, Any]) -> None:
    reply: Message = await peer.request(
        {"Profile": "changes"}, orjson.dumps([[1, "public", R1], [2, "secret", R1]])
    )
    outcomes["answers"] = reply.json()
    refused: dict[str, int | None] = {}
    for name, props, body in [
        ("secret", {"id": "secret", "rev": R1, "sequence": "2"}, {"v": "not wanted"}),
        ("never", {"id": "never", "rev": R1, "sequence": "7"}, {"v": "never announced"}),
        (
            "local",
            {"id": "local", "rev": "60-" + "3c" * 20, "sequence": "1", "history": forged_history},
            {"v": "forged"},
        ),
        ("public-other", {"id": "public", "rev": R1B, "sequence": "1"}, {"v": "other"}),
    ]:
        answer = await peer.request({"Profile": "rev", **props}, orjson.dumps(body))
        refused[name] = answer.error_code
    outcomes["refused"] = refused
    good = await peer.request(
        {"Profile": "rev", "id": "public", "rev": R1, "sequence": "1"}, b'{"v": "public"}'
    )
    outcomes["public"] = good.error_code
    await peer.send_request({"Profile": "changes"}, b"[]", no_reply=True, urgent=True)
