"""A transaction's in-memory state and the ``with engine.transaction()`` scope around it.

The ``Engine`` (``couchlite.database.engine``) owns the one open ``Transaction`` of a database
file and does the reading and writing through its overlay; this module holds the state itself
and the context manager that opens, nests, commits or rolls it back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from couchlite.database.blob import BlobLease
from couchlite.storage.records import CollectionRow, DocRecord

if TYPE_CHECKING:
    from couchlite.database.engine import Engine

Key = tuple[int, str]


@dataclass(slots=True)
class CollectionState:
    id: int
    scope: str
    name: str
    last_seq: int
    doc_count: int
    dropped: bool = False

    @classmethod
    def from_row(cls, row: CollectionRow) -> CollectionState:
        return cls(row.id, row.scope, row.name, row.last_seq, row.doc_count)

    def next_sequence(self) -> int:
        self.last_seq += 1
        return self.last_seq


@dataclass(slots=True)
class Transaction:
    owner: int
    depth: int = 0
    #: the overlay: the new record of each written document (``None``: purged)
    records: dict[Key, DocRecord | None] = field(default_factory=dict)
    #: the committed record of each written document, as first read
    origin: dict[Key, DocRecord | None] = field(default_factory=dict)
    #: expiration changes of documents whose record is not otherwise rewritten
    expirations: dict[Key, float | None] = field(default_factory=dict)
    #: ("rec" | "exp", key, previous value) or ("doc", document, its previous state)
    undo: list[tuple[str, Any, Any]] = field(default_factory=list)
    savepoints: list[int] = field(default_factory=list)
    collections: set[int] = field(default_factory=set)
    #: blobs stored for this transaction (deleted again if it rolls back)
    written_digests: set[str] = field(default_factory=set)
    #: pins on received blobs this transaction's inserts rely on: released when it ends
    leases: list[BlobLease] = field(default_factory=list)
    #: orjson's ``default`` for this transaction: stores blobs met while encoding bodies
    encode_extra: Callable[[Any], Any] | None = None
    #: documents written on the guess that they are new (``put_new_record_unverified``), with
    #: the document object to re-stamp if the guess was wrong; their record is ``records[key]``
    unverified: dict[Key, Any] = field(default_factory=dict)


class TransactionScope:
    """The context manager behind ``Engine.transaction()`` (a class: it is on the hot path)."""

    __slots__ = ("_committed", "_engine", "_txn")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._committed = False

    def __enter__(self) -> Transaction:
        engine = self._engine
        engine.check_open()
        engine.lock.acquire()
        try:
            txn = engine.txn
            if txn is None:
                engine.check_open()
                txn = engine.txn = Transaction(owner=threading.get_ident())
            txn.depth += 1
            txn.savepoints.append(len(txn.undo))
        except BaseException:
            engine.lock.release()
            raise
        self._txn = txn
        return txn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        engine = self._engine
        txn = self._txn
        committed = False
        try:
            if exc_type is not None:
                engine._rollback_to(txn, txn.savepoints[-1])
            elif txn.depth == 1:
                try:
                    engine._commit(txn)
                except BaseException:
                    engine._rollback_to(txn, 0)  # restores the documents' revisions too
                    raise
                committed = True
        finally:
            txn.savepoints.pop()
            txn.depth -= 1
            if txn.depth == 0:
                engine.txn = None
                if not committed:
                    engine._discard(txn)
            engine.lock.release()
        if committed:
            engine._after_commit(txn)
