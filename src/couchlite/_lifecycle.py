"""Context managers for the objects that start and stop: one rule for all of them.

``with`` / ``async with`` starts the object on entry and stops it on exit, whatever ends the
block, so a listener or replicator is never left running by an exception.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class StartsOnEnter(ABC):
    """``with obj:`` calls ``obj.start()`` on entry and ``obj.stop()`` on exit."""

    @abstractmethod
    def start(self) -> None:
        """Start (the concrete class says how and when it returns)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop; returns once stopped (bounded)."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class AsyncStartsOnEnter(ABC):
    """``async with obj:`` awaits ``obj.start()`` on entry and ``obj.stop()`` on exit."""

    @abstractmethod
    async def start(self) -> None:
        """Start (the concrete class says how and when it returns)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop; returns once stopped (bounded)."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
