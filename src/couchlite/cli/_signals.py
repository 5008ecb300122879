"""Stopping long-running commands (``serve``, ``sync``, ``peers --watch``) cleanly.

SIGINT and SIGTERM set an event the command's main loop waits on, instead of raising
``KeyboardInterrupt`` wherever the main thread happens to be (possibly inside the library's
stop or close): the loop sees the event within one poll interval and shuts the listener or
replicator down in order. A second SIGINT while stopping falls back to the default behaviour,
so that a stop that hangs can still be cut short.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def stop_requested() -> Iterator[threading.Event]:
    """An event set on SIGINT or SIGTERM while the block runs; the old handlers come back
    after it."""
    event = threading.Event()
    signals = [signal.SIGINT, signal.SIGTERM]

    def handler(signum: int, frame: FrameType | None) -> None:
        if event.is_set() and signum == signal.SIGINT:
            # the second SIGINT: the stop itself may hang, so cut it short here and now
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt
        event.set()

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield event
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


__all__ = ["stop_requested"]
