"""``Blob``: binary content referenced from a document, stored once per distinct content."""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

from couchlite import _tuning
from couchlite.errors import InvalidArgumentError, NotFoundError
from couchlite.storage.blobstore import BlobStore, digest_of, is_valid_digest

BLOB_TYPE = "blob"
#: how a blob reference reads in canonical JSON; a cheap test for "this body has blobs"
BLOB_MARKER = b'"@type":"blob"'


class Blob:
    """Content plus a MIME type; put it anywhere in a document and save the document.

    ``Blob("image/png", data)`` takes bytes or a binary stream (read, hashed and written to the
    blob store when the document is saved, without loading it whole). Blobs read back from a
    saved document stream their content from the store on demand.
    """

    __slots__ = ("_content", "_content_type", "_digest", "_length", "_store", "_stream")

    def __init__(self, content_type: str, content: bytes | bytearray | memoryview | BinaryIO):
        if not isinstance(content_type, str):
            raise InvalidArgumentError("content_type must be a string")
        self._content_type = content_type
        self._store: BlobStore | None = None
        self._stream: BinaryIO | None = None
        self._content: bytes | None = None
        self._digest: str | None = None
        self._length: int | None = None
        if isinstance(content, (bytes, bytearray, memoryview)):
            self._content = bytes(content)
            self._digest = digest_of(self._content)
            self._length = len(self._content)
        elif hasattr(content, "read"):
            self._stream = content
        else:
            raise InvalidArgumentError(
                f"blob content must be bytes or a binary stream, not {type(content).__name__}"
            )

    @classmethod
    def _from_properties(cls, props: Mapping[str, Any], store: BlobStore) -> Blob:
        blob = cls.__new__(cls)
        blob._content_type = str(props.get("content_type", "application/octet-stream"))
        blob._store = store
        blob._stream = None
        blob._content = None
        blob._digest = str(props["digest"])
        length = props.get("length")
        blob._length = int(length) if isinstance(length, int) else None
        return blob

    @staticmethod
    def is_blob_dict(value: object) -> bool:
        """Whether ``value`` is a blob's JSON form: a dict with ``"@type": "blob"`` and a valid
        ``digest`` (Couchbase Lite's ``Blob.isBlob``)."""
        return (
            isinstance(value, dict)
            and value.get("@type") == BLOB_TYPE
            and is_valid_digest(value.get("digest", ""))
        )

    # --- public properties -----------------------------------------------------------------

    @property
    def content_type(self) -> str:
        """The MIME type given to the constructor (``application/octet-stream`` for a blob read
        back without one)."""
        return self._content_type

    @property
    def digest(self) -> str | None:
        """``sha1-<base64>``; ``None`` for a stream-backed blob not saved yet."""
        return self._digest

    @property
    def length(self) -> int | None:
        """The content's size in bytes; ``None`` for a stream-backed blob not saved yet."""
        if self._length is None and self._store is not None and self._digest is not None:
            self._length = self._store.size(self._digest)
        return self._length

    @property
    def properties(self) -> dict[str, Any]:
        """The JSON form stored in the document."""
        if self._digest is None:
            raise InvalidArgumentError("a stream-backed blob has no digest until it is saved")
        return {
            "@type": BLOB_TYPE,
            "content_type": self._content_type,
            "digest": self._digest,
            "length": self.length,
        }

    @property
    def content(self) -> bytes:
        """The whole content, read into memory (:meth:`open` streams it instead).

        Raises ``NotFoundError`` for a stream-backed blob not saved yet, or if the blob store
        no longer holds the content."""
        if self._content is not None:
            return self._content
        with self.open() as stream:
            return stream.read()

    def open(self) -> BinaryIO:
        """A binary stream over the content."""
        if self._content is not None:
            return io.BytesIO(self._content)
        if self._store is not None and self._digest is not None:
            return self._store.open(self._digest)
        raise NotFoundError("this blob's content is a stream that has not been saved yet")

    # --- saving ------------------------------------------------------------------------------

    def _install(self, store: BlobStore) -> dict[str, Any]:
        """Make sure ``store`` holds the content; return the JSON form."""
        if self._store is store and self._digest is not None:
            if not store.has(self._digest):  # its last document went (and the blob with it)
                raise NotFoundError(f"the content of blob {self._digest} is no longer stored")
            return self.properties
        if self._content is not None:
            if self._digest is None or not store.has(self._digest):
                self._digest, self._length = store.put(self._content)
        elif self._stream is not None:
            self._digest, self._length = store.put_stream(self._stream)
            self._stream = None
        elif self._store is not None and self._digest is not None:
            if not store.has(self._digest):  # a blob from another database
                with self._store.open(self._digest) as stream:
                    self._digest, self._length = store.put_stream(stream)
        else:
            raise InvalidArgumentError("this blob has no content")
        self._store = store
        return self.properties

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Blob):
            return NotImplemented
        if self._digest is not None and other._digest is not None:
            return self._digest == other._digest
        return self is other

    def __hash__(self) -> int:
        return hash(self._digest) if self._digest is not None else id(self)

    def __repr__(self) -> str:
        return f"Blob({self._content_type!r}, digest={self._digest!r}, length={self._length!r})"


#: ``(collection id, document ID, digests)``: the insert a lease waits for
LeaseKey = tuple[int, str, tuple[str, ...]]


class BlobLease:
    """Pins on the blobs one received revision relies on, from the moment the receiver decides
    they are present (or fetches them) until the insert that references them ends.

    Taken by the replicator (``ReplicationDatabase.lease_blobs``), claimed by the insert of the
    same document with a body naming the same digests, and released by the engine once that
    insert's transaction committed or rolled back (``Engine._finish_blobs``). Blobs fetched
    under the lease (``fetched``) are checked by the garbage collection that follows, so a blob
    whose insert failed does not stay behind.
    """

    __slots__ = ("_fetched", "_leases", "_released", "digests", "key", "serial")

    def __init__(self, leases: BlobLeases, key: LeaseKey, serial: int) -> None:
        self._leases = leases
        self.key = key
        self.serial = serial
        self.digests = key[2]
        self._fetched: set[str] = set()
        self._released = False

    def fetched(self, digest: str) -> None:
        """``digest`` was stored for this lease: check it once unpinned."""
        self._fetched.add(digest)

    def release(self) -> None:
        """Unpin (once); also forgets the lease if no insert claimed it."""
        if self._released:
            return
        self._released = True
        self._leases._forget(self)
        store = self._leases.store
        fetched = self._fetched
        store.unpin([d for d in self.digests if d not in fetched])
        if fetched:
            store.unpin(fetched, recheck=True)


class BlobLeases:
    """The leases of one database waiting for their insert (thread-safe).

    At most ``_tuning.MAX_BLOB_LEASES`` wait at once: beyond that the oldest is released. That
    only bounds memory should a receiver never insert what it fetched for; it cannot lose a
    blob, since an insert checks, under the lock garbage collection needs, that every blob its
    body references is present (``ReplicationCollection._insert_one``).
    """

    def __init__(self, store: BlobStore, limit: int = _tuning.MAX_BLOB_LEASES) -> None:
        self.store = store
        self._limit = limit
        self._lock = threading.Lock()
        self._serials = itertools.count()
        #: waiting leases, oldest first (dicts keep insertion order)
        self._waiting: dict[int, BlobLease] = {}
        self._by_key: dict[LeaseKey, list[BlobLease]] = {}

    def take(self, coll_id: int, doc_id: str, digests: Sequence[str]) -> BlobLease:
        """Pin ``digests`` now; the lease waits for the insert of ``doc_id`` naming them."""
        key = (coll_id, doc_id, tuple(digests))
        self.store.pin(key[2])
        evicted: list[BlobLease] = []
        with self._lock:
            lease = BlobLease(self, key, next(self._serials))
            self._waiting[lease.serial] = lease
            self._by_key.setdefault(key, []).append(lease)
            while len(self._waiting) > self._limit:
                evicted.append(self._waiting[next(iter(self._waiting))])
                self._remove(evicted[-1])
        for old in evicted:
            old.release()
        return lease

    def claim(self, coll_id: int, doc_id: str, digests: Sequence[str]) -> BlobLease | None:
        """The oldest lease waiting for this insert (the caller releases it), or ``None``."""
        key = (coll_id, doc_id, tuple(digests))
        with self._lock:
            found = self._by_key.get(key)
            if not found:
                return None
            lease = found[0]
            self._remove(lease)
            return lease

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)

    def _forget(self, lease: BlobLease) -> None:
        with self._lock:
            if lease.serial in self._waiting:
                self._remove(lease)

    def _remove(self, lease: BlobLease) -> None:
        del self._waiting[lease.serial]
        same = self._by_key[lease.key]
        same.remove(lease)
        if not same:
            del self._by_key[lease.key]
