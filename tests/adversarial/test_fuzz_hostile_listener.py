"""The other direction of the message fuzzer: a hostile listener answering a real replicator.

Each episode is one pull replicator (one-shot, a single attempt; sometimes with
``document_ids``) against a hostile listener whose seeded plan announces documents in
``changes`` (valid or mutated entries), sends the wanted ones in ``rev`` (valid or mutated:
another revision than announced, a bad history, an impossible body, no sequence), sends revisions
nobody asked for, mangles checkpoint replies, and ends in one of several ways (caught up, a
close with some code, a dropped socket, a junk frame). Asserted: the replicator stops within a
bound with no error or a typed one; it never answers 5xx to what it was sent; it stores only
valid revisions it asked for, within ``document_ids``, and everything it acknowledged.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from couchlite import (
    AsyncReplicator,
    CollectionConfiguration,
    CouchliteError,
    Database,
    DatabaseConfiguration,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    ReplicatorType,
)
from couchlite.blip import Message
from tests.adversarial.fuzzgen import (
    BAD_DOC_BODIES,
    BAD_REV_IDS,
    JUNK_BODIES,
    JUNK_STRINGS,
    dumps,
    rev_id,
)
from tests.adversarial.peers import (
    PeerClosed,
    RawPeer,
    ReplicatorProcess,
    hostile_listener,
    run,
)

pytestmark = pytest.mark.timeout(180)

SEED = int(os.environ.get("COUCHLITE_FUZZ_SEED", "1106"))
BUDGET_S = float(os.environ.get("COUCHLITE_FUZZ_BUDGET_S", "12"))
MAX_EPISODES = int(os.environ.get("COUCHLITE_FUZZ_EPISODES", "150"))
#: A one-shot replicator facing a peer that misbehaves (but answers) must have stopped by then.
EPISODE_BOUND_S = 10.0
REPLY_WAIT_S = 15.0
#: rev mutations naming another revision than the one requested (followed by a norev)
UNMATCHED = ("another revision than announced", "another document than announced")
ENDINGS = ["caught up"] * 5 + ["close", "abort", "junk frame", "refuse subChanges"]


@dataclass
class Plan:
    """What the hostile listener does in one episode (drawn from the episode's own seed)."""

    rng: random.Random
    episode: int
    doc_ids: list[str] = field(default_factory=list)
    document_ids: list[str] | None = None
    ending: str = "caught up"
    #: doc_id -> body of each valid revision the replicator asked for and acknowledged
    acked: dict[str, Any] = field(default_factory=dict)
    #: doc_id -> body of each valid revision it asked for (acknowledged or not yet)
    acceptable: dict[str, Any] = field(default_factory=dict)
    offending: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @classmethod
    def draw(cls, seed: int, episode: int) -> Plan:
        rng = random.Random(seed * 7919 + episode)
        plan = cls(rng, episode)
        plan.doc_ids = [f"h{episode}-{k}" for k in range(rng.randint(1, 6))]
        if rng.random() < 0.3:
            plan.document_ids = rng.sample(plan.doc_ids, k=max(1, len(plan.doc_ids) // 2))
        plan.ending = rng.choice(ENDINGS)
        return plan

    def offend(self, what: str) -> None:
        self.offending.append(f"episode {self.episode}: {what}; plan so far: {self.log[-6:]}")


def _check_answer(plan: Plan, what: str, reply: Message, malformed: bool) -> bool:
    """Whether the replicator accepted (RPY) what it was sent; 5xx answers are offences."""
    if reply.is_error:
        if reply.error_code is None or reply.error_code >= 500:
            plan.offend(f"answered {reply.error_domain} {reply.error_code} to {what}")
        return False
    if malformed:
        plan.offend(f"accepted {what}")
    return True


async def _request(peer: RawPeer, props: dict[str, str], body: bytes) -> Message | None:
    try:
        return await peer.request(props, body, timeout=REPLY_WAIT_S)
    except (PeerClosed, TimeoutError):
        return None


def _mutated_entries(plan: Plan, entries: list[list[Any]]) -> tuple[bytes, str]:
    rng = plan.rng
    roll = rng.random()
    bad = rng.randrange(len(entries))
    if roll < 0.3:
        entries[bad][2] = rng.choice(BAD_REV_IDS)
        return dumps(entries), "bad revision ID"
    if roll < 0.5:
        entries[bad][1] = rng.choice(["", 7, None, {"a": 1}])
        return dumps(entries), "bad document ID"
    if roll < 0.7:
        entries[bad] = rng.choice([None, "x", [], [1, "y"]])
        return dumps(entries), "bad entry"
    return rng.choice(JUNK_BODIES), "junk body"


def _rev_message(
    plan: Plan, doc_id: str, rev: str, seq: int
) -> tuple[dict[str, str], bytes, str, dict[str, Any] | None]:
    """A ``rev`` for an announced, wanted revision: (props, body, mutation, body if valid)."""
    rng = plan.rng
    body = {"from": "hostile", "doc": doc_id, "seq": seq}
    props = {"Profile": "rev", "id": doc_id, "rev": rev, "sequence": str(seq)}
    if rng.random() < 0.5:
        return props, orjson.dumps(body), "", body
    roll = rng.random()
    if roll < 0.2:
        props["rev"] = rev_id(int(rev.split("-")[0]) + 1, f"other-{doc_id}")
        props["history"] = rev
        return props, orjson.dumps(body), "another revision than announced", None
    if roll < 0.35:
        props["history"] = rng.choice(BAD_REV_IDS[1:])
        return props, orjson.dumps(body), "bad history", None
    if roll < 0.5:
        del props["sequence"]
        return props, orjson.dumps(body), "no sequence", None
    if roll < 0.6:
        props["id"] = f"{doc_id}-not-announced"
        return props, orjson.dumps(body), "another document than announced", None
    return props, rng.choice(BAD_DOC_BODIES), "junk body", None


async def _feed(peer: RawPeer, plan: Plan) -> None:
    """Announce, send what is wanted, send what is not, then end as planned."""
    rng = plan.rng
    seq = 0
    ids = list(plan.doc_ids)
    while ids:
        size = rng.randint(1, 3)
        batch, ids = ids[:size], ids[size:]
        entries: list[list[Any]] = []
        for doc_id in batch:
            seq += 1
            entries.append([seq, doc_id, rev_id(rng.randint(1, 3), f"{doc_id}-{seq}")])
        announced = [list(e) for e in entries]
        mutation = ""
        body = orjson.dumps(entries)
        if rng.random() < 0.3:
            body, mutation = _mutated_entries(plan, entries)
        plan.log.append(f"changes [{mutation or 'valid'}] {body[:150]!r}")
        reply = await _request(peer, {"Profile": "changes"}, body)
        if reply is None:
            return
        if not _check_answer(plan, f"changes [{mutation}] {body[:150]!r}", reply, bool(mutation)):
            continue
        answers = reply.json()
        for i, (entry_seq, doc_id, rev) in enumerate(announced):
            wanted = i < len(answers) and answers[i] != 0
            if not wanted:
                continue
            if plan.document_ids is not None and doc_id not in plan.document_ids:
                plan.offend(f"asked for {doc_id!r}, outside document_ids")
            props, rev_body, rev_mutation, valid_body = _rev_message(plan, doc_id, rev, entry_seq)
            plan.log.append(f"rev [{rev_mutation or 'valid'}] {props} {rev_body[:100]!r}")
            if valid_body is not None:
                plan.acceptable[doc_id] = valid_body
            answer = await _request(peer, props, rev_body)
            if answer is None:
                return
            what = f"rev [{rev_mutation}] {props} {rev_body[:100]!r}"
            if _check_answer(plan, what, answer, valid_body is None) and valid_body is not None:
                plan.acked[doc_id] = valid_body
            if rev_mutation in UNMATCHED:
                # That rev cannot be matched to the request: say, fairly, that the one asked
                # for will not come (without it a one-shot replicator rightly waits on).
                norev = {"Profile": "norev", "id": doc_id, "rev": rev, "error": "404"}
                plan.log.append(f"norev {norev}")
                await peer.send_request(norev, no_reply=True)
    if rng.random() < 0.4:
        # nobody asked for this one
        doc_id = f"h{plan.episode}-unsolicited"
        props = {"Profile": "rev", "id": doc_id, "rev": rev_id(1, doc_id), "sequence": "1"}
        plan.log.append(f"unsolicited rev {props}")
        answer = await _request(peer, props, b'{"unsolicited": true}')
        if answer is None:
            return
        _check_answer(plan, f"an unsolicited rev {props}", answer, True)
    await _end(peer, plan)


async def _end(peer: RawPeer, plan: Plan) -> None:
    ending = plan.ending
    plan.log.append(f"ending: {ending}")
    if ending == "caught up":
        await _request(peer, {"Profile": "changes"}, b"[]")
    elif ending == "close":
        await peer.close(plan.rng.choice([1000, 1001, 1008, 1011, 4000]), "hostile")
    elif ending == "abort":
        await peer.abort()
    elif ending == "junk frame":
        # an over-long varint first: never a frame a peer could wait to see completed
        await peer.send_frame(b"\xff" * 11 + plan.rng.randbytes(plan.rng.randint(0, 40)))


async def _hostile_session(peer: RawPeer, plan: Plan) -> None:
    """Answer the replicator's requests (some answers mangled); feed it after subChanges."""
    rng = plan.rng
    feeder: asyncio.Task[None] | None = None
    try:
        while True:
            try:
                request = await peer.next_request(EPISODE_BOUND_S + 5)
            except (PeerClosed, TimeoutError):
                return
            profile = request.profile
            if request.no_reply:
                continue
            if profile == "getCheckpoint":
                roll = rng.random()
                if roll < 0.6:
                    await peer.reply_error(request, "HTTP", 404, "missing")
                elif roll < 0.8:
                    junk = rng.choice(JUNK_STRINGS)
                    await peer.reply(request, {"rev": junk}, rng.choice(JUNK_BODIES[:18]))
                else:
                    await peer.reply_error(request, "HTTP", rng.choice([500, 503, 400]), "no")
            elif profile == "setCheckpoint":
                if rng.random() < 0.7:
                    await peer.reply(request, {"rev": f"{rng.randint(1, 9)}-cc"})
                else:
                    await peer.reply(request, {"rev": rng.choice(JUNK_STRINGS)}, b"junk")
            elif profile == "subChanges":
                if plan.ending == "refuse subChanges":
                    code = rng.choice([403, 404, 500, 501, 999])
                    await peer.reply_error(request, rng.choice(["HTTP", "BLIP", "X"]), code)
                    continue
                await peer.reply(request)
                if feeder is None:
                    feeder = asyncio.get_running_loop().create_task(_feed(peer, plan))
            else:
                await peer.reply_error(request, "BLIP", 404, "no handler for message")
    finally:
        if feeder is not None:
            feeder.cancel()
            with_result = await asyncio.gather(feeder, return_exceptions=True)
            error = with_result[0]
            if isinstance(error, BaseException) and not isinstance(
                error, asyncio.CancelledError | PeerClosed | ConnectionError
            ):
                plan.offend(f"the hostile feeder failed: {error!r}")


async def _episode(directory: Path, plan: Plan) -> None:
    async with hostile_listener(lambda peer: _hostile_session(peer, plan)) as url:
        db = Database(f"ep{plan.episode}", DatabaseConfiguration(directory=directory))
        try:
            config = ReplicatorConfiguration(
                target=url, replicator_type=ReplicatorType.PULL, max_attempts=1
            )
            config.add_collection(
                db.default_collection(), CollectionConfiguration(document_ids=plan.document_ids)
            )
            replicator = AsyncReplicator(config)
            await replicator.start()
            deadline = time.monotonic() + EPISODE_BOUND_S
            while replicator.status.activity is not ReplicatorActivityLevel.STOPPED:
                if time.monotonic() > deadline:
                    plan.offend(f"still {replicator.status.activity.name} after the bound")
                    break
                await asyncio.sleep(0.02)
            await replicator.stop()
            error = replicator.status.error
            if error is not None and not isinstance(error, CouchliteError):
                plan.offend(f"untyped error {error!r}")
            _check_stored(db, plan)
        finally:
            db.close()


def _check_stored(db: Database, plan: Plan) -> None:
    collection = db.default_collection()
    stored = {}
    for doc_id in collection.document_ids():
        doc = collection.get(doc_id)
        if doc is not None:
            stored[doc_id] = doc.to_dict()
    for doc_id, body in stored.items():
        if plan.acceptable.get(doc_id) != body:
            plan.offend(f"stored {doc_id!r} = {body!r}, never validly sent when asked")
        if plan.document_ids is not None and doc_id not in plan.document_ids:
            plan.offend(f"stored {doc_id!r}, outside document_ids")
    for doc_id, body in plan.acked.items():
        if stored.get(doc_id) != body:
            plan.offend(f"acknowledged {doc_id!r} but did not keep it")


def test_fuzzed_hostile_listener_against_a_replicator(tmp_path: Path) -> None:
    offending: list[str] = []
    endings: dict[str, int] = {}

    async def main() -> int:
        deadline = time.monotonic() + BUDGET_S
        episode = 0
        while time.monotonic() < deadline and episode < MAX_EPISODES:
            plan = Plan.draw(SEED, episode)
            await _episode(tmp_path, plan)
            offending.extend(plan.offending)
            endings[plan.ending] = endings.get(plan.ending, 0) + 1
            episode += 1
        return episode

    episodes = run(main(), timeout=BUDGET_S + 3 * EPISODE_BOUND_S)
    assert episodes >= 5
    summary = f"{len(offending)} offending in {episodes} episodes (seed {SEED}); {endings}"
    assert not offending, "\n".join([summary, *offending[:30]])


def test_replicator_process_survives_a_hostile_listener(tmp_path: Path) -> None:
    """The same plans against a replicator in its own process: it stays up, stops in bound."""

    async def main() -> None:
        for episode in range(2):
            plan = Plan.draw(SEED + 1, episode)
            plan.ending = "caught up"
            handler = functools.partial(_hostile_session, plan=plan)
            async with hostile_listener(handler) as url:
                client = await asyncio.to_thread(
                    ReplicatorProcess,
                    tmp_path,
                    url,
                    name=f"process-{episode}",
                    type="pull",
                    document_ids=plan.document_ids,
                    config={"max_attempts": 1},
                )
                try:
                    await client.await_status("STOPPED", EPISODE_BOUND_S)
                    assert client.alive()
                    stored = await client.adump()
                finally:
                    await client.astop()
                assert client.proc.returncode == 0, client.stderr_text()[-3000:]
            for doc_id, body in stored.items():
                assert plan.acceptable.get(doc_id) == body, (doc_id, plan.log)
            assert plan.offending == []

    run(main(), timeout=4 * EPISODE_BOUND_S)
