"""Delta sync: bytes on the wire and speed of re-syncing documents changed in one field.

1,000 documents of about 4 KB (text, numbers, a list of objects) are pushed to a peer; then
each is changed in one field and pushed again -- once with delta sync off on both sides, once
with it on (each mode on its own fresh pair of databases, in the same run). Reported for the
second sync: the bytes the replicator's connection sent (BLIP statistics: frames after
compression, as they go on the WebSocket), and documents per second. Both peers run in this
process over an in-memory channel, so docs/s includes the work of both sides: the cost of
computing deltas (sender) and applying them (receiver) is all in the figure.

Target (issue 7): at least 90% fewer bytes with deltas, docs/s within 20% of full bodies.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from couchlite import Database, DatabaseConfiguration, MutableDocument
from couchlite.database.replication_access import replication_store
from couchlite.replicator.active import ActiveSession
from couchlite.replicator.options import SessionCollectionOptions
from couchlite.replicator.passive import PassiveSession
from couchlite.replicator.types import ReplicatorType
from couchlite.transport.blip_connection import BlipConnection
from couchlite.transport.loopback import loopback_pair


def _word(rnd: random.Random) -> str:
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randrange(3, 9)))


def document(i: int) -> dict[str, Any]:
    """About 4 KB of JSON, different for every document, about as compressible as real data
    (free text, identifiers, numbers: deflate gets it to roughly 60%)."""
    rnd = random.Random(i)
    return {
        "type": "order",
        "number": i,
        "status": "new",
        "customer": {"name": f"{_word(rnd)} {_word(rnd)}", "id": rnd.randbytes(8).hex()},
        "notes": " ".join(_word(rnd) for _ in range(330)),
        "lines": [
            {
                "sku": f"SKU-{rnd.randrange(10**5):05}",
                "qty": rnd.randrange(1, 9),
                "price": round(rnd.uniform(1, 500), 2),
            }
            for _ in range(40)
        ],
    }


async def _push(source: Database, target: Database, deltas: bool) -> dict[str, float]:
    a, b = loopback_pair()
    active = BlipConnection(a, name="active")
    passive = BlipConnection(b, name="passive")
    target_store = replication_store(target)
    passive_session = PassiveSession(
        passive,
        target_store,
        [target_store.for_collection(target.default_collection())],
        enable_delta_sync=deltas,
    )
    passive_session.attach()
    source_store = replication_store(source)
    session = ActiveSession(
        active,
        source_store,
        [SessionCollectionOptions(source_store.for_collection(source.default_collection()))],
        replicator_type=ReplicatorType.PUSH,
        continuous=False,
        remote_url="ws://bench.test/db",
        enable_delta_sync=deltas,
    )
    passive.start()
    active.start()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(600):
            await session.run()
        elapsed = time.perf_counter() - started
    finally:
        await passive_session.close()
        await active.close()
        await passive.close()
    return {
        "seconds": elapsed,
        "bytes": active.statistics()["bytes_sent"],
        "revs": session.revs_sent,
        "deltas": session.sender.deltas_sent,
    }


def run_mode(tmp: Path, n: int, deltas: bool) -> dict[str, float]:
    tag = "delta" if deltas else "full"
    source = Database(f"source-{tag}", DatabaseConfiguration(directory=tmp))
    target = Database(f"target-{tag}", DatabaseConfiguration(directory=tmp))
    try:
        col = source.default_collection()
        with source.in_batch():
            for i in range(n):
                col.save(MutableDocument(f"order-{i:05}", document(i)))
        asyncio.run(_push(source, target, deltas))
        with source.in_batch():
            for i in range(n):
                doc = col.get(f"order-{i:05}")
                assert doc is not None
                mutable = doc.to_mutable()
                mutable["status"] = "shipped"  # one field changed
                col.save(mutable)
        second = asyncio.run(_push(source, target, deltas))
        assert second["revs"] == n, second
        assert target.default_collection().count == n
        changed = target.default_collection().get(f"order-{n - 1:05}")
        assert changed is not None and changed["status"] == "shipped"
        return second
    finally:
        source.close()
        target.close()


def main(quick: bool = False) -> None:
    n = 50 if quick else 1000
    size = len(orjson.dumps(document(0)))
    print(f"{n} documents of ~{size / 1000:.1f} KB, each changed in one field, pushed again")
    with tempfile.TemporaryDirectory() as tmp:
        full = run_mode(Path(tmp), n, deltas=False)
        delta = run_mode(Path(tmp), n, deltas=True)
    saved = 1 - delta["bytes"] / full["bytes"]
    speed_full = n / full["seconds"]
    speed_delta = n / delta["seconds"]
    print(f"  full bodies : {full['bytes']:>10,} bytes sent  {speed_full:>8,.0f} docs/s")
    print(
        f"  delta sync  : {delta['bytes']:>10,} bytes sent  {speed_delta:>8,.0f} docs/s"
        f"  ({int(delta['deltas'])} revs as deltas)"
    )
    print(
        f"  bytes saved : {saved:.1%} (target >= 90%)   docs/s ratio: "
        f"{speed_delta / speed_full:.2f} (target >= 0.80)"
    )
