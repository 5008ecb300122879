"""Seeded generators of replication messages, well framed, with valid or mutated contents.

Pure functions of a ``random.Random``: the same seed gives the same messages. Used by
``test_fuzz_messages.py`` in both directions (requests to a listener, replies and requests of a
hostile listener to a replicator). Each :class:`Fuzzed` says what was changed (``mutation``)
and whether the change makes the message malformed (then it must be refused, never stored).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any

#: Property values no well-behaved peer sends: numbers out of range, JSON in the wrong place,
#: revision-ID look-alikes, control and bidi characters, path tricks, a long string.
JUNK_STRINGS = [
    "",
    " ",
    "0",
    "-1",
    "1e309",
    "99999999999999999999999999",
    "null",
    "true",
    "[]",
    "{}",
    "[1,",
    "é\u202e",
    "\ud7ff\uffff",
    "../../etc/passwd",
    "%00",
    "*",
    "1-",
    "-",
    "abc-def",
    "0-" + "a" * 40,
    "1-" + "g" * 40,
    "1-" + "A" * 40,
    "99999999999999999-" + "a" * 40,
    "1-" + "a" * 2000,
    "x" * 5000,
]

#: Revision IDs that must be refused wherever they appear.
BAD_REV_IDS = [
    "",
    "1",
    "1-",
    "-1-" + "a" * 40,
    "0-" + "a" * 40,
    "1-xyz",
    "1-" + "a" * 31,
    "1-" + "G" * 40,
    "1-" + "a" * 41,
    "12345678901234567-" + "a" * 40,
    "1 -" + "a" * 40,
    "a-" + "a" * 40,
]


def dumps(value: Any) -> bytes:
    """JSON as a sloppy peer writes it: integers of any size, NaN and Infinity allowed."""
    return json.dumps(value, separators=(",", ":")).encode()


def deep(depth: int, kind: str = "list") -> bytes:
    """JSON nested ``depth`` levels deep."""
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


#: Bodies a JSON parser must survive: truncated, wrong types, deep, out-of-range numbers,
#: non-JSON, invalid UTF-8, duplicate keys, big.
JUNK_BODIES = [
    b"",
    b"{",
    b"[",
    b"null",
    b"42",
    b'"text"',
    b"[[]]",
    b"{}",
    b"[{}]",
    b"\xff\xfe\x00",
    b'{"a":"\xc3\x28"}',
    b"NaN",
    b"[Infinity]",
    b'{"x": 1e400}',
    b'{"n": 18446744073709551616}',
    b'{"n": -9223372036854775809}',
    b"[123456789012345678901234567890]",
    b'{"a":1,"a":2}',
    deep(300),
    deep(1000),
    deep(5000, "dict"),
    b'{"s":"' + b"z" * 100_000 + b'"}',
    dumps([[i, f"d{i}", "junk"] for i in range(2000)]),
]

#: Bodies no document can have: not a JSON object, or beyond what the local API accepts.
#: (An empty body reads as ``{}``; duplicate keys keep the last value, as JSON parsers do.)
BAD_DOC_BODIES = [
    b for b in JUNK_BODIES if b not in (b"", b"{}", b'{"a":1,"a":2}') and not b.startswith(b'{"s"')
]


def rev_id(generation: int, seed: str) -> str:
    return f"{generation}-{hashlib.sha1(seed.encode()).hexdigest()}"


@dataclass
class Fuzzed:
    """One message to send: ``profile`` is informational (it is also in ``properties``)."""

    profile: str
    properties: dict[str, str]
    body: bytes = b""
    mutation: str = ""
    #: the mutation makes the message invalid: it must be refused (never acted on)
    malformed: bool = False
    no_reply: bool = False
    compressed: bool = False
    urgent: bool = False
    #: for a valid push: (doc_id, rev_id, body) that may be stored once requested
    push: tuple[str, str, dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        props = {k: (v if len(v) < 80 else v[:77] + "...") for k, v in self.properties.items()}
        body = self.body if len(self.body) < 120 else self.body[:117] + b"..."
        return f"{self.profile} [{self.mutation or 'valid'}] {props} body={body!r}"


class MessageFuzzer:
    """Requests an active peer could send to a passive one, mutated or not."""

    PROFILES = (
        "getCheckpoint",
        "setCheckpoint",
        "subChanges",
        "changes",
        "proposeChanges",
        "rev",
        "norev",
        "getAttachment",
        "unknown",
    )

    def __init__(self, rng: random.Random, mutate_ratio: float = 0.7) -> None:
        self.rng = rng
        self.mutate_ratio = mutate_ratio
        self.counter = 0
        #: the collection property to add (``None``: the 3.0 dialect, no property)
        self.collection: str | None = None

    # --- helpers ------------------------------------------------------------------------------

    def _next_id(self) -> str:
        self.counter += 1
        return f"fz-{self.counter}"

    def _mutating(self) -> bool:
        return self.rng.random() < self.mutate_ratio

    def junk(self) -> str:
        return self.rng.choice(JUNK_STRINGS)

    def junk_body(self) -> bytes:
        if self.rng.random() < 0.15:
            return self.rng.randbytes(self.rng.randint(1, 64))
        return self.rng.choice(JUNK_BODIES)

    def _props(self, profile: str, **props: str) -> dict[str, str]:
        out = {"Profile": profile}
        if self.collection is not None:
            out["collection"] = self.collection
        out.update(props)
        return out

    def _mutate_props(self, message: Fuzzed, names: list[str], malformed: bool) -> Fuzzed:
        """Drop, or replace with junk, one of ``names``; or add an unknown property."""
        choice = self.rng.random()
        if choice < 0.1:
            message.properties[f"x-{self.rng.randint(0, 99)}"] = self.junk()
            message.mutation = "extra property"
            return message
        if choice < 0.2 and self.collection is not None:
            message.properties["collection"] = self.rng.choice(["1", "-1", "x", "", "99999999"])
            message.mutation, message.malformed = "bad collection", True
            return message
        name = self.rng.choice(names)
        if self.rng.random() < 0.3:
            message.properties.pop(name, None)
            message.mutation = f"no {name}"
        else:
            message.properties[name] = self.junk()
            message.mutation = f"junk {name}"
        message.malformed = malformed
        return message

    def _mutate_body(self, message: Fuzzed) -> Fuzzed:
        message.body = self.junk_body()
        message.mutation, message.malformed = "junk body", True
        return message

    # --- profiles -----------------------------------------------------------------------------

    def next(self) -> Fuzzed:
        profile = self.rng.choice(self.PROFILES)
        message: Fuzzed = getattr(self, f"make_{profile}")()
        if self.rng.random() < 0.05 and not message.push:
            message.no_reply = True
        message.compressed = self.rng.random() < 0.15
        message.urgent = self.rng.random() < 0.1
        return message

    def make_getCheckpoint(self) -> Fuzzed:
        message = Fuzzed("getCheckpoint", self._props("getCheckpoint", client=self._client()))
        if self._mutating():
            self._mutate_props(message, ["client"], malformed=False)
        return message

    def _client(self) -> str:
        return f"fuzz-client-{self.rng.randint(0, 3)}"

    def make_setCheckpoint(self) -> Fuzzed:
        message = Fuzzed(
            "setCheckpoint",
            self._props("setCheckpoint", client=self._client()),
            dumps({"local": self.rng.randint(0, 1000), "remote": None}),
        )
        if self._mutating():
            if self.rng.random() < 0.5:
                self._mutate_props(message, ["client", "rev"], malformed=False)
            else:
                self._mutate_body(message)
                message.malformed = False  # a checkpoint body is opaque to the listener
        return message

    def make_subChanges(self) -> Fuzzed:
        props = self._props("subChanges", since=str(self.rng.randint(0, 5)), batch="200")
        if self.rng.random() < 0.2:
            props["continuous"] = "true"
        message = Fuzzed("subChanges", props)
        if self._mutating():
            roll = self.rng.random()
            if roll < 0.5:
                self._mutate_props(
                    message, ["since", "batch", "activeOnly", "continuous"], malformed=False
                )
            elif roll < 0.8:
                message.body = self.rng.choice(
                    [*JUNK_BODIES[:12], b'{"docIDs": [1, null, {}]}', b'{"docIDs": "x"}']
                )
                message.mutation, message.malformed = "junk body", True
            else:
                message.properties["filter"] = self.junk() or "x"
                message.mutation = "filter"
        return message

    def _entries(self, shape: str) -> tuple[list[Any], str]:
        """A list of changes / proposeChanges entries, maybe with a bad one."""
        n = self.rng.randint(1, 4)
        entries: list[Any] = []
        for i in range(n):
            doc_id, rev = self._next_id(), rev_id(1, f"{self.counter}")
            entries.append([i + 1, doc_id, rev] if shape == "changes" else [doc_id, rev])
        if not self._mutating():
            return entries, ""
        bad = self.rng.randrange(n)
        roll = self.rng.random()
        position = 2 if shape == "changes" else 1
        if roll < 0.4:
            entries[bad][position] = self.rng.choice(BAD_REV_IDS)
            return entries, "bad revision ID"
        if roll < 0.6:
            entries[bad][position - 1] = self.rng.choice(["", 5, None, ["x"], {"a": 1}])
            return entries, "bad document ID"
        if roll < 0.8:
            entries[bad] = self.rng.choice([None, 7, "x", [], [1], {"a": 1}])
            return entries, "bad entry"
        entries[bad].append(self.rng.choice([2**70, -1, "x", [[[]]], 1e300]))
        return entries, "odd extra field"

    def make_changes(self) -> Fuzzed:
        return self._entries_message("changes")

    def make_proposeChanges(self) -> Fuzzed:
        return self._entries_message("proposeChanges")

    def _entries_message(self, profile: str) -> Fuzzed:
        entries, mutation = self._entries(profile)
        message = Fuzzed(profile, self._props(profile), dumps(entries), mutation)
        message.malformed = mutation not in ("", "odd extra field")
        if not mutation and self._mutating():
            self._mutate_body(message)
        return message

    def valid_rev(self, doc_id: str, rev: str, body: dict[str, Any], **props: str) -> Fuzzed:
        return Fuzzed(
            "rev",
            self._props("rev", id=doc_id, rev=rev, **props),
            dumps(body),
            push=(doc_id, rev, body),
        )

    def make_rev(self) -> Fuzzed:
        doc_id = self._next_id()
        rev = rev_id(1, doc_id)
        message = self.valid_rev(doc_id, rev, {"n": self.counter}, sequence=str(self.counter))
        if not self._mutating():
            message.mutation = "unrequested"
            message.malformed = True
            return message
        message.push = None
        roll = self.rng.random()
        if roll < 0.25:
            name = self.rng.choice(["rev", "history", "deltaSrc", "replacedRev"])
            message.properties[name] = self.rng.choice(BAD_REV_IDS[1:])
            message.mutation = f"bad {name}"
        elif roll < 0.4:
            message.properties.pop(self.rng.choice(["id", "rev"]))
            message.mutation = "no id/rev"
        elif roll < 0.55:
            message.properties["error"] = self.rng.choice(["404", "x", "999", "", "-1"])
            message.mutation = "error property"
        elif roll < 0.65:
            message.properties["id"] = self.rng.choice(["", "\n", "x" * 5000, "_design/x"])
            message.mutation = "bad id"
        else:
            message.body = self.junk_body()
            message.mutation = "junk body"
        message.malformed = True
        return message

    def make_norev(self) -> Fuzzed:
        message = Fuzzed(
            "norev",
            self._props(
                "norev", id=self._next_id(), rev=rev_id(1, "x"), error="404", reason="gone"
            ),
        )
        if self._mutating():
            self._mutate_props(message, ["id", "rev", "error", "reason"], malformed=False)
        return message

    def make_getAttachment(self) -> Fuzzed:
        digest = "sha1-" + hashlib.sha1(str(self.counter).encode()).hexdigest()
        message = Fuzzed(
            "getAttachment", self._props("getAttachment", digest=digest, docID="seed-0")
        )
        if self._mutating():
            if self.rng.random() < 0.5:
                message.properties["digest"] = self.rng.choice(
                    ["", "sha1-", "sha1-../../x", "md5-abc", "sha1-" + "A" * 500, self.junk()]
                )
                message.mutation = "junk digest"
            else:
                self._mutate_props(message, ["digest", "docID"], malformed=False)
        return message

    def make_unknown(self) -> Fuzzed:
        profile = self.rng.choice(["", "getCheckpointX", "rev ", "_internal", self.junk()[:50]])
        props = {"Profile": profile} if self.rng.random() < 0.8 else {}
        return Fuzzed("unknown", props, self.junk_body(), "unknown profile", malformed=True)

    def get_collections(self, paths: list[str]) -> Fuzzed:
        """The first message of the collections dialect, valid or mutated."""
        body: dict[str, Any] = {
            "checkpoint_ids": [f"fuzz-cp-{i}" for i in range(len(paths))],
            "collections": paths,
        }
        message = Fuzzed("getCollections", {"Profile": "getCollections"}, dumps(body))
        if self._mutating():
            roll = self.rng.random()
            if roll < 0.4:
                key = self.rng.choice(["checkpoint_ids", "collections"])
                body[key] = self.rng.choice([[], None, "x", [1, 2], [""] * len(paths), [[]]])
                message.body = dumps(body)
                message.mutation = f"junk {key}"
            elif roll < 0.6:
                body["collections"] = [*paths, "nope.nothere"]
                body["checkpoint_ids"].append("extra")
                message.body = dumps(body)
                message.mutation = "unknown collection"
                return message
            else:
                self._mutate_body(message)
            message.malformed = True
        return message
