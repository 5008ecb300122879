"""Delta sync through the public API: a ``UrlEndpointListener`` and a ``Replicator`` on real
sockets on 127.0.0.1, with a relay between them that counts the bytes each way.

Edited documents travel as deltas only when both sides enable delta sync; either way both sides
end up identical. Outcomes and byte counts only, never durations.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from couchlite import Database, MutableDocument, ReplicatorActivityLevel, ReplicatorType
from tests.resilience.faultproxy import FaultProxy
from tests.resilience.helpers import (
    dump,
    peers,
    replicator,
    replicator_config,
    run,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DOCS = 40
PAD_BYTES = 4000


def _fill(db: Database) -> None:
    col = db.default_collection()
    with db.in_batch():
        for i in range(DOCS):
            body: dict[str, Any] = {"i": i, "pad": os.urandom(PAD_BYTES // 2).hex(), "n": 0}
            col.save(MutableDocument(f"doc-{i:03d}", body))


def _edit_one_field(db: Database) -> None:
    col = db.default_collection()
    with db.in_batch():
        for i in range(DOCS):
            doc = col.get(f"doc-{i:03d}")
            assert doc is not None
            edited = doc.to_mutable()
            edited["n"] = 1
            col.save(edited)


@pytest.mark.parametrize("kind", [ReplicatorType.PUSH, ReplicatorType.PULL], ids=["push", "pull"])
@pytest.mark.parametrize(
    ("listener_deltas", "replicator_deltas"),
    [(True, True), (True, False), (False, True)],
    ids=["both", "listener-only", "replicator-only"],
)
def test_edited_documents_travel_as_deltas_only_when_both_sides_enable_them(
    tmp_path: Path, kind: ReplicatorType, listener_deltas: bool, replicator_deltas: bool
) -> None:
    async def main() -> None:
        async with peers(tmp_path) as (server, client, start):
            source = client if kind is ReplicatorType.PUSH else server
            _fill(source)
            listener = await start(enable_delta_sync=listener_deltas)
            assert listener.port is not None
            async with FaultProxy(listener.port) as proxy:
                config = replicator_config(
                    client,
                    proxy.port,
                    kind=kind,
                    continuous=False,
                    enable_delta_sync=replicator_deltas,
                )
                first = replicator(config)
                await first.start()
                status = await first.wait_for(ReplicatorActivityLevel.STOPPED)
                assert status.error is None
                assert dump(server) == dump(client)

                _edit_one_field(source)
                second = replicator(config)
                await second.start()
                status = await second.wait_for(ReplicatorActivityLevel.STOPPED)
                assert status.error is None
                assert dump(server) == dump(client)
                assert all(d["body"]["n"] == 1 for d in dump(client).values())

            assert len(proxy.connections) == 2
            full, edited = proxy.connections
            # the direction the revisions travel in: up for a push, down for a pull
            if kind is ReplicatorType.PUSH:
                full_bytes, edited_bytes = full.bytes_up, edited.bytes_up
            else:
                full_bytes, edited_bytes = full.bytes_down, edited.bytes_down
            assert full_bytes > DOCS * PAD_BYTES // 2  # (compressed) full bodies went first
            if listener_deltas and replicator_deltas:
                # one changed field per document: a small fraction of the full bodies
                assert edited_bytes < full_bytes // 5, (full_bytes, edited_bytes)
            else:
                assert edited_bytes > full_bytes // 2, (full_bytes, edited_bytes)

    run(main())
