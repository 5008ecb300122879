"""A passive peer for the end-to-end tests: ``PassiveSession`` behind ``serve_channels``.

Used in-process (:func:`passive_server`) and, as a script, in a child process:
``python -m tests.replicator_api.passive <directory>`` prints ``{"port": N}`` once listening,
answers ``dump`` lines with the documents as JSON, and exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from couchlite import Collection, CouchliteError, Database, DatabaseConfiguration
from couchlite.database.replication_access import replication_store
from couchlite.replicator.passive import PassiveSession
from couchlite.transport.blip_connection import BlipConnection
from couchlite.transport.websocket import ChannelServer, WebSocketChannel, serve_channels


@asynccontextmanager
async def passive_server(
    db: Database, collections: Iterable[Collection] | None = None, **options: Any
) -> AsyncIterator[ChannelServer]:
    """Serve ``db`` (its default collection unless told otherwise) on 127.0.0.1."""
    store = replication_store(db)
    cols = list(collections) if collections is not None else [db.default_collection()]

    async def serve(channel: WebSocketChannel) -> None:
        connection = BlipConnection(channel, name="passive")
        session = PassiveSession(connection, store, [store.for_collection(c) for c in cols])
        session.attach()
        try:
            await connection.run()
        except CouchliteError:
            pass  # the active side went away: its problem to report
        finally:
            await session.close()

    async with await serve_channels(serve, "127.0.0.1", 0, **options) as server:
        yield server


def dump(collection: Collection) -> dict[str, Any]:
    docs = {}
    for doc_id in collection.document_ids():
        doc = collection.get(doc_id)
        if doc is not None:
            docs[doc_id] = doc.to_dict()
    return docs


async def _main(directory: str) -> None:
    db = Database("passive", DatabaseConfiguration(directory=directory))
    try:
        async with passive_server(db) as server:
            print(json.dumps({"port": server.port}), flush=True)
            loop = asyncio.get_running_loop()
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                if line.strip() == "dump":
                    print(json.dumps(dump(db.default_collection())), flush=True)
    finally:
        db.close()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1]))
