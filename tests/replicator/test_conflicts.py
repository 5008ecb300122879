"""Conflicts: both sides edit a document; the active puller resolves, the pusher sends it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from couchlite.model.revid import generation
from couchlite.replicator.protocol.conflicts import default_resolution
from couchlite.replicator.store import ConflictingRevisions, RevisionResolver
from couchlite.replicator.types import ReplicatorType

from .helpers import Events, history, open_db, put, replicate, run, snapshot


def _diverge(tmp_path: Path, local_edits: int, remote_edits: int):
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    put(a.default_collection(), "c", {"v": "base"})
    run(replicate(a, b, ReplicatorType.PUSH))
    for i in range(local_edits):
        put(a.default_collection(), "c", {"v": f"local{i}"})
    for i in range(remote_edits):
        put(b.default_collection(), "c", {"v": f"remote{i}"})
    return a, b


def test_default_rule_higher_generation_wins_and_is_pushed(tmp_path: Path) -> None:
    a, b = _diverge(tmp_path, 2, 1)
    try:
        remote_rev = b.default_collection().get("c").revision_id
        events = Events()
        run(replicate(a, b, events=events))
        assert [d for d in events.errors()] == []
        doc_a, doc_b = a.default_collection().get("c"), b.default_collection().get("c")
        assert doc_a["v"] == "local1"  # gen 3 beats gen 2
        assert doc_a.revision_id == doc_b.revision_id and doc_b["v"] == "local1"
        # the resolution is a child of the remote revision (interop fact 8)
        assert history(a.default_collection(), "c")[1] == remote_rev
        assert snapshot(a.default_collection()) == snapshot(b.default_collection())
    finally:
        a.close()
        b.close()


def test_default_rule_remote_wins_on_generation(tmp_path: Path) -> None:
    a, b = _diverge(tmp_path, 1, 3)
    try:
        run(replicate(a, b))
        assert a.default_collection().get("c")["v"] == "remote2"
        assert snapshot(a.default_collection()) == snapshot(b.default_collection())
    finally:
        a.close()
        b.close()


def test_default_rule_units() -> None:
    def conflict(lrev, lbody, rrev, rbody):
        return ConflictingRevisions("d", lrev, lbody, rrev, rbody)

    assert default_resolution(conflict("3-aa", b"{}", "2-bb", None)) is None
    assert default_resolution(conflict("3-aa", b'{"l":1}', "2-bb", b'{"r":1}')) == b'{"l":1}'
    assert default_resolution(conflict("2-aa", b'{"l":1}', "2-bb", b'{"r":1}')) == b'{"r":1}'
    assert default_resolution(conflict("2-cc", b'{"l":1}', "2-bb", b'{"r":1}')) == b'{"l":1}'


def engine_resolver(fn: Callable[[ConflictingRevisions], Any]) -> RevisionResolver:
    """A plain function as the engine's (async) resolver: what the store's adapter makes of a
    user's blocking resolver (tests/replicator_api covers the user-level sync and async ones)."""

    async def resolve(conflict: ConflictingRevisions) -> Any:
        return fn(conflict)

    return resolve


def test_custom_immediate_and_awaiting_resolvers(tmp_path: Path) -> None:
    for mode in ("sync", "async"):
        a, b = _diverge(tmp_path / mode, 1, 1)
        try:
            seen: list[ConflictingRevisions] = []

            def merge(conflict: ConflictingRevisions, seen: list = seen) -> bytes:
                seen.append(conflict)
                left = orjson.loads(conflict.local_body or b"{}")
                right = orjson.loads(conflict.remote_body or b"{}")
                return orjson.dumps({"merged": [left["v"], right["v"]]})

            async def amerge(conflict: ConflictingRevisions, merge=merge) -> bytes:
                await asyncio.sleep(0)
                return merge(conflict)

            resolver = engine_resolver(merge) if mode == "sync" else amerge
            run(replicate(a, b, options={"conflict_resolver": resolver}))
            assert len(seen) == 1
            doc = a.default_collection().get("c")
            assert doc["merged"] == ["local0", "remote0"]
            assert generation(doc.revision_id) == 3
            assert snapshot(a.default_collection()) == snapshot(b.default_collection())
        finally:
            a.close()
            b.close()


def test_resolver_returning_deletion(tmp_path: Path) -> None:
    a, b = _diverge(tmp_path, 1, 1)
    try:
        run(replicate(a, b, options={"conflict_resolver": engine_resolver(lambda c: None)}))
        assert a.default_collection().get("c") is None
        assert snapshot(a.default_collection()) == snapshot(b.default_collection())
        assert snapshot(b.default_collection())["c"][1] is True  # a tombstone on both sides
    finally:
        a.close()
        b.close()


def test_failing_resolver_is_a_document_error_and_no_wedge(tmp_path: Path) -> None:
    a, b = _diverge(tmp_path, 1, 1)
    try:
        put(b.default_collection(), "other", {"fine": True})

        def broken(conflict: ConflictingRevisions) -> bytes:
            raise RuntimeError("boom")

        events = Events()
        run(replicate(a, b, options={"conflict_resolver": engine_resolver(broken)}, events=events))
        errors = events.errors()
        assert errors and {e.id for e in errors} == {"c"}
        assert "boom" in str(errors[0].error)
        assert a.default_collection().get("other") is not None  # the rest replicated
    finally:
        a.close()
        b.close()


def test_resolver_returning_garbage_is_a_document_error(tmp_path: Path) -> None:
    a, b = _diverge(tmp_path, 1, 1)
    try:
        events = Events()
        run(
            replicate(
                a, b, options={"conflict_resolver": engine_resolver(lambda c: 42)}, events=events
            )
        )
        assert {e.id for e in events.errors()} == {"c"}
    finally:
        a.close()
        b.close()


def test_push_only_conflict_is_a_409_document_error(tmp_path: Path) -> None:
    a, b = _diverge(tmp_path, 1, 1)
    try:
        events = Events()
        run(replicate(a, b, ReplicatorType.PUSH, events=events))
        errors = events.errors()
        assert len(errors) == 1 and errors[0].id == "c" and errors[0].error.code == 409
        assert b.default_collection().get("c")["v"] == "remote0"
    finally:
        a.close()
        b.close()


def test_failed_resolution_is_retried_at_the_next_start(tmp_path: Path) -> None:
    a, b = _diverge(tmp_path, 2, 1)
    try:

        def broken(conflict: ConflictingRevisions) -> bytes:
            raise RuntimeError("not today")

        run(replicate(a, b, options={"conflict_resolver": engine_resolver(broken)}))
        assert a.default_collection().get("c")["v"] == "local1"  # type: ignore[index]
        # still conflicted locally; the next session resolves it first, then pushes it
        events = Events()
        run(replicate(a, b, events=events))
        assert not events.errors()
        run(replicate(a, b))
        assert snapshot(a.default_collection()) == snapshot(b.default_collection())
        assert b.default_collection().get("c")["v"] == "local1"  # type: ignore[index]
    finally:
        a.close()
        b.close()
