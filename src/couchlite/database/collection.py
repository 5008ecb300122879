"""``Collection`` and ``Scope``: where documents live, with their listeners."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from typing import TYPE_CHECKING, TypeVar, overload

from couchlite.database._transaction import CollectionState, Transaction
from couchlite.database.blob import Blob
from couchlite.database.changes import CollectionChange, DocumentChange, ListenerToken
from couchlite.database.document import Document, MutableDocument
from couchlite.database.names import DEFAULT_NAME, check_doc_id
from couchlite.database.records import (
    TOMBSTONE_BODY,
    ChangeRow,
    build_revision,
    change_rows,
    first_revision,
)
from couchlite.errors import (
    ConflictError,
    DatabaseClosedError,
    InvalidArgumentError,
    NotFoundError,
)
from couchlite.model.canonical import canonical_json, encode_date
from couchlite.model.legacy import check_local_properties
from couchlite.query.indexes import IndexConfiguration, config_from_spec, plan_index
from couchlite.storage.blobstore import BlobStore
from couchlite.storage.records import DOC_DELETED, DocRecord

if TYPE_CHECKING:
    from couchlite.database.database import Database
    from couchlite.database.engine import Engine

_T = TypeVar("_T")


class ConcurrencyControl(Enum):
    """What ``save``/``delete`` do when the document changed since it was read."""

    LAST_WRITE_WINS = 0
    FAIL_ON_CONFLICT = 1


ConflictHandler = Callable[[MutableDocument, Document | None], bool]


class Scope:
    """A namespace of collections; exists while it holds at least one collection."""

    __slots__ = ("_database", "_name")

    def __init__(self, database: Database, name: str) -> None:
        self._database = database
        self._name = name

    @property
    def name(self) -> str:
        """The scope's name (``_default`` for the default scope)."""
        return self._name

    @property
    def database(self) -> Database:
        """The database the scope belongs to."""
        return self._database

    def collections(self) -> list[Collection]:
        """The scope's collections, sorted by name (see :meth:`Database.collections`)."""
        return self._database.collections(scope=self._name)

    def collection(self, name: str) -> Collection | None:
        """The collection ``name`` of this scope, or ``None`` if there is none (see
        :meth:`Database.collection`)."""
        return self._database.collection(name, scope=self._name)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Scope)
            and other._database is self._database
            and other._name == self._name
        )

    def __hash__(self) -> int:
        return hash((id(self._database), self._name))

    def __repr__(self) -> str:
        return f"Scope({self._name!r})"


class Collection(Mapping[str, Document]):
    """A named set of documents in a database; a read-only mapping of document ID to
    ``Document``.

    ``len(c)`` is :attr:`count`; ``"id" in c`` tells whether a live document has that ID;
    ``iter(c)`` (and ``keys()``, ``values()``, ``items()``) goes through the IDs of the live
    documents in sequence order (oldest change first), read in batches: a large collection is
    never loaded whole. ``c["id"]`` is the document or ``KeyError`` (also for a deleted one);
    :meth:`get` returns ``None`` instead. As everywhere, this thread's open batch counts.

    A collection is equal only to itself (the database hands out one object per collection),
    hashable, and always true -- ``if collection:`` keeps meaning "not ``None``"; test
    ``len(collection)`` for emptiness.
    """

    __slots__ = ("_database", "_state")

    def __init__(self, database: Database, state: CollectionState) -> None:
        self._database = database
        self._state = state

    # --- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The collection's name, without its scope (``_default`` for the default one)."""
        return self._state.name

    @property
    def scope(self) -> Scope:
        """The scope the collection belongs to."""
        return Scope(self._database, self._state.scope)

    @property
    def full_name(self) -> str:
        """``scope.name``, as Couchbase Lite's ``fullName`` (e.g. ``_default._default``)."""
        return f"{self._state.scope}.{self._state.name}"

    @property
    def database(self) -> Database:
        """The database the collection belongs to."""
        return self._database

    @property
    def is_default(self) -> bool:
        """Whether this is the default collection, ``_default._default``."""
        return self._state.scope == DEFAULT_NAME and self._state.name == DEFAULT_NAME

    def __repr__(self) -> str:
        return f"Collection({self.full_name!r})"

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        return True

    def _engine(self) -> Engine:
        engine = self._database._engine
        if engine is not None and not engine._is_closed and not self._state.dropped:
            return engine
        engine = self._database._engine_or_raise()
        if self._state.dropped:
            raise DatabaseClosedError(f"collection {self.full_name} has been deleted")
        return engine

    def _blob_store(self) -> BlobStore:
        return self._database._engine_or_raise().blobs

    @property
    def count(self) -> int:
        """Live (not deleted) documents."""
        return self._engine().live_count(self._state)

    # --- reads ----------------------------------------------------------------------------

    @overload
    def get(self, doc_id: str) -> Document | None: ...
    @overload
    def get(self, doc_id: str, default: Document | _T) -> Document | _T: ...

    def get(self, doc_id: str, default: object = None) -> object:
        """The document, or ``default`` (``None``) if it does not exist or is deleted; a
        ``doc_id`` that is not a string is an ``InvalidArgumentError``."""
        if not isinstance(doc_id, str):
            raise InvalidArgumentError(f"document ID must be a string, not {doc_id!r}")
        row = self._engine().read_current(self._state, doc_id)
        if row is None or row[2] & DOC_DELETED:
            return default
        rev, seq, _, body = row
        return Document(self, doc_id, rev, seq, body)

    def __getitem__(self, doc_id: str) -> Document:
        """The live document ``doc_id``; ``KeyError`` if there is none (or it is deleted)."""
        doc = self.get(doc_id) if isinstance(doc_id, str) else None
        if doc is None:
            raise KeyError(doc_id)
        return doc

    def __contains__(self, doc_id: object) -> bool:
        if not isinstance(doc_id, str):
            return False
        row = self._engine().read_current(self._state, doc_id)
        return row is not None and not row[2] & DOC_DELETED

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        """The IDs of the live documents in sequence order (see the class docstring)."""
        engine = self._engine()
        state = self._state
        txn = engine.txn
        if txn is None or txn.owner != threading.get_ident():
            return engine.store.live_doc_ids(state.id)
        # This thread's batch: what it changed moves to its new sequence, after everything
        # committed (its sequences are the newest); taken now, as the batch stands.
        engine.verify(txn)
        changed = {
            doc_id: record
            for (coll_id, doc_id), record in txn.records.items()
            if coll_id == state.id
        }
        return _with_batch(engine.store.live_doc_ids(state.id), changed)

    def document_ids(self) -> Iterator[str]:
        """The IDs of the live documents, in ID order (committed state)."""
        engine = self._engine()
        return engine.store.doc_ids(self._state.id)

    def changes(self, since: int = 0, limit: int | None = None) -> Iterator[ChangeRow]:
        """A :class:`ChangeRow` for every document changed after sequence ``since``
        (tombstones included), in sequence order, at most ``limit`` of them (committed state,
        read in batches)."""
        return change_rows(self._engine().store.change_batches(self._state.id, since, limit))

    @property
    def last_sequence(self) -> int:
        """The highest sequence number given to a revision of this collection (0 if none).

        Each new revision -- saved, deleted or pulled -- takes the next number; the revisions
        of a batch still open count already, and a rolled-back batch may leave a gap. Raises
        ``DatabaseClosedError`` once the database is closed or the collection deleted."""
        engine = self._engine()
        if engine.read_only:
            engine.refresh()
        return self._state.last_seq

    # --- writes ---------------------------------------------------------------------------

    def _own(self, doc: Document) -> None:
        owner = doc.collection
        if owner is not None and owner is not self:
            if owner.database is not self._database:
                raise InvalidArgumentError(
                    f"document {doc.id!r} belongs to another database ({owner.database.name})"
                )
            if owner._state.id != self._state.id:
                raise InvalidArgumentError(
                    f"document {doc.id!r} belongs to another collection ({owner.full_name})"
                )

    def save(
        self,
        doc: MutableDocument,
        concurrency_control: ConcurrencyControl = ConcurrencyControl.LAST_WRITE_WINS,
        conflict_handler: ConflictHandler | None = None,
    ) -> None:
        """Save a new revision of ``doc``; updates ``doc.revision_id`` and ``doc.sequence``.

        If the stored document changed since ``doc`` was read: with a ``conflict_handler``,
        ``handler(doc, current)`` decides (it may edit ``doc``; returning ``False`` aborts with
        ``ConflictError``); otherwise ``LAST_WRITE_WINS`` saves anyway and ``FAIL_ON_CONFLICT``
        raises ``ConflictError``.
        """
        # exact type checks first: isinstance against these ABC-derived classes is slow, and
        # this is the hot path of every bulk save
        if type(doc) is not MutableDocument and not isinstance(doc, MutableDocument):
            raise InvalidArgumentError("only a MutableDocument can be saved (use to_mutable())")
        if concurrency_control is not ConcurrencyControl.LAST_WRITE_WINS and not isinstance(
            concurrency_control, ConcurrencyControl
        ):
            raise InvalidArgumentError(f"invalid concurrency control {concurrency_control!r}")
        if doc._collection is not None and doc._collection is not self:
            self._own(doc)
        engine = self._engine()
        txn = engine.txn
        if (
            txn is not None
            and doc._revision_id is None
            and conflict_handler is None
            and concurrency_control is ConcurrencyControl.LAST_WRITE_WINS
            and txn.owner == threading.get_ident()
        ):
            state = self._state
            key = (state.id, doc._id)
            if key not in txn.records and key not in txn.origin:
                # A new document inside a batch: written on the guess that its ID is free,
                # checked by the commit itself (see Engine.put_new_record_unverified).
                # Nothing below can fail half-way, so no savepoint.
                body = self._encode(doc, engine, txn)
                record = first_revision(state.next_sequence(), doc._id, body)
                engine.put_new_record_unverified(txn, self, key, record, doc)
                return
        with engine.transaction() as txn:
            current = engine.read_record(self._state, doc.id)
            if _conflicts(doc.revision_id, current):
                if conflict_handler is not None:
                    current_doc = None
                    if current is not None and not current.flags & DOC_DELETED:
                        current_doc = Document(self, doc.id, current.rev, current.seq, current.body)
                    if not conflict_handler(doc, current_doc):
                        raise ConflictError(f"the conflict handler rejected saving {doc.id!r}")
                elif concurrency_control is ConcurrencyControl.FAIL_ON_CONFLICT:
                    raise ConflictError(
                        f"document {doc.id!r} was changed: revision {doc.revision_id} is not "
                        f"the current one ({current.rev if current else 'purged'})"
                    )
            body = self._encode(doc, engine, txn)
            record = self._new_revision(current, doc.id, body, deleted=False)
            engine.put_record(txn, self._state, record)
        engine.stamp_document(doc, record.rev, record.seq, self)

    def delete(
        self,
        doc: Document,
        concurrency_control: ConcurrencyControl = ConcurrencyControl.LAST_WRITE_WINS,
    ) -> None:
        """Delete a document: a tombstone revision replaces it (and replicates)."""
        if not isinstance(doc, Document):
            raise InvalidArgumentError("delete() takes a Document")
        if not isinstance(concurrency_control, ConcurrencyControl):
            raise InvalidArgumentError(f"invalid concurrency control {concurrency_control!r}")
        self._own(doc)
        engine = self._engine()
        with engine.transaction() as txn:
            current = engine.read_record(self._state, doc.id)
            if current is None or current.flags & DOC_DELETED or doc.revision_id is None:
                raise NotFoundError(f"document {doc.id!r} not found")
            if (
                current.rev != doc.revision_id
                and concurrency_control is ConcurrencyControl.FAIL_ON_CONFLICT
            ):
                raise ConflictError(f"document {doc.id!r} was changed since it was read")
            record = self._new_revision(current, doc.id, TOMBSTONE_BODY, deleted=True)
            engine.put_record(txn, self._state, record)
        engine.stamp_document(doc, record.rev, record.seq, doc._collection, deleted=True)

    def purge(self, doc: Document | str) -> None:
        """Remove a document and its history entirely (nothing replicates)."""
        doc_id = doc.id if isinstance(doc, Document) else doc
        if not isinstance(doc_id, str):
            raise InvalidArgumentError(f"purge() takes a Document or an ID, not {doc!r}")
        engine = self._engine()
        with engine.transaction() as txn:
            if engine.read_record(self._state, doc_id) is None:
                raise NotFoundError(f"document {doc_id!r} not found")
            engine.purge_record(txn, self._state, doc_id)

    def set_document_expiration(self, doc_id: str, when: dt.datetime | None) -> None:
        """Purge the document automatically at ``when`` (``None`` cancels)."""
        if when is not None and not isinstance(when, dt.datetime):
            raise InvalidArgumentError("the expiration must be a datetime or None")
        if when is not None and when.utcoffset() is None:
            # as for document dates: a naive time means a different instant on every machine
            raise InvalidArgumentError(
                "the expiration must be an aware datetime (with a time zone, e.g. dt.UTC), "
                "not a naive one"
            )
        timestamp = when.timestamp() if when is not None else None
        engine = self._engine()
        with engine.transaction() as txn:
            if engine.read_record(self._state, doc_id) is None:
                raise NotFoundError(f"document {doc_id!r} not found")
            engine.set_expiration(txn, self._state, doc_id, timestamp)

    def get_document_expiration(self, doc_id: str) -> dt.datetime | None:
        """When document ``doc_id`` will be purged (an aware UTC ``datetime``), or ``None`` if
        no expiration is set (see :meth:`set_document_expiration`).

        A deleted document still has one; raises ``NotFoundError`` if there is no such
        document (never saved, or purged)."""
        record = self._engine().read_record(self._state, doc_id)
        if record is None:
            raise NotFoundError(f"document {doc_id!r} not found")
        if record.expiration is None:
            return None
        return dt.datetime.fromtimestamp(record.expiration, tz=dt.UTC)

    # --- listeners ------------------------------------------------------------------------

    def add_change_listener(self, fn: Callable[[CollectionChange], None]) -> ListenerToken:
        """Call ``fn(CollectionChange)`` after each commit that changes this collection."""
        engine = self._engine()
        return engine.add_listener(self._state, self, fn, None)

    def add_document_change_listener(
        self, doc_id: str, fn: Callable[[DocumentChange], None]
    ) -> ListenerToken:
        """Call ``fn(DocumentChange)`` after each commit that changes document ``doc_id``."""
        check_doc_id(doc_id)
        engine = self._engine()
        return engine.add_listener(self._state, self, fn, doc_id)

    # --- query indexes --------------------------------------------------------------------

    def create_index(self, name: str, config: IndexConfiguration) -> None:
        """Create index ``name`` (a ``ValueIndexConfiguration`` or
        ``FullTextIndexConfiguration``) over the documents already here, kept up to date by
        every later write; replaces an index of that name made with another configuration, and
        does nothing if the same one exists. ``InvalidQueryError`` for a bad expression."""
        engine = self._engine()
        engine.check_writable(f"creating index {name!r}")
        plan = plan_index(self._state.id, f"kv_{self._state.id}", name, config)
        engine.store.create_index(
            self._state.id, name, (plan.kind, plan.spec, plan.create, plan.drop, plan.side_table)
        )

    def delete_index(self, name: str) -> None:
        """Drop index ``name``; nothing happens if there is none (as in Couchbase Lite)."""
        engine = self._engine()
        engine.check_writable(f"deleting index {name!r}")
        engine.store.delete_index(self._state.id, name)

    @property
    def indexes(self) -> list[str]:
        """The names of this collection's indexes, sorted."""
        return [row.name for row in self._engine().store.index_rows(self._state.id)]

    def get_index(self, name: str) -> IndexConfiguration | None:
        """The configuration of index ``name``, or None."""
        for row in self._engine().store.index_rows(self._state.id):
            if row.name == name:
                return config_from_spec(row.kind, row.spec)
        return None

    # --- internals ------------------------------------------------------------------------

    def _encode(self, doc: MutableDocument, engine: Engine, txn: Transaction) -> bytes:
        encode_extra = txn.encode_extra
        if encode_extra is None:
            store = engine.blobs
            written = txn.written_digests

            def encode_extra(value: object) -> object:
                if isinstance(value, Blob):
                    props = value._install(store)
                    written.add(props["digest"])
                    return props
                return encode_date(value)

            txn.encode_extra = encode_extra
        props = doc._properties()
        if "_id" in props or "_rev" in props or "_deleted" in props:
            check_local_properties(props, doc._id)
        return canonical_json(props, encode_extra)

    def _settle(self, doc: Document) -> None:
        """Make the revision of a document saved as new in this thread's batch exact."""
        engine = self._database._engine
        if engine is not None:
            engine.settle(self._state, doc)

    def _new_revision(
        self, current: DocRecord | None, doc_id: str, body: bytes, *, deleted: bool
    ) -> DocRecord:
        return build_revision(
            current,
            doc_id,
            body,
            deleted=deleted,
            sequence=self._state.next_sequence(),
            max_depth=self._database._config.max_rev_tree_depth,
        )


def _with_batch(committed: Iterator[str], changed: dict[str, DocRecord | None]) -> Iterator[str]:
    """The committed live IDs, less those a batch changed, then the batch's live ones."""
    for doc_id in committed:
        if doc_id not in changed:
            yield doc_id
    live = [r for r in changed.values() if r is not None and not r.flags & DOC_DELETED]
    live.sort(key=lambda r: r.seq)
    for record in live:
        yield record.doc_id


def _conflicts(base_rev: str | None, current: DocRecord | None) -> bool:
    if current is None:
        return base_rev is not None
    if current.rev == base_rev:
        return False
    return not (base_rev is None and current.flags & DOC_DELETED)
