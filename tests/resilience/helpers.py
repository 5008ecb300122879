"""Shared pieces of the resilience tests: in-process peers on 127.0.0.1, dumps, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from couchlite import (
    Database,
    DatabaseConfiguration,
    MutableDocument,
    ReplicatorConfiguration,
    ReplicatorType,
    UrlEndpoint,
    UrlEndpointListenerConfiguration,
)
from couchlite.listener.listener import AsyncUrlEndpointListener
from couchlite.replicator.replicator import AsyncReplicator

#: Generous bound of every wait for an outcome (a hang is a failure, never a slow pass).
BOUND_S = 60.0


def open_db(directory: Path, name: str) -> Database:
    return Database(name, DatabaseConfiguration(directory=directory))


def listener_config(db: Database, *, port: int = 0, **options: Any) -> Any:
    config = UrlEndpointListenerConfiguration(collections=[db.default_collection()])
    config.port = port
    config.network_interface = "127.0.0.1"
    config.disable_tls = True
    for name, value in options.items():
        setattr(config, name, value)
    return config


async def start_listener(
    db: Database, *, port: int = 0, **options: Any
) -> AsyncUrlEndpointListener:
    listener = AsyncUrlEndpointListener(listener_config(db, port=port, **options))
    await listener.start()
    return listener


@contextlib.asynccontextmanager
async def peers(
    directory: Path,
) -> AsyncIterator[tuple[Database, Database, Callable[..., Awaitable[AsyncUrlEndpointListener]]]]:
    """A server and a client database in ``directory``, and ``start(**options)``, which starts a
    listener on the server (``start_listener``); on exit every listener started is stopped and
    both databases are closed."""
    server = open_db(directory / "server", "server")
    client = open_db(directory / "client", "client")
    listeners: list[AsyncUrlEndpointListener] = []

    async def start(**options: Any) -> AsyncUrlEndpointListener:
        listener = await start_listener(server, **options)
        listeners.append(listener)
        return listener

    try:
        yield server, client, start
    finally:
        for listener in listeners:
            await listener.stop()
        server.close()
        client.close()


def replicator_config(
    db: Database,
    port: int,
    *,
    kind: ReplicatorType = ReplicatorType.PUSH_AND_PULL,
    continuous: bool = True,
    dbname: str = "server",
    **options: Any,
) -> ReplicatorConfiguration:
    config = ReplicatorConfiguration(
        target=UrlEndpoint(f"ws://127.0.0.1:{port}/{dbname}"), **options
    )
    config.add_collection(db.default_collection())
    config.replicator_type = kind
    config.continuous = continuous
    return config


class FastClock:
    """A backoff clock that records the delays and waits only a token time (so a reconnection
    happens at once, yet the loop keeps turning); ``time()`` is virtual: the sum of the delays."""

    def __init__(self, pause: float = 0.05) -> None:
        self.delays: list[float] = []
        self.now = 1_000_000.0
        self.pause = pause

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds
        await asyncio.sleep(self.pause)


def replicator(config: ReplicatorConfiguration, clock: Any = None) -> AsyncReplicator:
    return AsyncReplicator(config, clock=clock if clock is not None else FastClock())


def fill(db: Database, prefix: str, count: int, size: int = 0) -> None:
    col = db.default_collection()
    with db.in_batch():
        for i in range(count):
            body: dict[str, Any] = {"i": i, "from": prefix}
            if size:
                body["pad"] = os.urandom(size // 2).hex()
            col.save(MutableDocument(f"{prefix}-{i:05d}", body))


def dump(db: Database, scope: str = "_default", name: str = "_default") -> dict[str, Any]:
    """Every live document of a collection (the default one unless named): revision and body."""
    col = db.collection(name, scope=scope)
    assert col is not None
    out = {}
    for doc_id in col.document_ids():
        doc = col.get(doc_id)
        assert doc is not None
        out[doc_id] = {"rev": doc.revision_id, "body": orjson.loads(doc.to_json())}
    return out


def count(db: Database) -> int:
    return db.default_collection().count


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = BOUND_S, what: str = ""
) -> None:
    """Poll ``condition`` every 20 ms until true; fails after ``timeout`` (never a timing test)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what or condition}")
        await asyncio.sleep(0.02)


def wait_until_sync(
    condition: Callable[[], bool], timeout: float = BOUND_S, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what or condition}")
        time.sleep(0.02)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def run(coro: Awaitable[Any], timeout: float = 120.0) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())
