"""Helpers for testing applications built on couchlite: peers in memory, time under control.

* :class:`LoopbackPeer` is a passive peer (what a ``UrlEndpointListener`` serves) that lives
  in memory: replicators made with :meth:`LoopbackPeer.replicator` sync with it over an
  in-memory channel, through exactly the protocol code a network peer runs, with no socket,
  port or certificate. :meth:`LoopbackPeer.disconnect` drops every connection and
  :attr:`LoopbackPeer.offline` refuses new ones, as a network would: the replicator reports a
  transient error and retries.
* :class:`FakeClock` replaces the replicator's back-off clock: retry delays are recorded, and
  either elapse at once or wait until the test calls :meth:`FakeClock.advance`.

Example::

    peer = LoopbackPeer(server_db)
    config = ReplicatorConfiguration(target=peer.endpoint, continuous=True)
    config.add_collection(client_db.default_collection())
    with peer.replicator(config) as replicator:
        replicator.wait_for(ReplicatorActivityLevel.IDLE, timeout=10)
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from couchlite.database import replication_store
from couchlite.errors import InvalidArgumentError, NetworkCode, NetworkError
from couchlite.replicator.config import ReplicatorConfiguration, UrlEndpoint
from couchlite.replicator.passive import PassiveSession
from couchlite.replicator.replicator import AsyncReplicator, Replicator
from couchlite.replicator.store import CollectionStore, DatabaseStore
from couchlite.transport.blip_connection import BlipConnection
from couchlite.transport.channel import CLOSE_GOING_AWAY, ChannelClosed, MessageChannel
from couchlite.transport.loopback import LoopbackChannel, loopback_pair

if TYPE_CHECKING:
    from couchlite.database.collection import Collection
    from couchlite.database.database import Database

_numbers = itertools.count(1)


class LoopbackPeer:
    """A passive peer over ``database`` reached in memory (see the module docstring).

    ``collections`` are those it shares (default: the default collection); ``read_only``
    refuses pushes, as ``UrlEndpointListenerConfiguration.read_only`` does;
    ``enable_delta_sync`` lets it send deltas. Any number of replicators may use one peer.
    """

    def __init__(
        self,
        database: Database,
        collections: Sequence[Collection] | None = None,
        *,
        read_only: bool = False,
        enable_delta_sync: bool = False,
    ) -> None:
        shared = list(collections) if collections is not None else [database.default_collection()]
        if not shared:
            raise InvalidArgumentError("a loopback peer shares at least one collection")
        self._store: DatabaseStore = replication_store(database)
        self._collections: list[CollectionStore] = []
        for collection in shared:
            found = self._store.collection(collection.scope.name, collection.name)
            if found is None:
                raise InvalidArgumentError(f"collection {collection.full_name} does not exist")
            self._collections.append(found)
        self._read_only = read_only
        self._delta_sync = enable_delta_sync
        self._name = f"loopback-{next(_numbers)}"
        self._lock = threading.Lock()
        self._open: set[tuple[LoopbackChannel, asyncio.AbstractEventLoop]] = set()
        self._served = 0
        #: While true, new connections fail as an unreachable host does (a transient error).
        self.offline = False

    @property
    def endpoint(self) -> UrlEndpoint:
        """The target to put in a ``ReplicatorConfiguration`` (only this peer's replicators
        can reach it)."""
        return UrlEndpoint(f"ws://{self._name}.invalid/db")

    @property
    def connections_served(self) -> int:
        """How many connections replicators have opened to this peer so far."""
        with self._lock:
            return self._served

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    def replicator(
        self, config: ReplicatorConfiguration, *, clock: FakeClock | None = None
    ) -> Replicator:
        """A :class:`~couchlite.Replicator` for ``config`` that reaches this peer."""
        return Replicator(config, clock=clock, _connector=self._connect)

    def async_replicator(
        self, config: ReplicatorConfiguration, *, clock: FakeClock | None = None
    ) -> AsyncReplicator:
        """An :class:`~couchlite.AsyncReplicator` for ``config`` that reaches this peer."""
        return AsyncReplicator(config, clock=clock, _connector=self._connect)

    def disconnect(self) -> None:
        """Drop every open connection, as a network failure would (safe from any thread)."""
        with self._lock:
            open_now = list(self._open)
        for channel, loop in open_now:
            loop.call_soon_threadsafe(_drop, channel)

    async def _connect(self, url: str, **_options: Any) -> MessageChannel:
        # The replicator's connector: called on its event loop with the upgrade's settings,
        # which a memory channel does not need.
        if self.offline:
            raise NetworkError(
                f"{url}: the loopback peer is offline", code=NetworkCode.CONNECTION_REFUSED
            )
        client, server = loopback_pair()
        loop = asyncio.get_running_loop()
        entry = (server, loop)
        with self._lock:
            self._open.add(entry)
            self._served += 1
        task = loop.create_task(self._serve(server), name=f"{self._name}-serve")
        task.add_done_callback(lambda _: self._forget(entry))
        return client

    async def _serve(self, channel: LoopbackChannel) -> None:
        connection = BlipConnection(channel, name=self._name)
        session = PassiveSession(
            connection,
            self._store,
            self._collections,
            allow_push=not self._read_only,
            allow_pull=True,
            enable_delta_sync=self._delta_sync,
        )
        session.attach()
        try:
            connection.start()
            await connection.wait_closed()
        except ChannelClosed:
            pass
        finally:
            await connection.close()
            await session.close()

    def _forget(self, entry: tuple[LoopbackChannel, asyncio.AbstractEventLoop]) -> None:
        with self._lock:
            self._open.discard(entry)


def _drop(channel: LoopbackChannel) -> None:
    asyncio.get_running_loop().create_task(channel.close(CLOSE_GOING_AWAY, "network dropped"))


class FakeClock:
    """The replicator's back-off clock, under the test's control.

    Every delay the replicator waits between attempts is appended to :attr:`delays`. With
    ``auto_advance`` (the default) each wait ends at once and :meth:`time` moves forward by
    it; without, a wait ends only when :meth:`advance` has moved the clock past its end (or
    the replicator stops). :meth:`time` is the clock ``Replicator.status.next_attempt_at``
    is expressed in.
    """

    def __init__(self, *, auto_advance: bool = True, start: float = 0.0) -> None:
        self.auto_advance = auto_advance
        self.delays: list[float] = []
        self._now = start
        self._lock = threading.Lock()
        self._sleepers: list[tuple[float, asyncio.Future[None], asyncio.AbstractEventLoop]] = []

    def time(self) -> float:
        with self._lock:
            return self._now

    @property
    def sleeping(self) -> int:
        """How many waits are in progress (only ever non-zero without ``auto_advance``)."""
        with self._lock:
            return len(self._sleepers)

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            self.delays.append(seconds)
            if self.auto_advance:
                self._now += seconds
                waiter = None
            else:
                waiter = loop.create_future()
                entry = (self._now + seconds, waiter, loop)
                self._sleepers.append(entry)
        if waiter is None:
            await asyncio.sleep(0)
            return
        try:
            await waiter
        finally:
            with self._lock:
                if entry in self._sleepers:
                    self._sleepers.remove(entry)

    def advance(self, seconds: float) -> None:
        """Move the clock forward, ending the waits now due (safe from any thread)."""
        if seconds < 0:
            raise InvalidArgumentError("a clock only moves forward")
        with self._lock:
            self._now += seconds
            due = [entry for entry in self._sleepers if entry[0] <= self._now]
            for entry in due:
                self._sleepers.remove(entry)
        for _, waiter, loop in due:
            loop.call_soon_threadsafe(_wake, waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


__all__ = ["FakeClock", "LoopbackPeer"]
