"""What a running replicator's supervisor and session report to, kept off its public class.

The supervisor (:class:`~couchlite.replicator.supervisor.SupervisorOwner`) and the session
(:class:`~couchlite.replicator.options.SessionEvents`) call these on the replicator's event
loop; each turns into a status change (or a document event) of the
:class:`~couchlite.replicator.replicator.AsyncReplicator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from couchlite.errors import CouchliteError
from couchlite.replicator.types import (
    DocumentReplication,
    ReplicatedDocument,
    ReplicatorActivityLevel,
    ReplicatorProgress,
)

if TYPE_CHECKING:
    from couchlite.replicator.replicator import AsyncReplicator

Level = ReplicatorActivityLevel


class Reports:
    """What the supervisor and the session report to (a ``SupervisorOwner``), on the loop.

    A separate object, so that these callbacks are not part of the replicator's public API."""

    __slots__ = ("_r",)

    def __init__(self, replicator: AsyncReplicator) -> None:
        self._r = replicator

    def connecting(self) -> None:
        self._r._set_status(Level.CONNECTING, None, None)

    def certificate_received(self, der: bytes) -> None:
        self._r._server_certificate = der

    def connected(self) -> None:
        self._r._set_status(Level.BUSY, None, None)

    def offline(
        self,
        error: CouchliteError,
        retry_in: float | None = None,
        next_attempt_at: float | None = None,
    ) -> None:
        self._r._set_status(Level.OFFLINE, None, error, retry_in, next_attempt_at)

    def activity_changed(self, busy: bool) -> None:
        r = self._r
        if r._status.activity not in (Level.BUSY, Level.IDLE) or r._stopping:
            return
        if not busy and not r._config.continuous:
            return  # a one-shot replicator is BUSY until it stops (see the module docstring)
        r._set_status(Level.BUSY if busy else Level.IDLE, None, r._status.error)

    def progress(self, completed: int, total: int) -> None:
        r = self._r
        if r._status.activity is Level.STOPPED:
            return
        progress = ReplicatorProgress(completed, max(total, completed), r._document_count)
        r._set_status(r._status.activity, progress, r._status.error)

    def documents_replicated(self, is_push: bool, documents: list[ReplicatedDocument]) -> None:
        r = self._r
        # Counted here, reported with the progress that follows each batch (the session's
        # reporter hands over the documents first, then the progress).
        r._document_count += sum(1 for d in documents if d.error is None)
        if not documents or not r._document_listeners:
            return
        event = DocumentReplication(r._owner, is_push, list(documents))
        for token in list(r._document_listeners):
            r._deliver(token._fn, event)


__all__ = ["Reports"]
