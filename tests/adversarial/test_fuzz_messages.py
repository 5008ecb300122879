"""A seeded fuzzer of replication *messages*, in both directions, bounded in count and time.

Listener side: well-framed requests of every profile a passive peer handles, valid or mutated
(``fuzzgen.py``), sent over real sockets to a listener in its own process, in short episodes
(one connection each, in the 3.0 or the collections dialect), with valid pushes mixed in.
Asserted: every reply is a response or an error below 500; a connection is only ever closed
with a proper close code (never dropped, never 1011) and otherwise still answers; nothing
malformed or unrequested is stored while every valid push is; the listener is still alive and
serves a real replicator afterwards. Every offending message is collected and shown.

Replicator side: ``test_fuzz_hostile_listener.py``.

``COUCHLITE_FUZZ_SEED``, ``COUCHLITE_FUZZ_BUDGET_S`` and ``COUCHLITE_FUZZ_MESSAGES`` change the
seed, the time budget and the message cap (for longer runs by hand).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from couchlite.blip import Message
from couchlite.blip.message import MessageType
from tests.adversarial.fuzzgen import Fuzzed, MessageFuzzer, rev_id
from tests.adversarial.peers import (
    ListenerProcess,
    PeerClosed,
    RawPeer,
    ReplicatorProcess,
    raw_client,
    run,
)

pytestmark = pytest.mark.timeout(180)

SEED = int(os.environ.get("COUCHLITE_FUZZ_SEED", "1106"))
BUDGET_S = float(os.environ.get("COUCHLITE_FUZZ_BUDGET_S", "12"))
MAX_MESSAGES = int(os.environ.get("COUCHLITE_FUZZ_MESSAGES", "4000"))
#: Generous: a reply slower than this on a loaded machine is still a hang for a fuzzer.
REPLY_WAIT_S = 15.0
SEED_DOCS = {f"seed-{i}": {"i": i, "text": "seed document"} for i in range(5)}
#: Close codes a listener may use for a peer's bad message (never 1006: no close frame, nor
#: 1011: its own internal error).
TYPED_CLOSES = {1000, 1001, 1002, 1003, 1007, 1008, 1009}
DEFAULT = "_default._default"
#: The listener serves the first two; the last does not exist.
SERVED = [DEFAULT, "fuzz.extra"]
PATHS = [*SERVED, "nope.nothere"]


def _collections_target(
    findings: Findings, fuzzer: MessageFuzzer, first: Fuzzed, result: Message | None
) -> str | None:
    """After a getCollections: check the answer, pick the collection index later messages
    use (sometimes an unserved one), and return the collection a push would land in."""
    try:
        paths = orjson.loads(first.body)["collections"]
    except Exception:
        paths = None
    usable = isinstance(paths, list) and len(paths) > 0
    fuzzer.collection = str(fuzzer.rng.randrange(len(paths))) if usable else "0"
    if result is None or result.is_error or not usable:
        return None
    answers = result.json()
    if not isinstance(answers, list) or len(answers) != len(paths):
        findings.offend(f"getCollections answered {result.body[:200]!r}", first)
        return None
    for path, answer in zip(paths, answers, strict=True):
        if (answer is None) == (path in SERVED):
            findings.offend(f"getCollections answered {answer!r} for {path!r}", first)
    chosen = paths[int(fuzzer.collection)]
    return chosen if chosen in SERVED else None


@dataclass
class Findings:
    offending: list[str] = field(default_factory=list)
    sent: int = 0
    replies: Counter[str] = field(default_factory=Counter)
    closes: Counter[int | None] = field(default_factory=Counter)
    #: collection -> doc_id -> body of every valid push the listener accepted
    pushed: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: doc_id -> the message that named it (to explain an unexpected document)
    named_by: dict[str, str] = field(default_factory=dict)

    def offend(self, what: str, message: Fuzzed) -> None:
        self.offending.append(f"{what}: {message.describe()}")


async def _answer_listener_requests(peer: RawPeer) -> None:
    """Be a dull but well-behaved active peer: want nothing, have no attachments."""
    while True:
        try:
            request = await peer.next_request(3600)
        except (PeerClosed, TimeoutError):
            return
        if request.no_reply:
            continue
        try:
            if request.profile == "changes":
                await peer.reply(request, {}, b"[]")
            elif request.profile == "rev":
                await peer.reply(request)
            else:
                await peer.reply_error(request, "HTTP", 404, "not here")
        except Exception:
            return


async def _exchange(peer: RawPeer, message: Fuzzed) -> tuple[str, Any]:
    try:
        number = await peer.send_request(
            message.properties,
            message.body,
            no_reply=message.no_reply,
            compressed=message.compressed,
            urgent=message.urgent,
        )
    except PeerClosed as exc:
        return "closed", exc.code
    except Exception as exc:  # a property our own encoder refuses: not sendable at all
        if not peer.is_open:
            return "closed", peer.close_code
        return "unsendable", repr(exc)
    if message.no_reply:
        return "noreply", number
    try:
        return "reply", await peer.response(number, REPLY_WAIT_S)
    except PeerClosed as exc:
        return "closed", exc.code
    except TimeoutError:
        return "timeout", None


def _check_reply(findings: Findings, message: Fuzzed, reply: Message) -> None:
    if reply.type is MessageType.ERROR:
        code = reply.error_code
        findings.replies[f"{reply.error_domain}/{code}"] += 1
        if code is None or code >= 500:
            findings.offend(
                f"answered {reply.error_domain} {code} {reply.error_message!r}", message
            )
        return
    findings.replies["RPY"] += 1
    if message.malformed and message.profile in ("changes", "proposeChanges", "rev"):
        findings.offend("malformed message accepted", message)


async def _valid_push(
    peer: RawPeer, fuzzer: MessageFuzzer, findings: Findings, sequence: int, target: str | None
) -> bool:
    """Announce one new document (proposeChanges or changes), then send it, to ``target`` (the
    collection the connection's dialect addresses; ``None``: none usable, a refusal is
    expected); False if the connection closed."""
    dialect_ok = target is not None
    doc_id = fuzzer._next_id()
    rev = rev_id(1, doc_id)
    body = {"pushed": doc_id, "n": sequence}
    if fuzzer.rng.random() < 0.5:
        announce = Fuzzed(
            "proposeChanges", fuzzer._props("proposeChanges"), orjson.dumps([[doc_id, rev]])
        )
        wanted: list[Any] = []
    else:
        announce = Fuzzed(
            "changes", fuzzer._props("changes"), orjson.dumps([[sequence, doc_id, rev]])
        )
        wanted = [[]]
    findings.named_by[doc_id] = announce.describe()
    findings.sent += 1
    kind, result = await _exchange(peer, announce)
    if kind != "reply":
        return _other_outcome(findings, announce, kind, result)
    _check_reply(findings, announce, result)
    if result.is_error or result.json() != wanted:
        if dialect_ok:
            findings.offend(f"valid announcement answered {result.body[:100]!r}", announce)
        return True
    message = fuzzer.valid_rev(doc_id, rev, body, sequence=str(sequence))
    findings.sent += 1
    kind, result = await _exchange(peer, message)
    if kind != "reply":
        return _other_outcome(findings, message, kind, result)
    _check_reply(findings, message, result)
    if result.is_error:
        if dialect_ok:
            findings.offend(f"valid requested rev refused ({result.error_code})", message)
    else:
        assert target is not None
        findings.pushed.setdefault(target, {})[doc_id] = body
    return True


def _other_outcome(findings: Findings, message: Fuzzed, kind: str, result: Any) -> bool:
    if kind == "closed":
        findings.closes[result] += 1
        if result not in TYPED_CLOSES:
            findings.offend(f"connection closed with {result}", message)
        return False
    if kind == "timeout":
        findings.offend(f"no reply within {REPLY_WAIT_S:.0f} s", message)
        return False
    if kind == "unsendable":
        findings.sent -= 1
    return True


async def _episode(
    listener: ListenerProcess, fuzzer: MessageFuzzer, findings: Findings, length: int
) -> None:
    rng = fuzzer.rng
    async with raw_client(listener.url) as peer:
        responder = asyncio.get_running_loop().create_task(_answer_listener_requests(peer))
        try:
            fuzzer.collection = None
            # where a push lands: None when the dialect or the collection is unusable
            target: str | None = DEFAULT
            if rng.random() < 0.35:
                paths = rng.sample(PATHS, k=rng.randint(1, len(PATHS)))
                first = fuzzer.get_collections(paths)
                findings.sent += 1
                kind, result = await _exchange(peer, first)
                if kind != "reply":
                    if not _other_outcome(findings, first, kind, result):
                        return
                    result = None
                else:
                    _check_reply(findings, first, result)
                target = _collections_target(findings, fuzzer, first, result)
            for step in range(length):
                if rng.random() < 0.2:
                    if not await _valid_push(peer, fuzzer, findings, step + 1, target):
                        return
                    continue
                message = fuzzer.next()
                for value in message.properties.values():
                    if value.startswith("fz-"):
                        findings.named_by.setdefault(value, message.describe())
                findings.sent += 1
                kind, result = await _exchange(peer, message)
                if kind == "reply":
                    _check_reply(findings, message, result)
                elif not _other_outcome(findings, message, kind, result):
                    return
            # still usable after everything it was sent
            probe = Fuzzed(
                "getCheckpoint", fuzzer._props("getCheckpoint", client="probe"), mutation="probe"
            )
            kind, result = await _exchange(peer, probe)
            if kind == "reply":
                if result.is_error and result.error_code not in (404, 400):
                    findings.offend(f"probe answered {result.error_code}", probe)
            else:
                _other_outcome(findings, probe, kind, result)
        finally:
            responder.cancel()


def _fuzz_listener(listener: ListenerProcess, seed: int) -> Findings:
    findings = Findings()
    fuzzer = MessageFuzzer(random.Random(seed))

    async def main() -> None:
        deadline = time.monotonic() + BUDGET_S
        while time.monotonic() < deadline and findings.sent < MAX_MESSAGES:
            await _episode(listener, fuzzer, findings, fuzzer.rng.randint(3, 25))

    run(main(), timeout=BUDGET_S + 120)
    return findings


def _report(findings: Findings) -> str:
    lines = [
        f"{len(findings.offending)} offending of {findings.sent} messages "
        f"(seed {SEED}); replies {dict(findings.replies)}; closes {dict(findings.closes)}",
        *findings.offending[:40],
    ]
    return "\n".join(lines)


def test_fuzzed_messages_to_a_listener_process(tmp_path: Path) -> None:
    with ListenerProcess(tmp_path, docs=SEED_DOCS, collections=["fuzz.extra"]) as listener:
        findings = _fuzz_listener(listener, SEED)
        assert findings.sent > 100, _report(findings)
        assert listener.alive(), listener.stderr_text()[-3000:]

        # nothing stored but the seed documents and the valid pushes, and all of those
        for path in SERVED:
            dump = listener.dump(collection=path)
            expected = {**(SEED_DOCS if path == DEFAULT else {}), **findings.pushed.get(path, {})}
            for doc_id in sorted(set(dump) - set(expected)):
                findings.offending.append(
                    f"stored {path}/{doc_id!r} = {dump[doc_id]!r}, named by "
                    f"{findings.named_by.get(doc_id, '?')}"
                )
            for doc_id in sorted(set(expected) - set(dump)):
                findings.offending.append(f"lost {path}/{doc_id!r}")
            for doc_id in sorted(set(expected) & set(dump)):
                if dump[doc_id] != expected[doc_id]:
                    findings.offending.append(f"changed {path}/{doc_id!r}: {dump[doc_id]!r}")
        assert not findings.offending, _report(findings)

        # and it still serves a real replicator, in full
        with ReplicatorProcess(tmp_path, listener.url, type="pull") as client:
            final = client.wait_status("STOPPED", 60)
            assert final["error"] is None, (final, client.stderr_text()[-3000:])
            assert client.dump() == listener.dump()
        assert listener.alive()


def test_fuzzed_messages_to_a_read_only_listener_store_nothing(tmp_path: Path) -> None:
    with ListenerProcess(
        tmp_path, docs=SEED_DOCS, read_only=True, collections=["fuzz.extra"]
    ) as listener:
        findings = Findings()
        fuzzer = MessageFuzzer(random.Random(SEED + 1))

        async def main() -> None:
            deadline = time.monotonic() + BUDGET_S / 3
            while time.monotonic() < deadline and findings.sent < MAX_MESSAGES // 3:
                await _episode(listener, fuzzer, findings, fuzzer.rng.randint(3, 15))

        run(main(), timeout=BUDGET_S + 60)
        # a read-only listener refuses every push: "valid push refused" is expected here
        unexpected = [
            o
            for o in findings.offending
            if not o.startswith(("valid announcement answered", "valid requested rev refused"))
        ]
        assert findings.pushed == {}
        assert listener.dump() == SEED_DOCS
        assert listener.dump(collection="fuzz.extra") == {}
        assert listener.alive()
        findings.offending = unexpected
        assert not unexpected, _report(findings)
