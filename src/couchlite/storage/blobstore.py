"""Content-addressed blob store: one file per distinct content, named by its SHA-1.

Digests are Couchbase Lite's: ``"sha1-" + base64(SHA-1 of the content)`` (notes §7). Content is
streamed into a temporary file in the store's own directory while it is hashed, flushed to disk,
then renamed onto its final name, so a blob file is either absent or complete: a crash never
leaves half a blob under a real name. Identical content is stored once, whoever references it;
the database decides when nothing references a blob any more and deletes it, except while a
write in progress has it pinned (see "pins" in ``BlobStore``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from couchlite import _tuning
from couchlite._private_files import make_private_folder, private_temporary_file
from couchlite.errors import DatabaseError, ErrorDomain, InvalidArgumentError, NotFoundError
from couchlite.model.blobrefs import DIGEST_PREFIX, is_valid_digest, raw_digest

__all__ = ["DIGEST_PREFIX", "BlobStore", "BlobWriter", "digest_of", "is_valid_digest"]


def digest_of(data: bytes | bytearray | memoryview) -> str:
    return DIGEST_PREFIX + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def _raw_digest(digest: str) -> bytes:
    raw = raw_digest(digest)
    if raw is None:
        raise InvalidArgumentError(f"invalid blob digest {digest!r}")
    return raw


class BlobStore:
    SUFFIX = ".blob"

    def __init__(self, directory: Path, *, create: bool = True) -> None:
        """``create=False`` (read-only opens): a missing folder is left missing, read as
        holding no blobs -- a reader must not write to a database another process owns."""
        self.directory = directory
        if not create:
            return
        try:
            make_private_folder(directory)  # 0o700: blobs are as private as documents
        except OSError as exc:
            raise _io_error("cannot create the blob store", exc) from exc
        #: pins per digest (see "pins" below); guarded by ``_pin_lock`` with ``_skipped`` and
        #: ``_rechecks``
        self._pins: dict[str, int] = {}
        self._pin_lock = threading.Lock()
        #: pinned digests a collection passed over: to be checked again once unpinned
        self._skipped: set[str] = set()
        #: unpinned digests that the next collection must check (they may be unreferenced)
        self._rechecks: set[str] = set()

    def path_for(self, digest: str) -> Path:
        return self.directory / (_raw_digest(digest).hex() + self.SUFFIX)

    def has(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def put(self, data: bytes | bytearray | memoryview) -> tuple[str, int]:
        """Store bytes; return (digest, length)."""
        return self._store(iter((bytes(data),)))

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store everything read from a binary stream; return (digest, length)."""

        def chunks() -> Iterator[bytes]:
            while chunk := stream.read(_tuning.BLOB_CHUNK_SIZE):
                yield chunk

        return self._store(chunks())

    def writer(self, expected_digest: str | None = None) -> BlobWriter:
        """An incremental writer (for content arriving in pieces, e.g. from a peer)."""
        return BlobWriter(self, expected_digest)

    def _store(self, chunks: Iterator[bytes]) -> tuple[str, int]:
        with self.writer() as writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.finish()

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path_for(digest), "rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"no blob {digest}") from exc
        except OSError as exc:
            raise _io_error(f"cannot read blob {digest}", exc) from exc

    def read(self, digest: str) -> bytes:
        with self.open(digest) as fh:
            return fh.read()

    def size(self, digest: str) -> int:
        try:
            return self.path_for(digest).stat().st_size
        except FileNotFoundError as exc:
            raise NotFoundError(f"no blob {digest}") from exc

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(digest).unlink()

    # --- pins: blobs that a write in progress relies on ---------------------------------------
    #
    # A blob can be in the store but referenced by nothing committed yet: fetched from a peer
    # for a revision still waiting in an insert batch, or found present (for another document)
    # when the receiver decided not to fetch it. Whoever relies on it pins it first, checks or
    # stores it, and unpins it once the write that references it committed or failed. Garbage
    # collection deletes only through ``delete_unless_pinned``; pinning and that check-and-
    # delete exclude each other, so "pin, then ``has``" never sees a file about to vanish. A
    # pinned digest a collection passed over, or one unpinned with ``recheck``, is handed to the
    # next collection (``take_rechecks``): nothing unreferenced outlives its last pin for long.

    def pin(self, digests: Iterable[str]) -> None:
        with self._pin_lock:
            pins = self._pins
            for digest in digests:
                pins[digest] = pins.get(digest, 0) + 1

    def unpin(self, digests: Iterable[str], *, recheck: bool = False) -> None:
        with self._pin_lock:
            pins = self._pins
            for digest in digests:
                count = pins.get(digest, 0) - 1
                if count > 0:
                    pins[digest] = count
                    if recheck:
                        self._skipped.add(digest)
                    continue
                pins.pop(digest, None)
                if recheck or digest in self._skipped:
                    self._skipped.discard(digest)
                    self._rechecks.add(digest)

    def is_pinned(self, digest: str) -> bool:
        with self._pin_lock:
            return digest in self._pins

    def pinned_count(self) -> int:
        """How many distinct digests are pinned."""
        with self._pin_lock:
            return len(self._pins)

    def delete_unless_pinned(self, digest: str) -> bool:
        """Delete an unreferenced blob unless it is pinned (then it is checked again once it
        is unpinned); ``True`` if it was deleted."""
        with self._pin_lock:
            if digest in self._pins:
                self._skipped.add(digest)
                return False
            self.delete(digest)
            return True

    @property
    def has_rechecks(self) -> bool:
        return bool(self._rechecks)  # read without the lock: a miss waits for the next check

    def take_rechecks(self) -> set[str]:
        """Unpinned digests the caller must check (and delete if nothing references them)."""
        with self._pin_lock:
            found, self._rechecks = self._rechecks, set()
            return found

    def digests(self) -> Iterator[str]:
        for path in self.directory.glob("*" + self.SUFFIX):
            try:
                raw = bytes.fromhex(path.name[: -len(self.SUFFIX)])
            except ValueError:
                continue
            if len(raw) == 20:
                yield DIGEST_PREFIX + base64.b64encode(raw).decode("ascii")

    def remove_temporary_files(self) -> None:
        """Remove leftovers of writes interrupted by a crash."""
        for path in self.directory.glob("tmp-*"):
            with contextlib.suppress(OSError):
                path.unlink()


class BlobWriter:
    """Writes one blob incrementally; ``finish()`` makes it visible atomically."""

    def __init__(self, store: BlobStore, expected_digest: str | None) -> None:
        self._store = store
        self._expected = expected_digest
        self._hash = hashlib.sha1()
        self._length = 0
        try:
            # 0o600, kept by the rename that publishes the blob
            fd, name = private_temporary_file(store.directory, prefix="tmp-")
        except OSError as exc:
            raise _io_error("cannot create a blob", exc) from exc
        self._tmp = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._length

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._file is None:
            raise InvalidArgumentError("blob writer already finished")
        self._hash.update(data)
        self._length += len(data)
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise _io_error("cannot write a blob", exc) from exc

    def finish(self) -> tuple[str, int]:
        if self._file is None:
            raise InvalidArgumentError("blob writer already finished")
        digest = DIGEST_PREFIX + base64.b64encode(self._hash.digest()).decode("ascii")
        if self._expected is not None and digest != self._expected:
            self.abort()
            raise InvalidArgumentError(
                f"blob content does not match its digest {self._expected} (got {digest})"
            )
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.replace(self._tmp, self._store.path_for(digest))
        except OSError as exc:
            self.abort()
            raise _io_error("cannot store a blob", exc) from exc
        return digest, self._length

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            self._tmp.unlink()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def _io_error(what: str, exc: OSError) -> DatabaseError:
    return DatabaseError(
        f"{what}: {exc.strerror or exc}", domain=ErrorDomain.POSIX, code=exc.errno or 5
    )
