"""Which sequence a checkpoint may claim (notes §9.1, §10).

A checkpoint may only claim a sequence when every earlier sequence of interest is done.
:class:`SequenceTracker` keeps the sequences in the order they were announced and pops the
finished prefix, so the checkpoint is O(1) amortised per document and never skips a revision
that is still in flight. A sequence marked *stuck* (finished, but to be retried by the next
session) holds the checkpoint before it for the rest of the session.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

_PENDING, _DONE, _STUCK = 0, 1, 2


class SequenceTracker:
    """Sequences in announcement order; :attr:`checkpoint` is the last one of the done prefix.

    Keys are whatever identifies a sequence for the caller (local ints for a pusher, the JSON
    text of the remote sequence for a puller); values are what the checkpoint records.
    ``on_quiet(quiet)`` is called whenever :attr:`outstanding` reaches zero (``True``) or
    leaves it (``False``): how an event loop learns that everything announced is done.
    """

    __slots__ = (
        "_frozen",
        "_on_quiet",
        "_order",
        "_states",
        "_values",
        "changed",
        "checkpoint",
        "outstanding",
    )

    def __init__(
        self, start: Any = None, *, on_quiet: Callable[[bool], None] | None = None
    ) -> None:
        self._states: dict[Any, int] = {}
        self._order: deque[Any] = deque()
        self._values: dict[Any, Any] = {}
        self.checkpoint: Any = start
        self.outstanding = 0
        self.changed = False
        self._frozen = False
        self._on_quiet = on_quiet

    def add(self, key: Any, value: Any) -> None:
        if key in self._states:
            return
        self._states[key] = _PENDING
        if not self._frozen:
            self._order.append(key)
            self._values[key] = value
        self.outstanding += 1
        if self.outstanding == 1 and self._on_quiet is not None:
            self._on_quiet(False)

    def done(self, key: Any) -> None:
        self._finish(key, _DONE)

    def stuck(self, key: Any) -> None:
        """Finished, but must be retried next session: the checkpoint stays before it."""
        self._finish(key, _STUCK)

    def _finish(self, key: Any, state: int) -> None:
        if self._states.get(key) != _PENDING:
            return
        self.outstanding -= 1
        if self.outstanding == 0 and self._on_quiet is not None:
            self._on_quiet(True)
        if self._frozen:
            del self._states[key]
            return
        self._states[key] = state
        states, order = self._states, self._order
        while order and states[order[0]] == _DONE:
            first = order.popleft()
            del states[first]
            self.checkpoint = self._values.pop(first)
            self.changed = True
        if order and states[order[0]] == _STUCK:
            self._freeze()

    def _freeze(self) -> None:
        """A stuck sequence heads the queue: the checkpoint cannot move past it in this
        session, so from then on only the pending keys are kept (memory stays flat however many
        sequences follow; ``outstanding`` and ``on_quiet`` are unaffected)."""
        self._frozen = True
        self._states = {k: _PENDING for k, v in self._states.items() if v == _PENDING}
        self._order.clear()
        self._values.clear()

    def is_pending(self, key: Any) -> bool:
        return self._states.get(key) == _PENDING


__all__ = ["SequenceTracker"]
