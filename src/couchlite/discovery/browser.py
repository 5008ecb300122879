"""Browsing for couchlite listeners: ``browse``, ``browse_async``, ``find_peer``, ``peers``.

Theory of operation
-------------------
A :class:`_Browse` runs on one event loop -- the caller's for :class:`AsyncPeerBrowser`, the
library's loop thread for :class:`PeerBrowser` -- with an ``AsyncZeroconf`` and an
``AsyncServiceBrowser`` for ``_couchlite._tcp``. zeroconf reports names appearing, changing and
disappearing; each appearance or change is resolved (SRV, TXT, addresses; bounded in time and
in how many run at once) into a :class:`DiscoveredPeer`, compared with the table of peers
known, and reported as a :class:`PeerEvent` when something changed. Announcements come from
anyone on the network: a record that cannot describe a peer is ignored (logged at debug), the
table holds at most :data:`~couchlite._tuning.DISCOVERY_MAX_PEERS` peers, and the events
waiting for a slow consumer at most :data:`~couchlite._tuning.DISCOVERY_MAX_QUEUED_EVENTS`
(the oldest are dropped).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from zeroconf import Error as ZeroconfError
from zeroconf import ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from couchlite._runtime import loop_thread
from couchlite._tuning import (
    DISCOVERY_MAX_PEERS,
    DISCOVERY_MAX_QUEUED_EVENTS,
    DISCOVERY_MAX_RESOLVING,
    DISCOVERY_RESOLVE_TIMEOUT_S,
)
from couchlite.discovery._zeroconf import SERVICE_TYPE, interface_list, zeroconf_options
from couchlite.discovery.peer import DiscoveredPeer, PeerEvent
from couchlite.discovery.txt import decode_txt
from couchlite.errors import CouchliteError, DiscoveryError

logger = logging.getLogger(__name__)

#: bound on opening and closing a browser's sockets from a synchronous caller
_SYNC_CALL_TIMEOUT_S = 10.0


class _Browse:
    """The zeroconf side of a browser, on one event loop (see the module docstring)."""

    def __init__(self, interfaces: Sequence[str] | None, emit: Callable[[PeerEvent], None]):
        # Checked now, so that a bad argument fails the call that passed it.
        self._interfaces = interface_list(interfaces)
        self._emit = emit
        self._zeroconf: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._peers: dict[str, DiscoveredPeer] = {}
        #: the resolution in progress of each instance name: a newer change or a removal
        #: cancels it, so that a late answer cannot bring back a peer that has left
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._resolving: asyncio.Semaphore | None = None

    @property
    def peers(self) -> list[DiscoveredPeer]:
        return list(self._peers.values())

    async def start(self) -> None:
        interfaces, ip_version = zeroconf_options(self._interfaces)
        try:
            self._zeroconf = AsyncZeroconf(interfaces=interfaces, ip_version=ip_version)
            self._resolving = asyncio.Semaphore(DISCOVERY_MAX_RESOLVING)
            self._browser = AsyncServiceBrowser(
                self._zeroconf.zeroconf, SERVICE_TYPE, handlers=[self._on_change]
            )
        except (OSError, RuntimeError, ValueError) as exc:
            await self.close()
            raise DiscoveryError(f"cannot browse for peers: {exc}") from exc

    async def close(self) -> None:
        browser, self._browser = self._browser, None
        zc, self._zeroconf = self._zeroconf, None
        for task in list(self._tasks.values()):
            task.cancel()
        if browser is not None:
            await browser.async_cancel()
        if zc is not None:
            await zc.async_close()

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        instance = name[: -len(service_type) - 1] if name.endswith(service_type) else name
        pending = self._tasks.pop(instance, None)
        if pending is not None:
            pending.cancel()
        if state_change is ServiceStateChange.Removed:
            peer = self._peers.pop(instance, None)
            if peer is not None:
                self._emit(PeerEvent("removed", peer))
            return
        if instance not in self._peers and len(self._peers) >= DISCOVERY_MAX_PEERS:
            return
        if len(self._tasks) >= DISCOVERY_MAX_PEERS:
            return  # a flood of names: those already being resolved are enough work
        task = asyncio.get_running_loop().create_task(self._resolve(service_type, name, instance))
        self._tasks[instance] = task
        task.add_done_callback(lambda done: self._forget_task(instance, done))

    def _forget_task(self, instance: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(instance) is task:
            del self._tasks[instance]

    async def _resolve(self, service_type: str, name: str, instance: str) -> None:
        zc, semaphore = self._zeroconf, self._resolving
        if zc is None or semaphore is None:
            return
        async with semaphore:
            try:
                # A name from the network that zeroconf itself refuses (``_sub``, control
                # characters) raises here, before any request.
                info = AsyncServiceInfo(service_type, name)
                found = await info.async_request(zc.zeroconf, DISCOVERY_RESOLVE_TIMEOUT_S * 1000)
            except (OSError, RuntimeError, ValueError, ZeroconfError) as exc:
                logger.debug("resolving %r failed: %s", name, exc)
                return
        if not found or self._zeroconf is None:
            return
        try:
            peer = DiscoveredPeer.from_record(
                instance,
                info.parsed_scoped_addresses(),
                info.port or 0,
                decode_txt(info.properties),
            )
        except (CouchliteError, ValueError, TypeError) as exc:
            logger.debug("ignoring the service %r: %s", name, exc)
            return
        known = self._peers.get(instance)
        if known == peer:
            return
        if known is None and len(self._peers) >= DISCOVERY_MAX_PEERS:
            return
        self._peers[instance] = peer
        self._emit(PeerEvent("added" if known is None else "updated", peer))


class _Events:
    """A bounded queue of events between the loop and a consumer on any thread."""

    def __init__(self) -> None:
        self._events: collections.deque[PeerEvent] = collections.deque(
            maxlen=DISCOVERY_MAX_QUEUED_EVENTS
        )
        self._ready = threading.Condition()
        self.closed = False
        #: called (on the loop) whenever an event or the close arrives
        self.wake: Callable[[], None] = lambda: None

    def push(self, event: PeerEvent) -> None:
        with self._ready:
            self._events.append(event)
            self._ready.notify_all()
        self.wake()

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify_all()
        self.wake()

    def pop(self) -> PeerEvent | None:
        with self._ready:
            return self._events.popleft() if self._events else None

    def wait(self, timeout: float | None) -> None:
        with self._ready:
            if not self._events and not self.closed:
                self._ready.wait(timeout)


def _deadline(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise DiscoveryError(f"timeout must be a number of seconds >= 0, not {timeout!r}")
    return time.monotonic() + float(timeout)


class PeerBrowser:
    """Browse for listeners: an iterator of :class:`PeerEvent` that ends at the timeout (or
    at :meth:`close`); a context manager that closes it. :attr:`peers` is the current table.
    Runs on the library's event-loop thread; iterate from any one thread."""

    def __init__(self, interfaces: Sequence[str] | None, timeout: float | None) -> None:
        self._deadline = _deadline(timeout)
        self._events = _Events()
        self._browse = _Browse(interfaces, self._events.push)
        loop_thread().run(self._browse.start(), timeout=_SYNC_CALL_TIMEOUT_S)
        self._closed = False

    @property
    def peers(self) -> list[DiscoveredPeer]:
        """The peers known now."""
        return self._browse.peers

    def __iter__(self) -> PeerBrowser:
        return self

    def __next__(self) -> PeerEvent:
        while True:
            event = self._events.pop()
            if event is not None:
                return event
            if self._closed or self._events.closed:
                raise StopIteration
            remaining = None if self._deadline is None else self._deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise StopIteration
            self._events.wait(remaining)

    def close(self) -> None:
        """Stop browsing (idempotent); iteration ends."""
        if self._closed:
            return
        self._closed = True
        self._events.close()
        loop_thread().run(self._browse.close(), timeout=_SYNC_CALL_TIMEOUT_S)

    def __enter__(self) -> PeerBrowser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # A browser dropped without close(): release its sockets rather than leak them.
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                loop_thread().call_soon(_close_soon, self._browse)


def _close_soon(browse: _Browse) -> None:
    task = asyncio.get_running_loop().create_task(browse.close())
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


class AsyncPeerBrowser:
    """:class:`PeerBrowser` for asyncio: ``async with`` and ``async for``, on the running
    loop. Browsing starts at ``async with`` or at the first event asked for."""

    def __init__(self, interfaces: Sequence[str] | None, timeout: float | None) -> None:
        self._timeout = timeout
        self._deadline: float | None = None
        _deadline(timeout)  # checked now, counted from the start
        self._events = _Events()
        self._browse = _Browse(interfaces, self._events.push)
        self._signal: asyncio.Event | None = None
        self._started = False
        self._closed = False

    @property
    def peers(self) -> list[DiscoveredPeer]:
        """The peers known now."""
        return self._browse.peers

    async def start(self) -> None:
        """Start browsing (idempotent)."""
        if self._started or self._closed:
            # Once closed, never (re)open sockets that nothing would close again.
            return
        self._started = True
        signal = self._signal = asyncio.Event()
        self._events.wake = signal.set
        self._deadline = _deadline(self._timeout)
        try:
            await self._browse.start()
        except BaseException:
            # Nothing is browsing: a later ``async for`` must end, not wait for events that
            # cannot come (forever, without a timeout).
            self._closed = True
            raise

    def __aiter__(self) -> AsyncPeerBrowser:
        return self

    async def __anext__(self) -> PeerEvent:
        await self.start()
        if self._signal is None:
            raise StopAsyncIteration  # closed before it ever started
        while True:
            event = self._events.pop()
            if event is not None:
                return event
            if self._closed:
                raise StopAsyncIteration
            remaining = None if self._deadline is None else self._deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise StopAsyncIteration
            self._signal.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._signal.wait()
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Stop browsing (idempotent); iteration ends."""
        if self._closed:
            return
        self._closed = True
        self._events.close()
        await self._browse.close()

    async def __aenter__(self) -> AsyncPeerBrowser:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def browse(*, interfaces: Sequence[str] | None = None, timeout: float | None = None) -> PeerBrowser:
    """Browse for couchlite listeners. ``interfaces``: IP addresses to use (``None``: those of
    ``$COUCHLITE_DISCOVERY_INTERFACES``, else every interface); ``timeout``: seconds until the
    iteration ends (``None``: until :meth:`PeerBrowser.close`)."""
    return PeerBrowser(interfaces, timeout)


def browse_async(
    *, interfaces: Sequence[str] | None = None, timeout: float | None = None
) -> AsyncPeerBrowser:
    """:func:`browse` for asyncio: ``async with browse_async() as events: async for ...``."""
    return AsyncPeerBrowser(interfaces, timeout)


def _matches(peer: DiscoveredPeer, name: str) -> bool:
    return peer.name.casefold() == name.casefold() or peer.peer_id == name.lower()


def find_peer(
    name: str, *, interfaces: Sequence[str] | None = None, timeout: float = 5.0
) -> DiscoveredPeer:
    """The peer whose service name (case-insensitive) or peer ID is ``name``; raises
    :class:`DiscoveryError` if none is found within ``timeout`` seconds."""
    if not isinstance(name, str) or not name:
        raise DiscoveryError("find_peer() needs a service name or a peer ID")
    with browse(interfaces=interfaces, timeout=timeout) as browser:
        for event in browser:
            if event.kind != "removed" and _matches(event.peer, name):
                return event.peer
        seen = sorted(p.name for p in browser.peers)
    listed = ", ".join(repr(s) for s in seen[:10]) or "none"
    raise DiscoveryError(f"no peer named {name!r} found within {timeout:g} s (seen: {listed})")


async def find_peer_async(
    name: str, *, interfaces: Sequence[str] | None = None, timeout: float = 5.0
) -> DiscoveredPeer:
    """:func:`find_peer` for asyncio, browsing on the running loop."""
    if not isinstance(name, str) or not name:
        raise DiscoveryError("find_peer_async() needs a service name or a peer ID")
    async with browse_async(interfaces=interfaces, timeout=timeout) as browser:
        async for event in browser:
            if event.kind != "removed" and _matches(event.peer, name):
                return event.peer
        seen = sorted(p.name for p in browser.peers)
    listed = ", ".join(repr(s) for s in seen[:10]) or "none"
    raise DiscoveryError(f"no peer named {name!r} found within {timeout:g} s (seen: {listed})")


def peers(*, interfaces: Sequence[str] | None = None, timeout: float = 3.0) -> list[DiscoveredPeer]:
    """The peers found by browsing for ``timeout`` seconds, sorted by name."""
    with browse(interfaces=interfaces, timeout=timeout) as browser:
        for _event in browser:
            pass
        return sorted(browser.peers, key=lambda p: p.name)


__all__ = [
    "AsyncPeerBrowser",
    "PeerBrowser",
    "browse",
    "browse_async",
    "find_peer",
    "find_peer_async",
    "peers",
]
