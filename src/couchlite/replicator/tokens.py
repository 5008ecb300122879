"""A replicator's listeners: the ``ReplicatorListenerToken`` its ``add_*_listener`` methods
return, and how a listener is called."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

#: the replicator's logger: listener failures are logged with its other messages
logger = logging.getLogger("couchlite.replicator.replicator")

E = TypeVar("E")


class ReplicatorListenerToken:
    """Returned by ``add_*_listener``; ``remove()`` stops the deliveries (idempotent)."""

    __slots__ = ("_fn", "_listeners")

    def __init__(self, listeners: list[ReplicatorListenerToken], fn: Callable[..., None]):
        self._listeners = listeners
        self._fn = fn

    def remove(self) -> None:
        """Stop calling this listener (events already dispatched may still arrive)."""
        if self in self._listeners:
            self._listeners.remove(self)


def call_logged(fn: Callable[[E], None], arg: E) -> None:
    """Call a listener; what it raises is logged, never propagated into the replicator."""
    try:
        fn(arg)
    except Exception:
        logger.exception("a replicator listener raised")


__all__ = ["ReplicatorListenerToken"]
