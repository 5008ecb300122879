"""``Blob``: binary content referenced from a document, stored once per distinct content."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, BinaryIO

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
        return (
            isinstance(value, dict)
            and value.get("@type") == BLOB_TYPE
            and is_valid_digest(value.get("digest", ""))
        )

    # --- public properties -----------------------------------------------------------------

    @property
    def content_type(self) -> str:
        return self._content_type

    @property
    def digest(self) -> str | None:
        """``sha1-<base64>``; ``None`` for a stream-backed blob not saved yet."""
        return self._digest

    @property
    def length(self) -> int | None:
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
