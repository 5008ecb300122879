"""Live queries: a query re-run after the commits that may change its results, its listeners
told only when the results do change.

One thread per live query runs it (SQLite work off the committing thread: the writer never
waits for a query). Commits to the collections the query reads mark it stale; the thread waits
``LIVE_QUERY_DEBOUNCE_S`` for more commits to coalesce, never runs it more often than every
``LIVE_QUERY_MIN_INTERVAL_S``, and rests ``LIVE_QUERY_IDLE_FACTOR`` times as long as its last run
took, so a collection taking thousands of saves a second costs a bounded share of the time.
A listener added later gets the current results at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from couchlite import _tuning
from couchlite.database.changes import ListenerToken
from couchlite.errors import CouchliteError, DatabaseClosedError

if TYPE_CHECKING:
    from couchlite.database.collection import Collection
    from couchlite.query.query import Query, ResultSet

__all__ = ["LiveQuery", "LiveResults", "QueryChange"]

log = logging.getLogger("couchlite.query")


@dataclass(frozen=True, slots=True)
class QueryChange:
    """What a live query's listener receives: the query, its new ``results``, or the ``error``
    that running it raised (then ``results`` is None). Couchbase Lite's ``QueryChange``."""

    query: Query
    results: ResultSet | None
    error: CouchliteError | None = None


class LiveQuery:
    """The live half of one ``Query``: its listeners, its thread, its last results."""

    def __init__(self, query: Query, collections: list[Collection]) -> None:
        self._query = query
        self._collections = collections
        self._lock = threading.Lock()
        self._listeners: dict[int, Callable[[QueryChange], None]] = {}
        self._fresh: set[int] = set()  # listeners that have not had results yet
        self._next_id = 0
        self._wake = threading.Condition(self._lock)
        self._stale = False
        self._generation = 0  # which thread is the current one (an old one may still exit)
        self._thread: threading.Thread | None = None
        self._tokens: list[ListenerToken] = []
        self._last: ResultSet | None = None

    def add(self, fn: Callable[[QueryChange], None]) -> ListenerToken:
        if not callable(fn):
            raise TypeError("a query listener must be callable")
        with self._lock:
            if len(self._listeners) >= _tuning.LIVE_QUERY_MAX_LISTENERS:
                raise CouchliteError(
                    f"a query takes at most {_tuning.LIVE_QUERY_MAX_LISTENERS} listeners"
                )
            if self._thread is None:
                self._start()  # first: if it fails, nothing is left registered
            key = self._next_id
            self._next_id += 1
            self._listeners[key] = fn
            self._fresh.add(key)
            self._wake.notify()
        return ListenerToken._calling(lambda: self._remove(key))

    # (_start and _stop run with the lock held: the collection listeners they add and remove
    # take the notifier's lock inside ours, and the notifier never holds its lock while it
    # calls _on_commit, which takes ours)

    def _start(self) -> None:
        tokens: list[ListenerToken] = []
        try:
            for collection in self._collections:
                tokens.append(collection.add_change_listener(self._on_commit))
        except BaseException:
            for token in tokens:
                token.remove()
            raise
        self._tokens = tokens
        self._generation += 1
        self._stale = True
        self._thread = threading.Thread(
            target=self._main, args=(self._generation,), name="couchlite-live-query", daemon=True
        )
        self._thread.start()

    def _stop(self) -> None:
        self._generation += 1
        self._thread = None
        tokens, self._tokens = self._tokens, []
        for token in tokens:
            token.remove()
        self._wake.notify_all()

    def _remove(self, key: int) -> None:
        with self._lock:
            if self._listeners.pop(key, None) is None:
                return
            self._fresh.discard(key)
            if not self._listeners:
                self._stop()

    def changed(self) -> None:
        """The results may have changed (a commit, new parameters): run again soon."""
        with self._lock:
            self._stale = True
            self._wake.notify()

    def _on_commit(self, _change: object) -> None:
        self.changed()

    def _main(self, generation: int) -> None:
        try:
            self._loop(generation)
        finally:
            with self._lock:
                if self._generation == generation:  # ended by a fault, not by _stop
                    self._stop()

    def _loop(self, generation: int) -> None:
        last_end = 0.0
        last_cost = 0.0
        while True:
            with self._lock:
                while not (self._stale or self._fresh or self._generation != generation):
                    self._wake.wait(_tuning.LIVE_QUERY_IDLE_CHECK_S)
                    if self._query._database_closed():
                        # its collection listeners went with the database: nothing will wake it
                        self._stop()
                if self._generation != generation:
                    return
            # coalesce a burst of commits, and bound how often the query runs: never more than
            # one run per LIVE_QUERY_MIN_INTERVAL_S, and idle LIVE_QUERY_IDLE_FACTOR times as
            # long as the last run took, so that a costly query cannot starve the writers
            gap = max(_tuning.LIVE_QUERY_MIN_INTERVAL_S, _tuning.LIVE_QUERY_IDLE_FACTOR * last_cost)
            time.sleep(max(_tuning.LIVE_QUERY_DEBOUNCE_S, last_end + gap - time.monotonic()))
            with self._lock:
                if self._generation != generation:
                    return
                self._stale = False
            started = time.monotonic()
            if not self._run(generation):
                return
            last_end = time.monotonic()
            last_cost = last_end - started

    def _run(self, generation: int) -> bool:
        """Run the query and tell the listeners that should hear of it; False to stop."""
        error: CouchliteError | None = None
        results: ResultSet | None = None
        try:
            results = self._query.execute()
        except DatabaseClosedError:
            with self._lock:
                if self._generation == generation:
                    self._stop()
            return False
        except CouchliteError as exc:
            error = exc
        except Exception as exc:  # a listener must hear of it, and the thread must live on
            error = CouchliteError(f"the live query failed: {exc!r}")
        with self._lock:
            if self._generation != generation:
                return False
            changed = (
                error is not None
                or self._last is None
                or (results is not None and not results._same_rows(self._last))
            )
            # after an error, whatever comes next is news
            self._last = results
            current = results
            # results that changed go to everyone (whatever woke the run); the same results
            # only to listeners that have not had any yet
            targets = [fn for key, fn in self._listeners.items() if changed or key in self._fresh]
            self._fresh.clear()
        for fn in targets:
            try:
                fn(QueryChange(self._query, current, error))
            except Exception:
                log.exception("a query listener raised")
        return True


class LiveResults:
    """``async for results in query.live_results()``: the query's results now, then each time
    they change. Results that arrive faster than they are consumed are skipped: the next value
    is always the latest. ``aclose()`` (or leaving an ``async with``) stops it."""

    def __init__(self, query: Query) -> None:
        self._loop = asyncio.get_running_loop()
        self._latest: QueryChange | None = None
        self._closed = False
        self._ready = asyncio.Event()
        self._token = query.add_change_listener(self._deliver)

    def _deliver(self, change: QueryChange) -> None:
        self._loop.call_soon_threadsafe(self._set, change)

    def _set(self, change: QueryChange) -> None:
        if self._closed:
            return
        self._latest = change
        self._ready.set()

    def __aiter__(self) -> LiveResults:
        return self

    async def __anext__(self) -> ResultSet:
        if self._closed:
            raise StopAsyncIteration
        await self._ready.wait()
        self._ready.clear()
        change, self._latest = self._latest, None
        if change is None:  # closed while waiting
            raise StopAsyncIteration
        if change.error is not None:
            raise change.error
        assert change.results is not None
        return change.results

    async def aclose(self) -> None:
        """Stop: remove the query listener; an ``async for`` waiting on it ends."""
        self._closed = True
        self._token.remove()
        self._ready.set()

    async def __aenter__(self) -> LiveResults:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
