"""Public vocabulary of replication: types, activity levels, status, events, conflicts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntFlag
from typing import TYPE_CHECKING, Any

from couchlite.errors import CouchliteError

if TYPE_CHECKING:
    from couchlite.database.document import Document


class ReplicatorType(Enum):
    PUSH_AND_PULL = 0
    PUSH = 1
    PULL = 2

    @property
    def pushes(self) -> bool:
        return self is not ReplicatorType.PULL

    @property
    def pulls(self) -> bool:
        return self is not ReplicatorType.PUSH


class ReplicatorActivityLevel(Enum):
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
    completed: int = 0
    total: int = 0


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
    replicator: Any
    status: ReplicatorStatus


@dataclass(frozen=True, slots=True)
class DocumentReplication:
    replicator: Any
    is_push: bool
    documents: list[ReplicatedDocument]
