"""``Document`` (read-only) and ``MutableDocument``: dict-like views of a document's properties.

A ``Document`` read from a collection holds the stored canonical JSON and parses it on first use;
blob references in it read back as ``Blob`` objects. A ``MutableDocument`` holds plain Python
data (nested dicts and lists, ``Blob`` objects and aware ``datetime``/``date`` values anywhere)
that is validated and encoded only when it is saved; dates are saved as ISO-8601 strings
(``model.dates``) and read back with :meth:`Document.get_date`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson

from couchlite.database.blob import BLOB_MARKER, Blob
from couchlite.database.names import check_doc_id
from couchlite.errors import InvalidArgumentError
from couchlite.model.canonical import encode_date, find_invalid_value
from couchlite.model.dates import parse_date

if TYPE_CHECKING:
    from couchlite.database.collection import Collection
    from couchlite.storage.blobstore import BlobStore


def _with_blobs(value: Any, store: BlobStore) -> Any:
    """Replace blob reference dicts by ``Blob`` objects, in place where possible."""
    if isinstance(value, dict):
        if Blob.is_blob_dict(value):
            return Blob._from_properties(value, store)
        for key, child in value.items():
            if isinstance(child, (dict, list)):
                value[key] = _with_blobs(child, store)
        return value
    if isinstance(value, list):
        for i, child in enumerate(value):
            if isinstance(child, (dict, list)):
                value[i] = _with_blobs(child, store)
        return value
    return value


def _blob_free_copy(value: Any) -> Any:
    """JSON-compatible deep copy of user data (``Blob`` objects become their dicts)."""
    return orjson.loads(orjson.dumps(value, default=_blob_default))


def _blob_default(value: Any) -> Any:
    if isinstance(value, Blob):
        return value.properties
    raise TypeError


def _json_default(value: Any) -> Any:
    """Blobs as their property dicts, dates as the strings they are saved as."""
    if isinstance(value, Blob):
        return value.properties
    return encode_date(value)


class Document(Mapping[str, Any]):
    """A saved document, read-only. ``to_mutable()`` gives an editable copy."""

    __slots__ = (
        "_body",
        "_collection",
        "_deleted",
        "_guessed",
        "_id",
        "_props",
        "_revision_id",
        "_sequence",
    )

    def __init__(
        self,
        collection: Collection | None,
        doc_id: str,
        revision_id: str | None,
        sequence: int,
        body: bytes | None,
        deleted: bool = False,
    ) -> None:
        self._collection = collection
        self._id = doc_id
        self._revision_id = revision_id
        #: saved as a new document in a batch, its revision a guess until checked
        self._guessed = False
        self._sequence = sequence
        self._body = body
        self._deleted = deleted
        self._props: dict[str, Any] | None = None

    # --- identity -------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The document's ID, unique in its collection."""
        return self._id

    @property
    def revision_id(self) -> str | None:
        """The ID of the revision this object holds (``<generation>-<digest>``), ``None`` for a
        document never saved. Couchbase Lite's ``revisionID``."""
        if self._guessed and self._collection is not None:
            # saved in this batch as new without a look-up: check now (the ID may be taken)
            self._collection._settle(self)
        return self._revision_id

    @property
    def sequence(self) -> int:
        """The collection's sequence number of this revision (see
        :attr:`Collection.last_sequence`); 0 when there is none (a document never saved, or a
        revision shown to a replication filter or conflict resolver)."""
        return self._sequence

    @property
    def deleted(self) -> bool:
        """Whether this revision is a deletion: set on the object ``Collection.delete`` was given
        and on the tombstones replication filters see; reads never return a deleted document."""
        return self._deleted

    @property
    def collection(self) -> Collection | None:
        """The collection the document was read from or saved in; ``None`` until then."""
        return self._collection

    # --- content --------------------------------------------------------------------------

    def _properties(self) -> dict[str, Any]:
        props = self._props
        if props is None:
            props = self._parse()
            self._props = props
        return props

    def _parse(self) -> dict[str, Any]:
        if not self._body:
            return {}
        props = orjson.loads(self._body)
        if not isinstance(props, dict):
            raise InvalidArgumentError(f"document {self._id!r} body is not a JSON object")
        if BLOB_MARKER in self._body and self._collection is not None:
            _with_blobs(props, self._collection._blob_store())
        return props

    def __getitem__(self, key: str) -> Any:
        return self._properties()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._properties())

    def __len__(self) -> int:
        return len(self._properties())

    def __contains__(self, key: object) -> bool:
        return key in self._properties()

    def get_date(self, key: str) -> dt.datetime | None:
        """The top-level property ``key`` read as a date: the aware ``datetime`` its ISO-8601
        string names (as ``Document.getDate`` in Couchbase Lite: a string without an offset is
        in local time, a date alone is its local midnight); ``None`` when the property is
        missing or is not such a string. See ``couchlite.model.dates`` for the format."""
        value = self._properties().get(key)
        if isinstance(value, dt.datetime):  # set on a MutableDocument, not saved yet
            return value
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day).astimezone()
        return parse_date(value)

    def to_dict(self) -> dict[str, Any]:
        """A fresh deep copy of the properties (``Blob`` objects where blobs are)."""
        return self._parse()

    def to_json(self) -> str:
        """The stored JSON (blobs as their property dicts)."""
        if self._body is not None:
            return self._body.decode("utf-8")
        return "{}"

    def to_mutable(self) -> MutableDocument:
        """An editable deep copy: same ID, revision and collection, so that saving it adds a
        revision on top of this one. Couchbase Lite's ``toMutable``."""
        doc = MutableDocument(self._id, None)
        doc._props = self._parse()
        doc._revision_id = self.revision_id
        doc._sequence = self._sequence
        doc._collection = self._collection
        return doc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Document):
            return NotImplemented
        return self._id == other._id and dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._id!r}, rev={self._revision_id!r})"


class MutableDocument(Document, MutableMapping[str, Any]):
    """An editable document: ``MutableDocument(id=None, data=None)``; save it in a collection.

    Without an ID, a random UUID is used. ``data`` is copied at the top level; nested values are
    taken as they are and encoded when the document is saved.
    """

    __slots__ = ()

    def __init__(
        self, id: str | Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None
    ) -> None:
        # exact type checks first: isinstance against Mapping (an ABC) is slow, and this
        # constructor is on the hot path of bulk saves
        if type(id) is not str and isinstance(id, Mapping):  # MutableDocument({"a": 1})
            if data is not None:
                raise InvalidArgumentError("MutableDocument(id, data): the ID must be a string")
            id, data = None, id
        if data is not None and type(data) is not dict and not isinstance(data, Mapping):
            raise InvalidArgumentError(
                f"document data must be a mapping, not {type(data).__name__}"
            )
        # Document.__init__ inlined: this constructor is on the hot path of bulk saves
        self._id = check_doc_id(id) if id is not None else str(uuid.uuid4())
        self._collection = None
        self._revision_id = None
        self._guessed = False
        self._sequence = 0
        self._body = None
        self._deleted = False
        self._props = dict(data) if data is not None else {}

    def _properties(self) -> dict[str, Any]:
        props = self._props
        if props is None:
            props = self._props = {}
        return props

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise InvalidArgumentError(f"property names must be strings, not {key!r}")
        self._properties()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._properties()[key]

    def set_data(self, data: Mapping[str, Any]) -> None:
        """Replace all the properties by ``data`` (copied at the top level, as in the
        constructor). Couchbase Lite's ``setData``."""
        if type(data) is not dict and not isinstance(data, Mapping):
            raise InvalidArgumentError(
                f"document data must be a mapping, not {type(data).__name__}"
            )
        self._props = dict(data)

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the properties as plain data (``Blob``, ``datetime`` and ``date``
        objects kept as they are)."""
        props = self._properties()
        copied = _blob_free_copy(props)
        if any(isinstance(v, _KEPT) for v in props.values()):
            copied = _restore_blobs(props, copied)
        return copied  # type: ignore[no-any-return]

    def to_json(self) -> str:
        """The properties as JSON, blobs and dates as they will be saved (not yet in the
        canonical key order saving gives them)."""
        props = self._properties()
        try:
            return orjson.dumps(
                props, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME
            ).decode("utf-8")
        except orjson.JSONEncodeError as exc:
            find_invalid_value(props, _blob_default)
            raise InvalidArgumentError(f"value cannot be represented as JSON: {exc}") from exc

    def to_mutable(self) -> MutableDocument:
        """An independent copy (see :meth:`Document.to_mutable`): its properties are a deep
        copy, ``Blob`` and date objects shared."""
        doc = MutableDocument(self._id, None)
        doc._props = self.to_dict()
        doc._revision_id = self.revision_id
        doc._sequence = self._sequence
        doc._collection = self._collection
        return doc


#: values ``MutableDocument.to_dict`` keeps as objects, and the containers that may hold them
_KEPT = (Blob, dt.date, dict, list)


def _restore_blobs(original: Any, copied: Any) -> Any:
    """Put the original ``Blob`` (and date) objects back into a JSON copy made by
    ``_blob_free_copy``."""
    if isinstance(original, (Blob, dt.date)):
        return original
    if isinstance(original, dict):
        for key, child in original.items():
            copied[key] = _restore_blobs(child, copied[key])
    elif isinstance(original, (list, tuple)):
        for i, child in enumerate(original):
            copied[i] = _restore_blobs(child, copied[i])
    return copied
