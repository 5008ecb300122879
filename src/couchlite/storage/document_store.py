"""``DocumentStore``: everything the database layer asks of its storage, as typed operations.

The database (``couchlite.database``) keeps its transactions in memory and hands the store one
``CommitBatch`` per commit; everything else is a read or a small self-contained write. No
operation hands out a connection, a cursor or statement text, so an implementation is free to
store the data however it likes (``storage.sqlite_store.SQLiteStore`` is the one shipped).

Contract shared by every implementation (``tests/storage/test_document_store_contract.py``
checks it):

* Thread safety: every method may be called from any thread. Reads see only committed data
  and never wait for a write in progress; writes are serialised, each one atomic.
* ``commit`` applies a whole ``CommitBatch`` or nothing; a taken ID among ``guessed`` raises
  ``GuessedWrong`` and nothing is written.
* Iterators (``change_batches``, ``live_doc_ids``, ``doc_ids``) read in bounded batches: a large
  collection is never loaded whole, and each batch sees the latest commit.
* After ``close`` every method raises ``DatabaseClosedError``; storage failures are raised as
  ``couchlite.errors`` exceptions (``DatabaseError``, ``CorruptDatabaseError``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from couchlite.storage.records import (
    ChangeRecord,
    CollectionRow,
    CommitBatch,
    CurrentRow,
    DocRecord,
)

if TYPE_CHECKING:
    from couchlite.storage._query_store import IndexRow

__all__ = ["DocumentStore"]


class DocumentStore(Protocol):
    """The storage of one database (see the module docstring for the contract)."""

    @property
    def public_uuid(self) -> str:
        """The database's public UUID (hex), fixed when it was created."""
        ...

    @property
    def private_uuid(self) -> str:
        """The database's private UUID (hex), fixed when it was created."""
        ...

    @property
    def closed(self) -> bool: ...

    def close(self) -> None:
        """Finish the writes in progress and release the storage (idempotent)."""
        ...

    # --- collections -------------------------------------------------------------------------

    def collections(self) -> list[CollectionRow]:
        """Every collection, by ID."""
        ...

    def create_collection(self, scope: str, name: str) -> CollectionRow:
        """The collection ``scope.name``, created empty unless it exists."""
        ...

    def drop_collection(self, coll_id: int) -> list[str]:
        """Remove a collection with its documents; return the blob digests it referenced."""
        ...

    # --- documents ---------------------------------------------------------------------------

    def get_record(self, coll_id: int, doc_id: str) -> DocRecord | None: ...

    def get_current(self, coll_id: int, doc_id: str) -> CurrentRow | None:
        """A document's current ``(rev, seq, flags, body)``: what reading it needs, without
        its revision tree (the hot path of ``Collection.get``)."""
        ...

    def get_records(self, coll_id: int, doc_ids: list[str]) -> dict[str, DocRecord]:
        """The records of those of ``doc_ids`` that exist, by ID (a bounded number of reads)."""
        ...

    def change_batches(
        self, coll_id: int, since: int = 0, limit: int | None = None
    ) -> Iterator[list[ChangeRecord]]:
        """Every document changed after sequence ``since``, in sequence order (at most
        ``limit``), tombstones included; in non-empty batches, each read when it is reached
        (a batch per entry would cost a Python layer per entry on a scan)."""
        ...

    def live_doc_ids(self, coll_id: int) -> Iterator[str]:
        """The IDs of the live (not deleted) documents, in sequence order."""
        ...

    def doc_ids(self, coll_id: int, *, include_deleted: bool = False) -> Iterator[str]:
        """The IDs of the live documents (or of all, with ``include_deleted``), in ID order."""
        ...

    def conflicted_doc_ids(self, coll_id: int) -> list[str]:
        """The IDs of the documents flagged ``DOC_CONFLICTED``."""
        ...

    def commit(self, batch: CommitBatch) -> None:
        """Apply one transaction's writes atomically (see ``CommitBatch``)."""
        ...

    # --- expiration --------------------------------------------------------------------------

    def next_expiration(self) -> float | None:
        """The earliest expiration time set in any collection."""
        ...

    def expired_doc_ids(self, coll_id: int, now: float) -> list[str]:
        """The IDs of the documents whose expiration time is ``now`` or earlier."""
        ...

    # --- blob references ---------------------------------------------------------------------

    def referenced_digests(self, digests: Sequence[str]) -> set[str]:
        """Those of ``digests`` that a committed document references."""
        ...

    def all_referenced_digests(self) -> set[str]: ...

    def blob_refs_version(self) -> int:
        """Which scan of the bodies the stored blob references were computed by (1 unset)."""
        ...

    def records_containing(self, coll_id: int, needle: bytes) -> list[DocRecord]:
        """Every record whose current body or revision tree contains ``needle``."""
        ...

    def rebuild_blob_refs(self, refs: list[tuple[int, str, set[str]]], version: int) -> None:
        """Replace the blob references of the given documents (``(collection, doc ID,
        digests)``), flag ``DOC_HAS_BLOBS`` on those that have any, record ``version``: one
        atomic write."""
        ...

    # --- what peers have ---------------------------------------------------------------------

    def remote_revisions(self, remote: str, coll_id: int, doc_ids: list[str]) -> dict[str, str]:
        """The revision peer ``remote`` (its address) is known to have of each document."""
        ...

    def set_remote_revisions(
        self, remote: str, coll_id: int, revisions: list[tuple[str, str]]
    ) -> None:
        """Record ``(doc ID, revision)`` pairs peer ``remote`` is known to have."""
        ...

    # --- checkpoints -------------------------------------------------------------------------

    def get_checkpoint(self, checkpoint_id: str) -> bytes | None:
        """A checkpoint of ours, as an active replicator."""
        ...

    def set_checkpoint(self, checkpoint_id: str, body: bytes) -> None: ...

    def delete_checkpoint(self, checkpoint_id: str) -> None: ...

    def get_peer_checkpoint(self, client_id: str) -> tuple[str, bytes] | None:
        """A checkpoint a peer asked us to keep: ``(revision, body)``."""
        ...

    def set_peer_checkpoint(
        self, client_id: str, body: bytes, rev: str | None, *, keep: int | None = None
    ) -> str:
        """Store a peer's checkpoint if ``rev`` is the stored revision (else ``ConflictError``);
        return the new revision (``<n>-cc``). With ``keep``, at most that many remain: those
        updated longest ago go."""
        ...

    # --- certificate pins (trust on first use) ----------------------------------------------

    def get_pin(self, key: str) -> str | None:
        """The fingerprint pinned for ``key`` (a peer ID or URL), if any."""
        ...

    def pins(self) -> dict[str, str]:
        """Every pin: key -> fingerprint."""
        ...

    def add_pin(self, key: str, fingerprint: str) -> str:
        """Pin ``fingerprint`` for ``key`` unless one is pinned already (that one stays);
        return the pin in force. ``DatabaseError`` when the bound on pins is reached."""
        ...

    def delete_pin(self, key: str) -> bool:
        """Forget the pin of ``key``; whether there was one."""
        ...

    # --- queries and indexes -----------------------------------------------------------------

    def run_query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of a translated query, read from one committed snapshot."""
        ...

    def explain_query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """SQLite's plan for a translated query (``InvalidQueryError`` if it cannot compile)."""
        ...

    def check_query(self, sql: str, params: dict[str, Any]) -> None:
        """Compile a translated query without running it (``InvalidQueryError`` if it fails)."""
        ...

    def index_rows(self, coll_id: int | None = None) -> list[IndexRow]:
        """The query indexes of one collection (or of all), by name."""
        ...

    def create_index(
        self, coll_id: int, name: str, plan: tuple[str, str, list[str], list[str], str | None]
    ) -> bool:
        """Create (or replace) a query index; False if the same one exists already."""
        ...

    def delete_index(self, coll_id: int, name: str) -> bool:
        """Drop a query index; False if there is none."""
        ...
