"""Public vocabulary of replication: types, activity levels, status, events, conflicts.

The values the public API hands out and takes; how a replicator is configured is
:mod:`couchlite.replicator.config`, what a session runs with :mod:`couchlite.replicator.options`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntFlag
from typing import TYPE_CHECKING

from couchlite.errors import CouchliteError

if TYPE_CHECKING:
    from couchlite.database.document import Document
    from couchlite.replicator.replicator import AsyncReplicator, Replicator


class ReplicatorType(Enum):
    """The directions a replicator replicates in."""

    PUSH_AND_PULL = 0
    PUSH = 1
    PULL = 2

    @property
    def pushes(self) -> bool:
        """Whether this type pushes local changes."""
        return self is not ReplicatorType.PULL

    @property
    def pulls(self) -> bool:
        """Whether this type pulls remote changes."""
        return self is not ReplicatorType.PUSH


class ReplicatorActivityLevel(Enum):
    """``ReplicatorStatus.activity``; the numbers are Couchbase Lite's."""

    STOPPED = 0
    OFFLINE = 1
    CONNECTING = 2
    IDLE = 3
    BUSY = 4


class DocumentFlags(IntFlag):
    """Flags of a replicated document (and of the ``flags`` given to push/pull filters)."""

    NONE = 0
    DELETED = 1
    ACCESS_REMOVED = 2


@dataclass(frozen=True, slots=True)
class ReplicatorProgress:
    """How far the current run of a replicator got (``ReplicatorStatus.progress``).

    * ``completed`` / ``total`` -- changes processed / changes known to process, in this run,
      both directions together; like Couchbase Lite's ``Progress.completed`` / ``total``,
      they count changes. A unit is one revision to transfer: proposed to the peer when pushing,
      asked for when pulling (changes the document-ID list or the push filter leave out are
      not counted); it is completed once sent and acknowledged, received and saved (or
      rejected by the pull filter), or failed. ``total`` grows as the changes feeds are read,
      so it is only an estimate while the run lasts. (LiteCore weighs each revision by its
      body size in its own counters; only their ratio is meaningful there, and it is the same
      ratio when the documents are of similar size.)
    * ``fraction`` -- ``completed / max(total, 1)``, a float in 0.0 .. 1.0, as CBL-C's
      ``CBLReplicatorProgress.complete``: 0.0 when there was nothing to do.
    * ``document_count`` -- documents pushed or pulled successfully in this run (both
      directions; a failed document is not counted), as CBL-C's ``documentCount``.
    """

    completed: int = 0
    total: int = 0
    document_count: int = 0

    @property
    def fraction(self) -> float:
        """``completed / max(total, 1)``, between 0.0 and 1.0."""
        return min(1.0, self.completed / max(self.total, 1))


@dataclass(frozen=True, slots=True)
class ReplicatorStatus:
    """``activity``, ``progress`` and the last ``error``.

    While OFFLINE between two connection attempts, ``retry_in`` is the backoff delay before the
    next attempt (seconds: 1, 2, 4 ... capped at ``max_attempt_wait_time``) and
    ``next_attempt_at`` when it will be made (``time.time()`` seconds, or the injected clock's
    ``time()``); both are ``None`` otherwise.
    """

    activity: ReplicatorActivityLevel = ReplicatorActivityLevel.STOPPED
    progress: ReplicatorProgress = ReplicatorProgress()
    error: CouchliteError | None = None
    retry_in: float | None = None
    next_attempt_at: float | None = None


@dataclass(frozen=True, slots=True)
class ReplicatedDocument:
    """One document of a ``DocumentReplication``: its ID, collection, flags and error."""

    id: str
    scope: str
    collection: str
    flags: DocumentFlags = DocumentFlags.NONE
    error: CouchliteError | None = None


@dataclass(frozen=True, slots=True)
class Conflict:
    """Handed to a conflict resolver: ``None`` stands for a deleted side."""

    document_id: str
    local_document: Document | None
    remote_document: Document | None


@dataclass(frozen=True, slots=True)
class ReplicatorChange:
    """A status change, given to change listeners and yielded by ``changes()``.

    ``replicator`` is the object the listener was added to: a ``Replicator`` for the
    synchronous API, an ``AsyncReplicator`` for the asyncio one."""

    replicator: Replicator | AsyncReplicator
    status: ReplicatorStatus


@dataclass(frozen=True, slots=True)
class DocumentReplication:
    """A batch of documents pushed (``is_push``) or pulled, given to document listeners; each
    ``ReplicatedDocument`` carries its ``error`` if it failed."""

    replicator: Replicator | AsyncReplicator
    is_push: bool
    documents: list[ReplicatedDocument]
