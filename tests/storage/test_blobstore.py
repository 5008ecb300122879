"""``BlobStore`` on a real directory: digests, streaming, dedup, atomic writes, leftovers."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import pytest

from couchlite import _tuning
from couchlite.errors import InvalidArgumentError, NotFoundError
from couchlite.storage.blobstore import BlobStore, digest_of, is_valid_digest

pytestmark = pytest.mark.timeout(60)


def sha1_digest(data: bytes) -> str:
    return "sha1-" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def leftovers(store: BlobStore) -> list[str]:
    return sorted(p.name for p in store.directory.iterdir() if p.name.startswith("tmp-"))


def blob_files(store: BlobStore) -> list[str]:
    return sorted(p.name for p in store.directory.iterdir() if p.name.endswith(".blob"))


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "Attachments")


def test_digest_format() -> None:
    for data in (b"", b"hello", bytes(range(256)) * 10):
        d = digest_of(data)
        assert d == sha1_digest(data)
        assert d.startswith("sha1-")
        assert len(d) == len("sha1-") + 28
        assert base64.b64decode(d[5:]) == hashlib.sha1(data).digest()
        assert is_valid_digest(d)
    # Couchbase Lite's well-known digest of the empty content
    assert digest_of(b"") == "sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk="


def test_store_directory_is_created(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "Attachments"
    BlobStore(directory)
    assert directory.is_dir()


def test_put_bytes_and_read_back(store: BlobStore) -> None:
    data = b"some attachment content"
    digest, length = store.put(data)
    assert (digest, length) == (sha1_digest(data), len(data))
    assert store.has(digest)
    assert store.read(digest) == data
    assert store.size(digest) == len(data)
    with store.open(digest) as fh:
        assert fh.read(4) == b"some"
        assert fh.read() == data[4:]
    assert store.path_for(digest).name == hashlib.sha1(data).hexdigest() + ".blob"
    assert list(store.digests()) == [digest]
    assert leftovers(store) == []


def test_put_accepts_bytearray_and_memoryview(store: BlobStore) -> None:
    data = b"\x00\x01\x02" * 100
    d1, _ = store.put(bytearray(data))
    d2, _ = store.put(memoryview(data))
    assert d1 == d2 == sha1_digest(data)
    assert blob_files(store) == [hashlib.sha1(data).hexdigest() + ".blob"]


def test_put_stream_larger_than_chunk_matches_put(store: BlobStore, tmp_path: Path) -> None:
    size = 1024 * 1024 + 123
    assert size > 4 * _tuning.BLOB_CHUNK_SIZE
    data = hashlib.sha256(b"seed").digest() * (size // 32) + b"tail"
    digest, length = store.put_stream(io.BytesIO(data))
    assert (digest, length) == (sha1_digest(data), len(data))
    assert store.read(digest) == data
    assert store.size(digest) == len(data)
    # the same content as bytes gives the same digest and the same single file
    assert store.put(data) == (digest, len(data))
    assert len(blob_files(store)) == 1
    # a real file stream too
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    with open(src, "rb") as fh:
        assert store.put_stream(fh) == (digest, len(data))
    assert len(blob_files(store)) == 1
    assert leftovers(store) == []


def test_put_stream_of_a_stream_returning_short_reads(store: BlobStore) -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = data

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            n = min(7, len(buffer), len(self._data))
            buffer[:n] = self._data[:n]
            self._data = self._data[n:]
            return n

    data = bytes(range(256)) * 40
    assert store.put_stream(Trickle(data)) == (sha1_digest(data), len(data))  # type: ignore[arg-type]
    assert store.read(sha1_digest(data)) == data


def test_empty_blob(store: BlobStore) -> None:
    digest, length = store.put(b"")
    assert length == 0
    assert store.read(digest) == b""
    assert store.size(digest) == 0
    assert store.put_stream(io.BytesIO(b"")) == (digest, 0)


def test_identical_content_is_stored_once(store: BlobStore) -> None:
    a = store.put(b"same")
    b = store.put(b"same")
    c = store.put(b"different")
    assert a == b != c
    assert len(blob_files(store)) == 2
    assert sorted(store.digests()) == sorted({a[0], c[0]})


def test_missing_blob_raises_not_found(store: BlobStore) -> None:
    missing = digest_of(b"never stored")
    assert not store.has(missing)
    with pytest.raises(NotFoundError):
        store.open(missing)
    with pytest.raises(NotFoundError):
        store.read(missing)
    with pytest.raises(NotFoundError):
        store.size(missing)
    store.delete(missing)  # deleting a missing blob is not an error


def test_delete(store: BlobStore) -> None:
    digest, _ = store.put(b"bye")
    store.delete(digest)
    assert not store.has(digest)
    with pytest.raises(NotFoundError):
        store.read(digest)
    assert list(store.digests()) == []


def test_writer_incremental_with_expected_digest(store: BlobStore) -> None:
    parts = [b"abc", b"", b"def" * 1000, b"g"]
    data = b"".join(parts)
    with store.writer(sha1_digest(data)) as w:
        for part in parts:
            w.write(part)
        assert store.has(sha1_digest(data)) is False  # invisible until finished
        assert len(leftovers(store)) == 1
        assert w.finish() == (sha1_digest(data), len(data))
    assert store.read(sha1_digest(data)) == data
    assert leftovers(store) == []


def test_writer_with_wrong_digest_raises_and_leaves_nothing(store: BlobStore) -> None:
    claimed = digest_of(b"what the peer promised")
    with store.writer(claimed) as w:
        w.write(b"what actually arrived")
        with pytest.raises(InvalidArgumentError, match="does not match"):
            w.finish()
    assert not store.has(claimed)
    assert not store.has(digest_of(b"what actually arrived"))
    assert list(store.directory.iterdir()) == []


def test_writer_finish_twice_and_write_after_finish(store: BlobStore) -> None:
    w = store.writer()
    w.write(b"x")
    w.finish()
    with pytest.raises(InvalidArgumentError):
        w.finish()
    with pytest.raises(InvalidArgumentError):
        w.write(b"y")
    assert store.read(digest_of(b"x")) == b"x"
    assert leftovers(store) == []


def test_aborted_writer_leaves_no_temporary_file(store: BlobStore) -> None:
    class Interrupted(Exception):
        pass

    with pytest.raises(Interrupted), store.writer() as w:
        w.write(b"half of it")
        raise Interrupted
    assert list(store.directory.iterdir()) == []


def test_failing_stream_leaves_no_temporary_file(store: BlobStore) -> None:
    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 3:
                raise OSError("device vanished")
            return b"z" * 1000

    with pytest.raises(OSError, match="device vanished"):
        store.put_stream(Broken())  # type: ignore[arg-type]
    assert list(store.directory.iterdir()) == []


def test_existing_blob_is_replaced_atomically_by_identical_content(store: BlobStore) -> None:
    digest, _ = store.put(b"content")
    with store.open(digest) as reader:
        store.put(b"content")  # rewrite while a reader holds the old file open
        assert reader.read() == b"content"
    assert store.read(digest) == b"content"
    assert leftovers(store) == []


def test_remove_temporary_files(store: BlobStore) -> None:
    digest, _ = store.put(b"keep me")
    # leftovers of writes interrupted by a crash
    (store.directory / "tmp-abc123").write_bytes(b"partial")
    (store.directory / "tmp-").write_bytes(b"")
    open_writer = store.writer()
    open_writer.write(b"in progress")
    assert len(leftovers(store)) == 3
    store.remove_temporary_files()
    assert leftovers(store) == []
    assert store.read(digest) == b"keep me"
    open_writer.abort()  # its file is already gone: no error
    assert blob_files(store) == [store.path_for(digest).name]


def test_digests_ignores_foreign_files(store: BlobStore) -> None:
    digest, _ = store.put(b"x")
    (store.directory / "notes.txt").write_text("hi")
    (store.directory / "zz.blob").write_bytes(b"bad hex name")
    (store.directory / ("ab" * 19 + ".blob")).write_bytes(b"19 bytes, too short")
    assert list(store.digests()) == [digest]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sha1-",
        "sha1",
        "md5-" + base64.b64encode(b"\x00" * 16).decode(),
        "sha1-" + base64.b64encode(b"\x00" * 19).decode(),
        "sha1-" + base64.b64encode(b"\x00" * 32).decode(),
        "sha1-!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        "SHA1-" + base64.b64encode(b"\x00" * 20).decode(),
        "sha1-" + base64.b64encode(b"\x00" * 20).decode()[:-1],
        "sha1-../../../../etc/passwd",
    ],
)
def test_invalid_digests_are_rejected(store: BlobStore, bad: str) -> None:
    assert not is_valid_digest(bad)
    for call in (store.path_for, store.has, store.open, store.read, store.size, store.delete):
        with pytest.raises(InvalidArgumentError):
            call(bad)
    with pytest.raises(InvalidArgumentError):
        store.writer(bad).finish()
    assert list(store.directory.iterdir()) == []


def test_non_string_digest_rejected(store: BlobStore) -> None:
    assert not is_valid_digest(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        store.path_for(b"sha1-abc")  # type: ignore[arg-type]


def test_io_errors_become_database_errors(tmp_path: Path) -> None:
    from couchlite.errors import DatabaseError, ErrorDomain

    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(DatabaseError, match="cannot create the blob store") as info:
        BlobStore(tmp_path / "file" / "Attachments")
    assert info.value.domain == ErrorDomain.POSIX
    assert info.value.code != 0

    store = BlobStore(tmp_path / "Attachments")
    digest = digest_of(b"dir")
    store.path_for(digest).mkdir()  # something that is not a readable blob file
    with pytest.raises(DatabaseError, match="cannot read blob"):
        store.read(digest)
    # storing that content cannot replace the directory: a clear error, no temporary file
    with pytest.raises(DatabaseError, match="cannot store a blob"):
        store.put(b"dir")
    assert leftovers(store) == []


# --- pins ---------------------------------------------------------------------------------


def test_pinned_blob_is_not_deleted_and_is_rechecked_once_unpinned(store: BlobStore) -> None:
    digest, _ = store.put(b"shared")
    store.pin([digest])
    store.pin([digest])
    assert store.is_pinned(digest) and store.pinned_count() == 1
    assert store.delete_unless_pinned(digest) is False
    assert store.has(digest)
    store.unpin([digest])
    assert store.is_pinned(digest) and not store.has_rechecks  # one pin left
    store.unpin([digest])
    assert not store.is_pinned(digest) and store.pinned_count() == 0
    assert store.take_rechecks() == {digest}  # passed over while pinned: look again
    assert store.take_rechecks() == set()
    assert store.delete_unless_pinned(digest) is True
    assert not store.has(digest)


def test_unpin_without_a_skipped_collection_needs_no_recheck(store: BlobStore) -> None:
    digest, _ = store.put(b"present")
    store.pin([digest])
    store.unpin([digest])
    assert not store.has_rechecks and store.take_rechecks() == set()


def test_unpin_with_recheck(store: BlobStore) -> None:
    fetched, _ = store.put(b"fetched")
    store.pin([fetched])
    store.pin([fetched])
    store.unpin([fetched], recheck=True)  # still pinned: remembered for the last unpin
    assert not store.has_rechecks
    store.unpin([fetched])
    assert store.take_rechecks() == {fetched}


def test_unbalanced_unpin_is_harmless(store: BlobStore) -> None:
    digest, _ = store.put(b"x")
    store.unpin([digest])
    assert not store.is_pinned(digest)
    store.pin([digest])
    assert store.is_pinned(digest)


def test_pins_are_thread_safe(store: BlobStore) -> None:
    import threading

    digest, _ = store.put(b"contended")
    barrier = threading.Barrier(4)

    def churn() -> None:
        barrier.wait(timeout=30)
        for _ in range(2000):
            store.pin([digest])
            store.unpin([digest])

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert store.pinned_count() == 0
