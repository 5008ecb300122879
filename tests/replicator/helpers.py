"""Two real databases replicating over an in-memory (or WebSocket) BlipConnection pair."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from couchlite import Collection, Database, DatabaseConfiguration, MutableDocument
from couchlite.blip import BlipErrorReply, Message
from couchlite.database.replication_access import replication_store
from couchlite.replicator.active import ActiveSession
from couchlite.replicator.options import SessionCollectionOptions
from couchlite.replicator.passive import PassiveSession
from couchlite.replicator.types import ReplicatedDocument, ReplicatorType
from couchlite.transport.blip_connection import BlipConnection, Reply
from couchlite.transport.loopback import loopback_pair

REMOTE_URL = "ws://peer.test/db"
TIMEOUT_S = 20.0


def open_db(tmp_path: Path, name: str) -> Database:
    return Database(name, DatabaseConfiguration(directory=tmp_path / name))


class Events:
    """A ``SessionEvents`` that records everything."""

    def __init__(self) -> None:
        self.busy: list[bool] = []
        self.progress_calls: list[tuple[int, int]] = []
        self.docs: list[tuple[bool, ReplicatedDocument]] = []

    def activity_changed(self, busy: bool) -> None:
        self.busy.append(busy)

    def progress(self, completed: int, total: int) -> None:
        self.progress_calls.append((completed, total))

    def documents_replicated(self, is_push: bool, documents: list[ReplicatedDocument]) -> None:
        self.docs.extend((is_push, d) for d in documents)

    def errors(self) -> list[ReplicatedDocument]:
        return [d for _, d in self.docs if d.error is not None]


@dataclass
class Pair:
    active: BlipConnection
    passive: BlipConnection
    passive_session: PassiveSession


@asynccontextmanager
async def connected(
    passive_db: Database,
    passive_collections: list[Collection] | None = None,
    *,
    allow_push: bool = True,
    allow_pull: bool = True,
    passive_events: Any = None,
):
    a, b = loopback_pair()
    active = BlipConnection(a, name="active")
    passive = BlipConnection(b, name="passive")
    store = replication_store(passive_db)
    colls = passive_collections or [passive_db.default_collection()]
    session = PassiveSession(
        passive,
        store,
        [store.for_collection(c) for c in colls],
        allow_push=allow_push,
        allow_pull=allow_pull,
        events=passive_events,
    )
    session.attach()
    passive.start()
    active.start()
    try:
        yield Pair(active, passive, session)
    finally:
        await session.close()
        await active.close()
        await passive.close()


def default_session(
    connection: BlipConnection,
    db: Database,
    kind: ReplicatorType,
    *,
    continuous: bool,
    remote_url: str = REMOTE_URL,
    **kwargs: Any,
) -> ActiveSession:
    """An active session replicating ``db``'s default collection over ``connection``."""
    store = replication_store(db)
    return ActiveSession(
        connection,
        store,
        [SessionCollectionOptions(store.for_collection(db.default_collection()))],
        replicator_type=kind,
        continuous=continuous,
        remote_url=remote_url,
        **kwargs,
    )


@asynccontextmanager
async def running(session: ActiveSession) -> AsyncIterator[asyncio.Task[None]]:
    """Run a continuous session in a task for the block; at its end the session must still be
    running, and is cancelled."""
    task = asyncio.create_task(session.run())
    try:
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def replicate(
    active_db: Database,
    passive_db: Database,
    kind: ReplicatorType = ReplicatorType.PUSH_AND_PULL,
    *,
    collections: list[Collection] | None = None,
    passive_collections: list[Collection] | None = None,
    options: dict[str, Any] | None = None,
    events: Any = None,
    reset: bool = False,
    allow_push: bool = True,
    allow_pull: bool = True,
) -> ActiveSession:
    """One one-shot session; returns the finished session (for its statistics)."""
    colls = collections or [active_db.default_collection()]
    pcolls = passive_collections or [
        passive_db.collection(c.name, c.scope.name)
        or passive_db.create_collection(c.name, c.scope.name)
        for c in colls
    ]
    store = replication_store(active_db)
    async with connected(passive_db, pcolls, allow_push=allow_push, allow_pull=allow_pull) as pair:
        session = ActiveSession(
            pair.active,
            store,
            [SessionCollectionOptions(store.for_collection(c), **(options or {})) for c in colls],
            replicator_type=kind,
            continuous=False,
            remote_url=REMOTE_URL,
            reset=reset,
            events=events,
        )
        async with asyncio.timeout(TIMEOUT_S):
            await session.run()
        return session


class StubPassivePeer:
    """A passive peer with no checkpoint (``getCheckpoint`` 404, any ``setCheckpoint``
    accepted) that answers ``subChanges`` by starting :meth:`_serve` in a task; it records every
    request it handles. Subclasses say in ``_serve`` what they send."""

    def __init__(self, conn: BlipConnection) -> None:
        self.conn = conn
        self.requests: list[Message] = []
        self.tasks: set[asyncio.Task[None]] = set()
        for profile in ("getCheckpoint", "setCheckpoint", "subChanges"):
            conn.register_handler(profile, self._handle)

    async def _handle(self, message: Message) -> Reply | None:
        self.requests.append(message)
        if message.profile == "getCheckpoint":
            raise BlipErrorReply("HTTP", 404, "missing")
        if message.profile == "setCheckpoint":
            return Reply({"rev": "1-cc"})
        task = asyncio.create_task(self._serve())
        self.tasks.add(task)
        return Reply()

    async def _serve(self) -> None:
        raise NotImplementedError


def put(coll: Collection, doc_id: str, data: dict[str, Any]) -> str:
    doc = coll.get(doc_id)
    mutable = doc.to_mutable() if doc is not None else MutableDocument(doc_id)
    mutable.set_data(data)
    coll.save(mutable)
    saved = coll.get(doc_id)
    assert saved is not None and saved.revision_id is not None
    return saved.revision_id


def snapshot(coll: Collection) -> dict[str, tuple[str | None, bool, Any]]:
    """doc_id -> (current rev, deleted, body) for every document, tombstones included."""
    store = replication_store(coll.database).for_collection(coll)
    result: dict[str, tuple[str | None, bool, Any]] = {}
    for change in _all_changes(store):
        rev = store.get_revision(change.doc_id, change.rev_id, [], 50)
        body = orjson.loads(rev.body) if rev is not None else None
        result[change.doc_id] = (change.rev_id, change.deleted, body)
    return result


def history(coll: Collection, doc_id: str) -> list[str]:
    store = replication_store(coll.database).for_collection(coll)
    current = store.current_revision(doc_id)
    assert current is not None
    rev = store.get_revision(doc_id, current[0], [], 50)
    assert rev is not None
    return [current[0], *rev.history]


def _all_changes(store: Any) -> Iterator[Any]:
    since = 0
    while True:
        batch = store.changes_since(since, 500)
        if not batch:
            return
        yield from batch
        since = batch[-1].sequence


def spy_profile(conn: BlipConnection, profile: str, spy: Callable[[Any], None]) -> None:
    """Call ``spy(message)`` before ``profile``'s handler on ``conn`` (async or synchronous)."""
    sync = conn._sync_handlers.get(profile)
    if sync is not None:

        def sync_wrapper(message: Any) -> Any:
            spy(message)
            return sync(message)

        conn.register_sync_handler(profile, sync_wrapper)
        return
    inner = conn._handlers[profile]

    async def wrapper(message: Any) -> Any:
        spy(message)
        return await inner(message)

    conn.register_handler(profile, wrapper)


def count_profile(conn: BlipConnection, profile: str) -> Callable[[], int]:
    """Wrap ``profile``'s handler on ``conn`` to count calls."""
    calls = [0]

    def count(message: Any) -> None:
        calls[0] += 1

    spy_profile(conn, profile, count)
    return lambda: calls[0]


def run(coro: Any) -> Any:
    return asyncio.run(coro)
