"""Hypothesis: random documents on both sides, random edits and deletions, random syncs
(continuous or repeated one-shot), random disconnects (cut or reset, at a random byte, either
direction) through the fault proxy -- and still both sides end identical."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import hypothesis.internal.conjecture.optimiser  # noqa: F401 - see below
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from couchlite import Database, MutableDocument, ReplicatorActivityLevel

from .faultproxy import Fault, FaultProxy, Kind
from .helpers import (
    FastClock,
    dump,
    peers,
    replicator,
    replicator_config,
    run,
    wait_until,
)

Level = ReplicatorActivityLevel

# Hypothesis imports its optimiser lazily, mid-test; pytest's assertion rewriting then parses it
# while the library's threads run, which CPython 3.11 can fail ("AST constructor recursion depth
# mismatch", gh-106905). Importing it up front, above, avoids that.

faults = st.builds(
    Fault,
    kind=st.sampled_from([Kind.CUT, Kind.RESET]),
    after_bytes=st.integers(min_value=100, max_value=12_000),
    direction=st.sampled_from(["up", "down", "any"]),
)

side = st.fixed_dictionaries(
    {
        "docs": st.integers(min_value=3, max_value=120),
        "edits": st.integers(min_value=0, max_value=20),
        "deletes": st.integers(min_value=0, max_value=10),
        "size": st.sampled_from([0, 300, 3000]),
    }
)


def _populate(db: Database, prefix: str, spec: dict[str, Any]) -> None:
    col = db.default_collection()
    with db.in_batch():
        for i in range(spec["docs"]):
            col.save(MutableDocument(f"{prefix}{i}", {"i": i, "pad": "x" * spec["size"]}))
    for i in range(min(spec["edits"], spec["docs"])):
        doc = col.get(f"{prefix}{i}")
        assert doc is not None
        mutable = doc.to_mutable()
        mutable["edited"] = True
        col.save(mutable)
    for i in range(min(spec["deletes"], spec["docs"])):
        doc = col.get(f"{prefix}{spec['docs'] - 1 - i}")
        if doc is not None:
            col.delete(doc)


async def _converge(base: Path, spec: dict[str, Any]) -> None:
    async with peers(base) as (server, client, start):
        listener = await start()
        _populate(server, "s", spec["server"])
        _populate(client, "c", spec["client"])
        assert listener.port is not None
        async with FaultProxy(listener.port) as proxy:
            proxy.plan = list(spec["faults"])
            config = replicator_config(client, proxy.port, continuous=spec["continuous"])
            if spec["continuous"]:
                repl = replicator(config, FastClock(0.01))
                await repl.start()
                await wait_until(
                    lambda: dump(server) == dump(client) and repl.status.activity is Level.IDLE,
                    what="continuous replication converged",
                )
                await repl.stop()
            else:
                for _ in range(len(spec["faults"]) + 3):  # bounded rounds of one-shot syncs
                    repl = replicator(config, FastClock(0.01))
                    await repl.start()
                    await repl.wait_for(Level.STOPPED)
                    if dump(server) == dump(client):
                        break
            fired = sum(1 for c in proxy.connections if c.faulted.is_set())
            event(f"faults that fired: {fired}")
        server_docs, client_docs = dump(server), dump(client)
        assert server_docs == client_docs
        expected = {f"s{i}" for i in range(spec["server"]["docs"])} | {
            f"c{i}" for i in range(spec["client"]["docs"])
        }
        deleted = {
            f"{p}{s['docs'] - 1 - i}"
            for p, s in (("s", spec["server"]), ("c", spec["client"]))
            for i in range(min(s["deletes"], s["docs"]))
        }
        assert set(server_docs) == expected - deleted  # nothing lost, nothing resurrected
        await wait_until(lambda: listener.status.connection_count == 0)
    await asyncio.sleep(0)


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    spec=st.fixed_dictionaries(
        {
            "server": side,
            "client": side,
            "faults": st.lists(st.one_of(faults, faults, st.none()), min_size=1, max_size=4),
            "continuous": st.booleans(),
        }
    )
)
def test_random_disconnects_during_random_syncs_converge(spec: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="couchlite-faults-") as directory:
        run(_converge(Path(directory), spec), timeout=90)
