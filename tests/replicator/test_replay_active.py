"""Replay the passive side of real Couchbase Lite sessions against our *active* session.

The other direction of ``test_replay.py``: a scripted peer plays the recorded LiteCore passive
replicator (it answers each of our requests with the recorded reply to the request of the same
profile and order, and sends the recorded ``changes``/``rev``/``getAttachment`` requests where
the recording shows them), while our :class:`ActiveSession` runs against a database seeded with
the documents the recorded active peer had, under the recorded revision IDs. Then what our
replicator sent is compared with what the real Couchbase Lite 3.2 client sent: request profiles
and their order (where the protocol fixes it), property names and values, flags, and bodies.

What the scripted peer rewrites because it depends on our requests: checkpoint revisions
(``N-cc`` follows our ``setCheckpoint``), the remote checkpoint across chained sessions (what we
saved last), which recorded ``rev``s it sends (those our ``changes`` reply asked for). What the
comparison ignores: checkpoint IDs (``client``, ``checkpoint_ids``: they hash our database's
UUID), ``time`` in checkpoint bodies, and the relay's interleaving of the two directions.

Every known difference between our active side and the real client is listed in
``DOCUMENTED_DIFFERENCES`` with the reason; anything else fails the test.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from couchlite import Collection, Database
from couchlite.blip import BlipErrorReply, BlipProtocol, Message, MessageType
from couchlite.database.replication_access import replication_store
from couchlite.replicator.active import ActiveSession
from couchlite.replicator.options import SessionCollectionOptions
from couchlite.replicator.store import IncomingRevision
from couchlite.replicator.types import ReplicatorType
from couchlite.transport.blip_connection import BlipConnection, Reply
from couchlite.transport.loopback import loopback_pair
from tests.data import INTEROP

from .helpers import REMOTE_URL, open_db, run

SESSION_TIMEOUT_S = 15.0

#: Profiles the scripted peer answers (the real client sent only some of them).
CLIENT_PROFILES = (
    "getCheckpoint",
    "setCheckpoint",
    "getCollections",
    "subChanges",
    "proposeChanges",
    "changes",
    "rev",
    "norev",
    "getAttachment",
    "proveAttachment",
)

# --- the recordings ------------------------------------------------------------------------


@dataclass
class Recording:
    name: str
    header: dict[str, Any]
    #: requests of the real client, in its sending order
    client_requests: list[Message]
    #: the passive's replies, by the client's request number
    server_replies: dict[int, Message]
    #: requests of the passive, in its sending order
    server_requests: list[Message]
    #: the client's replies, by the passive's request number
    client_replies: dict[int, Message]

    @property
    def replicator_type(self) -> ReplicatorType:
        cmd = self.header["replicate_cmd"]
        kind = cmd[cmd.index("--type") + 1]
        return {
            "push": ReplicatorType.PUSH,
            "pull": ReplicatorType.PULL,
            "pushAndPull": ReplicatorType.PUSH_AND_PULL,
        }[kind]

    @property
    def collection(self) -> tuple[str, str] | None:
        cmd = self.header["replicate_cmd"]
        if "--collection" not in cmd:
            return None
        scope, name = cmd[cmd.index("--collection") + 1].split(".")
        return scope, name

    def requests_of(self, profile: str) -> list[Message]:
        return [m for m in self.client_requests if m.profile == profile]

    def server_requests_of(self, profile: str) -> list[Message]:
        return [m for m in self.server_requests if m.profile == profile]


def load(name: str) -> Recording:
    path = INTEROP / f"{name}.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    decoders = {d: BlipProtocol(strict_numbering=False) for d in ("c2s", "s2c")}
    received: dict[str, list[Message]] = {"c2s": [], "s2c": []}
    for line in lines[1:]:
        record = json.loads(line)
        if "hex" in record:
            direction = record["dir"]
            received[direction].extend(
                decoders[direction].receive_frame(bytes.fromhex(record["hex"]))
            )
    c2s, s2c = received["c2s"], received["s2c"]
    return Recording(
        name,
        json.loads(lines[0]),
        [m for m in c2s if m.type is MessageType.REQUEST],
        {m.number: m for m in s2c if m.type is not MessageType.REQUEST},
        [m for m in s2c if m.type is MessageType.REQUEST],
        {m.number: m for m in c2s if m.type is not MessageType.REQUEST},
    )


# --- the active database, as the recorded active peer had it ---------------------------------


def _collection(db: Database, recording: Recording) -> Collection:
    where = recording.collection
    if where is None:
        return db.default_collection()
    scope, name = where
    return db.collection(name, scope) or db.create_collection(name, scope)


def seed_active(db: Database, recording: Recording) -> None:
    """Apply the recorded ``setup_steps`` of the active side with the recorded revision IDs.

    Bodies come from the ``put`` command (``--json``) or, for ``--json-file``/``--blob-*``, from
    ``databases_after.active``; a deletion's revision ID (not printed by ``cblpeer delete``)
    from the recorded ``proposeChanges``. Blob contents come from the recorded
    ``getAttachment`` replies of the client."""
    after = {d["id"]: d for d in recording.header["databases_after"]["active"]}
    proposed = {
        entry[0]: entry[1]
        for message in recording.requests_of("proposeChanges")
        for entry in message.json()
    }
    collection = _collection(db, recording)
    store = replication_store(db)
    coll_store = store.for_collection(collection)
    # blobs first: a revision whose blobs are not stored is refused
    for message in recording.server_requests_of("getAttachment"):
        reply = recording.client_replies[message.number]
        if not reply.is_error:
            store.store_blob(message.properties["digest"], reply.body)
    for step in recording.header.get("setup_steps", []):
        if step.get("side") != "active":
            continue
        cmd: list[str] = step["cmd"]
        doc_id = cmd[cmd.index("--id") + 1]
        current = coll_store.current_revision(doc_id)
        history = [] if current is None else _history(coll_store, doc_id, current[0])
        if cmd[1] == "delete":
            revision = IncomingRevision(doc_id, proposed[doc_id], history, b"{}", deleted=True)
        else:
            if "--json" in cmd:
                body = json.loads(cmd[cmd.index("--json") + 1])
            else:
                body = after[doc_id]["body"]
            if "--blob-key" in cmd:
                body[cmd[cmd.index("--blob-key") + 1]] = after[doc_id]["body"][
                    cmd[cmd.index("--blob-key") + 1]
                ]
            rev_id = step["out"][0]["rev"]
            revision = IncomingRevision(doc_id, rev_id, history, orjson.dumps(body), False)
        (outcome,) = coll_store.insert_revisions([revision])
        assert outcome.error is None, outcome.error


def _history(coll_store: Any, doc_id: str, rev_id: str) -> list[str]:
    revision = coll_store.get_revision(doc_id, rev_id, [], 50)
    assert revision is not None
    return [rev_id, *revision.history]


# --- the scripted passive peer ---------------------------------------------------------------


@dataclass
class ServerCheckpoint:
    """The remote checkpoint, kept across the chained sessions of one scenario."""

    body: bytes | None = None
    rev: str | None = None


@dataclass
class ScriptedPeer:
    """Plays the recorded passive's part on ``conn``; logs what our active side sent."""

    conn: BlipConnection
    recording: Recording
    checkpoint: ServerCheckpoint
    #: our requests, in arrival order (= our sending order)
    requests: list[Message] = field(default_factory=list)
    #: our replies to the scripted requests: (recorded request, our reply or error)
    replies: list[tuple[Message, Message | BlipErrorReply]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _counts: Counter[str] = field(default_factory=Counter)
    _revs_by_doc: Counter[str] = field(default_factory=Counter)

    def attach(self) -> None:
        for profile in CLIENT_PROFILES:
            self.conn.register_handler(profile, self._handle)

    async def _handle(self, message: Message) -> Reply | None:
        self.requests.append(message)
        profile = message.profile or ""
        index = self._counts[profile]
        self._counts[profile] += 1
        if profile == "rev":
            return await self._on_rev(message)
        recorded = _nth(self.recording.requests_of(profile), index)
        if profile == "getAttachment":  # match by digest: the order may differ
            recorded = next(
                (
                    m
                    for m in self.recording.requests_of(profile)
                    if m.properties.get("digest") == message.properties.get("digest")
                ),
                None,
            )
        if profile == "getCheckpoint":
            return self._on_get_checkpoint(recorded)
        if profile == "setCheckpoint":
            return self._on_set_checkpoint(message)
        if message.no_reply:
            return None
        if recorded is None:
            return self._unrecorded(message)
        reply = self._recorded_reply(recorded)
        if profile == "subChanges":
            self.tasks.append(asyncio.create_task(self._send_feed()))
        return reply

    def _recorded_reply(self, recorded: Message) -> Reply:
        theirs = self.recording.server_replies[recorded.number]
        if theirs.is_error:
            raise BlipErrorReply(
                theirs.error_domain or "BLIP", theirs.error_code or 0, theirs.error_message
            )
        return Reply(
            list(theirs.properties.items()),
            theirs.body,
            compressed=theirs.compressed,
            urgent=theirs.urgent,
        )

    def _unrecorded(self, message: Message) -> Reply:
        """A request the real client never sent: answer as LiteCore's passive would."""
        self.notes.append(f"unrecorded {message.profile} {message.properties} {message.body!r}")
        if message.profile == "proposeChanges":
            entries = message.json()
            return Reply(
                [("maxHistory", "50"), ("blobs", "true")],
                b"[]" if entries else b"",
                compressed=True,
            )
        return Reply()

    def _on_get_checkpoint(self, recorded: Message | None) -> Reply:
        if self.checkpoint.body is not None:  # a chained session: what we saved last
            return Reply([("rev", self.checkpoint.rev or "")], self.checkpoint.body)
        assert recorded is not None
        return self._recorded_reply(recorded)

    def _on_set_checkpoint(self, message: Message) -> Reply:
        rev = message.properties.get("rev", "")
        if (rev or None) != self.checkpoint.rev:
            self.notes.append(f"setCheckpoint rev {rev!r} != stored {self.checkpoint.rev!r}")
            raise BlipErrorReply("HTTP", 409, "revision ID mismatch")
        generation = int(rev.split("-")[0]) if rev else 0
        self.checkpoint.rev = f"{generation + 1}-cc"
        self.checkpoint.body = message.body
        return Reply([("rev", self.checkpoint.rev)])

    async def _on_rev(self, message: Message) -> Reply | None:
        """A pushed rev: fetch its blobs as the recorded passive did, then answer."""
        doc_id = message.properties.get("id", "")
        k = self._revs_by_doc[doc_id]
        self._revs_by_doc[doc_id] += 1
        recorded = _nth(
            [m for m in self.recording.requests_of("rev") if m.properties.get("id") == doc_id], k
        )
        for request in self.recording.server_requests_of("getAttachment"):
            if request.properties.get("docID") == doc_id:
                await self._send(request)
        if recorded is None:
            return self._unrecorded(message)
        return self._recorded_reply(recorded)

    async def _send(self, request: Message) -> Message | None:
        props = list(request.properties.items())
        if request.no_reply:
            await self.conn.send_no_reply(
                props, request.body, urgent=request.urgent, compressed=request.compressed
            )
            return None
        try:
            reply: Message | BlipErrorReply = await self.conn.request(
                props,
                request.body,
                urgent=request.urgent,
                compressed=request.compressed,
                timeout=SESSION_TIMEOUT_S,
            )
        except BlipErrorReply as exc:
            reply = exc
        self.replies.append((request, reply))
        return reply if isinstance(reply, Message) else None

    async def _send_feed(self) -> None:
        """After the ``subChanges`` reply: the recorded ``changes`` (the full one, then the
        empty noreply one before its reply arrives), then the ``rev``s we asked for."""
        wanted: list[str] = []
        pending: list[tuple[Message, asyncio.Task[Message | None]]] = []
        for request in self.recording.server_requests_of("changes"):
            if request.no_reply:
                await self._send(request)
            else:
                pending.append((request, asyncio.create_task(self._send(request))))
                await asyncio.sleep(0)  # queued before the next one
        for request, task in pending:
            reply = await task
            if reply is None:
                continue
            for entry, answer in zip(request.json(), reply.json(), strict=True):
                if answer != 0:
                    wanted.append(entry[1])
        revs = [
            asyncio.create_task(self._send(m))
            for m in self.recording.server_requests_of("rev")
            if m.properties.get("id") in wanted
        ]
        for task in revs:
            await task


def _nth(items: list[Message], index: int) -> Message | None:
    return items[index] if index < len(items) else None


# --- running one session --------------------------------------------------------------------


async def _session(
    db: Database, recording: Recording, checkpoint: ServerCheckpoint
) -> ScriptedPeer:
    a, b = loopback_pair()
    ours = BlipConnection(a, name="active")
    theirs = BlipConnection(b, name="scripted-passive")
    peer = ScriptedPeer(theirs, recording, checkpoint)
    peer.attach()
    store = replication_store(db)
    session = ActiveSession(
        ours,
        store,
        [SessionCollectionOptions(store.for_collection(_collection(db, recording)))],
        replicator_type=recording.replicator_type,
        continuous=False,
        remote_url=REMOTE_URL,
    )
    theirs.start()
    ours.start()
    try:
        async with asyncio.timeout(SESSION_TIMEOUT_S):
            await session.run()
            for task in peer.tasks:
                await task
    finally:
        await ours.close()
        await theirs.close()
    return peer


def replay_chain(tmp_path: Path, names: list[str]) -> list[tuple[Recording, ScriptedPeer]]:
    """Run the sessions of one scenario in order on one active database (each seeded first
    with its own ``setup_steps``), against one remote checkpoint."""
    db = open_db(tmp_path, "active")
    checkpoint = ServerCheckpoint()
    results: list[tuple[Recording, ScriptedPeer]] = []
    try:
        for name in names:
            recording = load(name)
            seed_active(db, recording)
            peer = run(_session(db, recording, checkpoint))
            results.append((recording, peer))
    finally:
        db.close()
    return results


# --- comparing -------------------------------------------------------------------------------

#: properties whose values depend on the database identity, not on the protocol
_MASKED = {"client"}


def _flags(message: Message) -> list[str]:
    names = []
    if message.compressed and message.body:  # an empty body's compression is invisible
        names.append("compressed")
    if message.urgent:
        names.append("urgent")
    if message.no_reply:
        names.append("noreply")
    return names


def _props(message: Message) -> list[tuple[str, str]]:
    out = []
    for key, value in message.properties.items():
        if key in _MASKED:
            value = "<checkpoint-id>"
        if message.profile == "setCheckpoint" and key == "rev":
            value = "<N-cc>" if value else ""
        out.append((key, value))
    return out  # a list: the order of properties is compared too


def _body(message: Message) -> Any:
    if not message.body:
        return None
    try:
        body = orjson.loads(message.body)
    except orjson.JSONDecodeError:
        return {"bytes": len(message.body), "sha": hash(message.body)}
    if message.profile == "setCheckpoint" and isinstance(body, dict):
        body.pop("time", None)
        return body
    if message.profile == "proposeChanges" and isinstance(body, list):
        return [[*entry[:3], "<bodySize>", *entry[4:]] for entry in body]
    if message.profile == "getCollections" and isinstance(body, dict):
        body["checkpoint_ids"] = ["<checkpoint-id>" for _ in body.get("checkpoint_ids", [])]
    return body


def _describe(message: Message) -> dict[str, Any]:
    return {"props": _props(message), "flags": _flags(message), "body": _body(message)}


def _key(message: Message) -> str:
    profile = message.profile or "?"
    doc = message.properties.get("id") or message.properties.get("docID")
    return f"{profile}[{doc}]" if doc else profile


def differences(recording: Recording, peer: ScriptedPeer) -> list[str]:
    """Every difference between what the real client sent and what we sent, as text."""
    found: list[str] = []
    # 1. the same requests: per key (profile, plus document for rev/getAttachment), in order
    theirs_by_key: dict[str, list[Message]] = defaultdict(list)
    ours_by_key: dict[str, list[Message]] = defaultdict(list)
    for m in recording.client_requests:
        theirs_by_key[_key(m)].append(m)
    for m in peer.requests:
        ours_by_key[_key(m)].append(m)
    for key in sorted(set(theirs_by_key) | set(ours_by_key)):
        theirs, ours = theirs_by_key[key], ours_by_key[key]
        if len(theirs) != len(ours):
            found.append(f"{key}: {len(theirs)} sent by CBL, {len(ours)} by us")
        if key == "setCheckpoint" and theirs and ours:
            # How often a one-shot session saves is timing (LiteCore's saver runs on a timer);
            # compared: the first save's properties (empty ``rev``, fact 4) and the final state.
            t_last, o_last = _body(theirs[-1]), _body(ours[-1])
            if t_last != o_last:
                found.append(f"{key} final body: CBL {t_last!r} / ours {o_last!r}")
            theirs, ours = theirs[:1], ours[:1]
            if _props(theirs[0]) != _props(ours[0]):
                found.append(f"{key}#0 props: CBL {_props(theirs[0])} / ours {_props(ours[0])}")
            if _flags(theirs[0]) != _flags(ours[0]):
                found.append(f"{key}#0 flags: CBL {_flags(theirs[0])} / ours {_flags(ours[0])}")
            continue
        for k, (t, o) in enumerate(zip(theirs, ours, strict=False)):
            td, od = _describe(t), _describe(o)
            for part in ("props", "flags", "body"):
                if td[part] != od[part]:
                    found.append(f"{key}#{k} {part}: CBL {td[part]!r} / ours {od[part]!r}")
            if key == "proposeChanges":
                t_sizes = [entry[3] for entry in t.json()]
                o_sizes = [entry[3] for entry in o.json()]
                if t_sizes != o_sizes:
                    found.append(f"{key}#{k} bodySize: CBL {t_sizes} / ours {o_sizes}")
    # 2. the order the protocol fixes
    found.extend(_order_differences(recording, peer))
    # 3. our replies to the passive's requests
    recorded_replies = {
        _key(req): recording.client_replies.get(req.number)
        for req in recording.server_requests
        if not req.no_reply
    }
    our_replies = {_key(req): reply for req, reply in peer.replies}
    for key in sorted(set(recorded_replies) | set(our_replies)):
        t, o = recorded_replies.get(key), our_replies.get(key)
        if t is None or o is None:
            found.append(f"reply to {key}: CBL {t is not None}, ours {o is not None}")
            continue
        if isinstance(o, BlipErrorReply):
            found.append(f"reply to {key}: ours ERR {o}")
            continue
        td, od = _describe(t), _describe(o)
        td["type"], od["type"] = t.type.wire_name, o.type.wire_name
        for part in ("type", "props", "flags", "body"):
            if td[part] != od[part]:
                found.append(f"reply to {key} {part}: CBL {td[part]!r} / ours {od[part]!r}")
    return found


def _order_differences(recording: Recording, peer: ScriptedPeer) -> list[str]:
    """The order constraints the real client's sessions show and the protocol implies: the
    checkpoint (or collections) request first; ``subChanges`` before ``proposeChanges``
    (LiteCore starts the puller first); each ``rev`` after the ``proposeChanges`` that offered
    it; ``rev``s in sequence order; the last message is a ``setCheckpoint``."""
    found = []

    def check(name: str, messages: list[Message]) -> None:
        profiles = [m.profile for m in messages]
        if profiles and profiles[0] not in ("getCheckpoint", "getCollections"):
            found.append(f"{name}: first request is {profiles[0]}")
        if profiles and profiles[-1] != "setCheckpoint":
            found.append(f"{name}: last request is {profiles[-1]}")
        both = "subChanges" in profiles and "proposeChanges" in profiles
        if both and profiles.index("subChanges") > profiles.index("proposeChanges"):
            found.append(f"{name}: subChanges after proposeChanges")
        offered: set[str] = set()
        seqs: list[int] = []
        for m in messages:
            if m.profile == "proposeChanges":
                offered.update(entry[0] for entry in m.json())
            elif m.profile == "rev":
                if m.properties.get("id") not in offered:
                    found.append(f"{name}: rev {m.properties.get('id')} before its proposal")
                seqs.append(int(m.properties.get("sequence", "0")))
        if seqs != sorted(seqs):
            found.append(f"{name}: revs not in sequence order {seqs}")

    recorded: list[str] = []
    check("CBL", recording.client_requests)
    recorded, found[:] = found[:], []
    check("ours", peer.requests)
    # only what we do and the real client does not
    return [f for f in found if f.replace("ours", "CBL", 1) not in recorded]


# --- the tests -------------------------------------------------------------------------------

#: Differences between our active side and Couchbase Lite 3.2's, with the reason each one is
#: accepted. Keyed by recording; the texts are those ``differences`` produces.
#
#: * bodySize (4th item of ``proposeChanges`` entries): LiteCore sends the size of the Fleece-
#:   encoded body, we send the length of the canonical JSON (an estimate for progress only).
#: * setCheckpoint count: LiteCore's one-shot sessions save 1-3 times (a timer), we save once at
#:   the end; only the final body and the first save's properties are compared.
#: * final ``local`` checkpoint: our one-shot pusher reads the feed once more when the puller is
#:   done (to push conflict resolutions, fact 8), so the checkpoint also covers the sequences of
#:   revisions pulled in the same session (skipped: the peer has them); LiteCore's stops at the
#:   last sequence it saw.
#: * 04-conflict: we push the conflict resolution in the same session, LiteCore in the next one
#:   (fact 8); the pushed messages are compared with the followup's in
#:   ``test_resolution_is_pushed_as_in_the_followup``. So the followup has nothing left to push.


def _everywhere(line: str) -> bool:
    """The first two kinds above: documented for every recording."""
    return " bodySize: " in line or bool(
        re.fullmatch(r"setCheckpoint: \d sent by CBL, \d by us", line)
    )


DOCUMENTED_DIFFERENCES: dict[str, set[str]] = {
    "03-pushpull-update-delete.setup": {
        "setCheckpoint final body: CBL {'local': 3, 'remote': 1} / ours {'local': 4, 'remote': 1}",
    },
    "03-pushpull-update-delete": {
        "setCheckpoint final body: CBL {'local': 6, 'remote': 5} / ours {'local': 7, 'remote': 5}",
    },
    "04-conflict": {
        "proposeChanges: 1 sent by CBL, 2 by us",  # the resolution, pushed at once (fact 8)
        "rev[c-doc]: 0 sent by CBL, 1 by us",  # the resolution (fact 8)
        "setCheckpoint final body: CBL {'local': 2, 'remote': 2} / ours {'local': 5, 'remote': 2}",
    },
    "04-conflict.followup": {  # all because the resolution already went (fact 8)
        "proposeChanges: 1 sent by CBL, 0 by us",
        "rev[c-doc]: 1 sent by CBL, 0 by us",
        "ours: last request is subChanges",
    },
    "07-named-collection": {
        "setCheckpoint final body: CBL {'local': 2, 'remote': 1} / ours {'local': 3, 'remote': 1}",
    },
}

CHAINS = {
    "01-push-basic": ["01-push-basic"],
    "02-pull-basic": ["02-pull-basic"],
    "03-pushpull-update-delete": [
        "03-pushpull-update-delete.setup",
        "03-pushpull-update-delete",
    ],
    "04-conflict": ["04-conflict.setup", "04-conflict", "04-conflict.followup"],
    "05-blob": ["05-blob-push", "05-blob-pull"],
    "07-named-collection": ["07-named-collection"],
    "08-large-doc": ["08-large-doc"],
}


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_active_sends_what_the_real_client_sent(tmp_path: Path, chain: str) -> None:
    results = replay_chain(tmp_path, CHAINS[chain])
    for recording, peer in results:
        found = {line for line in differences(recording, peer) if not _everywhere(line)}
        documented = DOCUMENTED_DIFFERENCES.get(recording.name, set())
        assert found - documented == set(), recording.name  # new differences
        assert documented - found == set(), recording.name  # fixed: update the list


def _resolution_view(message: Message, resolution: str) -> dict[str, Any]:
    described = _describe(message)
    text = json.dumps(described).replace(resolution, "3-<resolution>")
    return json.loads(text)


def test_resolution_is_pushed_as_in_the_followup(tmp_path: Path) -> None:
    """Fact 8, documented difference: LiteCore pushes the resolution of the 04 conflict in the
    next session, we push it in the same one; the messages are the same but for the resolved
    revision's digest (our revision IDs hash our canonical JSON, LiteCore's hash Fleece)."""
    (_, _), (_, ours), _ = replay_chain(tmp_path, CHAINS["04-conflict"])
    followup = load("04-conflict.followup")
    their_resolution = "3-907e6730b8a8c6d01ddd33daa958048b86578e43"
    ours_propose = [m for m in ours.requests if m.profile == "proposeChanges"][1]
    ours_rev = next(m for m in ours.requests if m.profile == "rev")
    our_resolution = ours_rev.properties["rev"]
    assert our_resolution.startswith("3-") and our_resolution != their_resolution
    for theirs, mine in (
        (followup.requests_of("proposeChanges")[0], ours_propose),
        (followup.requests_of("rev")[0], ours_rev),
    ):
        assert _resolution_view(mine, our_resolution) == _resolution_view(theirs, their_resolution)
    (entry,) = ours_propose.json()
    assert entry[3] == 21 and followup.requests_of("proposeChanges")[0].json()[0][3] == 20


def test_proposal_names_the_revision_pushed_in_an_earlier_session(tmp_path: Path) -> None:
    (_, _), (_, ours) = replay_chain(tmp_path, CHAINS["04-conflict"][:2])
    propose = next(m for m in ours.requests if m.profile == "proposeChanges")
    assert propose.json()[0][2] == "1-461f40ebb13391d61a54a92333a13aae6e90868f"
