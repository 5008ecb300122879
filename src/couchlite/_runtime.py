"""The threads behind the synchronous façades.

``Replicator`` and ``UrlEndpointListener`` are thin synchronous wrappers over their asyncio
implementations. Their work runs on one library-owned event loop, in a daemon thread started on
first use (``loop_thread()``); user callbacks (change listeners, filters are not callbacks of this
kind) are delivered on a separate notifier thread (``notify``), so a slow or failing callback
never stalls replication and callbacks are delivered in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


#: The environment variable that picks the library's event loop: ``asyncio`` (the default,
#: the standard loop) or ``uvloop`` (the ``fast`` extra: less CPU per message).
EVENT_LOOP_ENV = "COUCHLITE_EVENT_LOOP"


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new loop of the kind ``$COUCHLITE_EVENT_LOOP`` names (a clear error for any other
    value, or for ``uvloop`` without uvloop installed)."""
    kind = os.environ.get(EVENT_LOOP_ENV, "asyncio").strip().lower() or "asyncio"
    if kind == "asyncio":
        return asyncio.new_event_loop()
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            raise ImportError(
                f"{EVENT_LOOP_ENV}=uvloop needs uvloop: pip install 'couchlite[fast]'"
            ) from exc
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    raise ValueError(f"{EVENT_LOOP_ENV} must be 'asyncio' or 'uvloop', not {kind!r}")


class LoopThread:
    """An asyncio event loop running forever in a daemon thread."""

    def __init__(self, name: str = "couchlite-loop") -> None:
        # made here, not in the thread: a misconfigured loop is the caller's error, raised
        loop = new_event_loop()
        self._ready = threading.Event()
        self._loop = loop
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        self._ready.set()
        loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; returns a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (not from the loop's own thread)."""
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("LoopThread.run() called from the event loop thread")
        future = self.submit(coro)
        # Only this wait's own expiry becomes the generic error: since Python 3.11
        # ``concurrent.futures.TimeoutError`` is the built-in ``TimeoutError``, which the
        # coroutine may raise itself (``wait_for``'s message says what it waited for).
        done, _ = concurrent.futures.wait([future], timeout)
        if not done:
            future.cancel()
            raise TimeoutError("the operation did not finish in time")
        return future.result()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)


class Notifier:
    """Delivers user callbacks in order on one daemon thread; exceptions are logged."""

    def __init__(self, name: str = "couchlite-notifier") -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        while True:
            fn, args = self._queue.get()
            try:
                fn(*args)
            except Exception:
                log.exception("a listener callback raised")

    def notify(self, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.put((fn, args))

    def in_notifier_thread(self) -> bool:
        return threading.current_thread() is self._thread


def stop_from_any_thread(
    loop: asyncio.AbstractEventLoop | None,
    begin_stop: Callable[[], None],
    stop: Callable[[], Coroutine[Any, Any, None]],
    timeout: float,
) -> bool:
    """Stop an object that lives on ``loop``, from whichever thread asks (``Database.close()``).

    On ``loop`` itself waiting would deadlock it, so ``begin_stop()`` starts the stop and this
    returns at once; from another thread ``stop()`` runs on ``loop`` and this waits for it, at
    most ``timeout`` seconds (the stop goes on if it takes longer). Returns ``False`` only when
    that wait ran out. A loop that no longer runs cannot run the object either: nothing to do.
    """
    if loop is None or loop.is_closed() or not loop.is_running():
        return True
    try:
        on_loop = asyncio.get_running_loop() is loop
    except RuntimeError:
        on_loop = False
    if on_loop:
        begin_stop()
        return True
    future = asyncio.run_coroutine_threadsafe(stop(), loop)
    done, _ = concurrent.futures.wait([future], timeout=timeout)
    if not done:
        return False
    future.result()
    return True


_lock = threading.Lock()
_loop_thread: LoopThread | None = None
_notifier: Notifier | None = None


def loop_thread() -> LoopThread:
    """The shared event-loop thread, started on first use."""
    global _loop_thread
    with _lock:
        if _loop_thread is None:
            _loop_thread = LoopThread()
        return _loop_thread


def notifier() -> Notifier:
    """The shared notifier thread, started on first use."""
    global _notifier
    with _lock:
        if _notifier is None:
            _notifier = Notifier()
        return _notifier


def notify(fn: Callable[..., Any], *args: Any) -> None:
    """Call ``fn(*args)`` on the notifier thread."""
    notifier().notify(fn, *args)
