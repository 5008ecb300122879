"""Bounds on a listener's authentication work: its own bounded executor, and failure delays.

Theory of operation
-------------------
A password check may be slow (a hash, a directory lookup), and anyone who can reach the
listener can ask for one. Two things keep such requests from starving real users:

* :class:`CheckRunner` -- the listener's *own* executor: ``AUTH_MAX_CONCURRENT_CHECKS`` worker
  threads for plain check functions (never asyncio's shared default executor, which the rest of
  the process uses too), and room for ``AUTH_MAX_QUEUED_CHECKS`` more checks waiting. A check
  holds its slot until its function has really returned -- a check that timed out still runs
  in its thread, so its slot stays taken until then, and a stuck check function cannot make
  work pile up behind it. Without a free slot the peer is told at once to come back later
  (503 + ``Retry-After``, transient for Couchbase Lite clients): so a real user waits at most
  for the checks ahead of it in a bounded queue, or is refused at once and retries. Coroutine
  check functions run on the event loop but take slots the same way.
* :class:`FailureDelays` -- an address whose credentials were refused waits before its next
  check: ``AUTH_FAILURE_BASE_DELAY_S`` after one failure, doubling per further failure up to
  ``AUTH_FAILURE_MAX_DELAY_S``, forgotten ``AUTH_FAILURE_FORGET_S`` after the last one. The
  delay is taken *before* the check, on the event loop (no thread held), whatever user name
  and password come, so it reveals nothing about them (wrong user and wrong password stay
  indistinguishable) and cannot be cut short by a guesser giving up early. The waiting
  connection counts as pending (``max_pending_connections``), so waits are bounded in number
  too. The table is bounded (``AUTH_FAILURE_MAX_ADDRESSES``, the least recently failing
  forgotten first); IPv6 addresses count by /64 prefix, the block one host gets.

Both are pure bookkeeping on the listener's event loop; nothing here reads the network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import itertools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from couchlite._tuning import (
    AUTH_FAILURE_BASE_DELAY_S,
    AUTH_FAILURE_FORGET_S,
    AUTH_FAILURE_MAX_ADDRESSES,
    AUTH_FAILURE_MAX_DELAY_S,
    AUTH_MAX_CONCURRENT_CHECKS,
    AUTH_MAX_QUEUED_CHECKS,
)

T = TypeVar("T")

_runner_ids = itertools.count(1)


class Busy(Exception):
    """Every slot of the :class:`CheckRunner` is taken; the peer should come back later."""


class CheckRunner:
    """A bounded executor for authentication checks (see the module docstring)."""

    def __init__(
        self,
        workers: int = AUTH_MAX_CONCURRENT_CHECKS,
        queued: int = AUTH_MAX_QUEUED_CHECKS,
        name: str | None = None,
    ) -> None:
        self.workers = workers
        self.capacity = workers + queued
        self._name = name or f"couchlite-auth-{next(_runner_ids)}"
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        #: checks admitted and not finished (running or waiting for a worker)
        self.in_use = 0
        #: checks refused for want of a slot, since creation
        self.refused = 0

    def _take(self) -> None:
        if self.in_use >= self.capacity:
            self.refused += 1
            raise Busy
        self.in_use += 1

    def _give_back(self, _future: object = None) -> None:
        self.in_use -= 1

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a worker thread; raises :class:`Busy` at once without a slot.

        Cancelling the wait (a timeout) leaves ``fn`` running, and its slot taken, until it
        returns.
        """
        self._take()
        try:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.workers, thread_name_prefix=self._name
                )
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._give_back()
            raise
        loop = asyncio.get_running_loop()

        def done(_future: object) -> None:
            # The slot is given back on the loop, once the function has really returned; if
            # the loop is gone (RuntimeError), so is the count.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._give_back)

        future.add_done_callback(done)
        return await asyncio.wrap_future(future)

    async def run_async(self, work: Awaitable[T]) -> T:
        """Await ``work`` (a coroutine check) in a slot; raises :class:`Busy` without one."""
        try:
            self._take()
        except Busy:
            if asyncio.iscoroutine(work):
                work.close()  # never awaited: close it so that it is not reported as leaked
            raise
        task = asyncio.ensure_future(work)
        task.add_done_callback(self._give_back)
        # A cancelled wait does not cancel the check: like a thread, it holds its slot until
        # it ends (bounded by the check's own behaviour; the caller has a timeout).
        return await asyncio.shield(task)

    def shutdown(self) -> None:
        """Stop the workers once the checks they run are done (never waits for them)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def address_key(remote_address: str | None) -> str | None:
    """The key of a peer address (``host:port``, ``[v6]:port``): the host, IPv6 by /64."""
    if not remote_address:
        return None
    host = remote_address
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


class FailureDelays:
    """Per-address failure counts and the delay they impose (see the module docstring)."""

    def __init__(
        self,
        *,
        base: float = AUTH_FAILURE_BASE_DELAY_S,
        cap: float = AUTH_FAILURE_MAX_DELAY_S,
        forget_after: float = AUTH_FAILURE_FORGET_S,
        max_addresses: int = AUTH_FAILURE_MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = base
        self.cap = cap
        self.forget_after = forget_after
        self.max_addresses = max_addresses
        self._clock = clock
        #: address -> (failures, time of the last one); least recently failing first
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def failures(self, address: str | None) -> int:
        """Recent failures of ``address`` (0 once forgotten)."""
        if address is None:
            return 0
        entry = self._failures.get(address)
        if entry is None:
            return 0
        count, last = entry
        if self._clock() - last >= self.forget_after:
            del self._failures[address]
            return 0
        return count

    def delay(self, address: str | None) -> float:
        """Seconds to wait before checking credentials from ``address``."""
        count = self.failures(address)
        if count == 0:
            return 0.0
        # min() before the power: no float overflow however many failures are counted.
        return min(self.cap, self.base * 2.0 ** min(count - 1, 32))

    def failed(self, address: str | None) -> None:
        """Record one refused check from ``address``."""
        if address is None:
            return
        count = self.failures(address)
        self._failures[address] = (count + 1, self._clock())
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)


__all__ = ["Busy", "CheckRunner", "FailureDelays", "address_key"]
