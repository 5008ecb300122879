"""``SQLiteStore`` on real SQLite files: schema, writer thread, readers, feeds, checkpoints."""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from couchlite import _tuning
from couchlite.errors import ConflictError, DatabaseClosedError, DatabaseError
from couchlite.storage._commit import insert_rows
from couchlite.storage._schema import SCHEMA_VERSION, table
from couchlite.storage.document_store import DocumentStore
from couchlite.storage.records import DOC_DELETED, ChangeRecord
from couchlite.storage.sqlite_store import SQLiteStore

INSERT_CHUNK_ROWS = _tuning.INSERT_CHUNK_ROWS

pytestmark = pytest.mark.timeout(60)

WAIT_S = 10.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "db.sqlite3")
    yield s
    s.close()


def changes(store: DocumentStore, coll_id: int, **kw: int) -> list[ChangeRecord]:
    """The store's changes feed as one list (its batches joined)."""
    return [row for batch in store.change_batches(coll_id, **kw) for row in batch]


def insert_docs(
    store: SQLiteStore, coll_id: int, rows: list[tuple[int, str, int]], body: bytes = b"{}"
) -> None:
    """Insert raw records ``(seq, doc_id, flags)`` the way the engine's commit does."""

    def fn(conn: sqlite3.Connection) -> None:
        conn.executemany(
            f"INSERT OR REPLACE INTO {table(coll_id)} (seq, doc_id, rev, flags, body) "
            "VALUES (?, ?, ?, ?, ?)",
            [(seq, doc_id, f"1-{seq:040x}", flags, body) for seq, doc_id, flags in rows],
        )
        conn.execute(
            "UPDATE collections SET last_seq = max(last_seq, ?) WHERE id = ?",
            (max(r[0] for r in rows), coll_id),
        )

    store._write(fn)


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Query the file through a separate, plain sqlite3 connection."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# --- schema -------------------------------------------------------------------------------


def test_new_file_gets_the_schema_and_records_the_migrations(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    SQLiteStore(path).close()
    assert raw(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert SCHEMA_VERSION == 5
    migrations = raw(path, "SELECT version, applied_at FROM migrations")
    assert [m[0] for m in migrations] == [1, 2, 3, 4, 5]
    assert isinstance(migrations[0][1], float) and migrations[0][1] > 0
    tables = {r[0] for r in raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "info",
        "collections",
        "migrations",
        "checkpoints",
        "peer_checkpoints",
        "blob_refs",
    } <= tables
    assert dict(raw(path, "SELECT key, value FROM info"))["format"] == "couchlite"


def test_uuids_are_32_hex_stable_across_reopen_and_distinct_per_database(tmp_path: Path) -> None:
    a = SQLiteStore(tmp_path / "a.sqlite3")
    pub, priv = a.public_uuid, a.private_uuid
    a.close()
    for uuid in (pub, priv):
        assert len(uuid) == 32
        int(uuid, 16)
        assert uuid == uuid.lower()
    assert pub != priv

    again = SQLiteStore(tmp_path / "a.sqlite3")
    try:
        assert (again.public_uuid, again.private_uuid) == (pub, priv)
        # reopening does not run the migration again
        assert raw(tmp_path / "a.sqlite3", "SELECT count(*) FROM migrations") == [(SCHEMA_VERSION,)]
    finally:
        again.close()

    b = SQLiteStore(tmp_path / "b.sqlite3")
    try:
        assert b.public_uuid not in (pub, priv)
        assert b.private_uuid not in (pub, priv)
    finally:
        b.close()


def test_wal_mode(store: SQLiteStore) -> None:
    assert raw(store.path, "PRAGMA journal_mode") == [("wal",)]
    assert store._read(lambda c: c.execute("PRAGMA journal_mode").fetchone()) == ("wal",)


def test_open_without_create_on_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no database"):
        SQLiteStore(tmp_path / "missing.sqlite3", create=False)
    assert not (tmp_path / "missing.sqlite3").exists()


def test_empty_file_is_initialised(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"")
    s = SQLiteStore(path)
    try:
        assert len(s.public_uuid) == 32
        assert s.collections() == []
    finally:
        s.close()


# --- the writer thread --------------------------------------------------------------------


def _wait_until(predicate: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_the_log_is_checkpointed_in_the_background_after_large_writes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    try:
        coll = store.create_collection("_default", "_default").id
        marker = b"checkpointed-by-the-background-thread"
        rows = [(seq, f"d{seq}", 0) for seq in range(1, _tuning.WAL_CHECKPOINT_ROWS + 2)]
        insert_docs(store, coll, rows, body=marker + b"x" * 200)
        # SQLite's own checkpoint would wait for WAL_AUTOCHECKPOINT_PAGES of log: nobody but
        # the background thread copies these pages into the database file this early
        assert _wait_until(lambda: marker in (tmp_path / "db.sqlite3").read_bytes())
        assert store.get_record(coll, "d1") is not None
    finally:
        store.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("couchlite-checkpoint")]


def test_a_trickle_of_small_writes_is_checkpointed_after_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_tuning, "WAL_CHECKPOINT_IDLE_S", 0.1)
    store = SQLiteStore(tmp_path / "db.sqlite3")
    try:
        coll = store.create_collection("_default", "_default").id
        marker = b"a-single-small-write"
        insert_docs(store, coll, [(1, "only", 0)], body=marker)
        assert _wait_until(lambda: marker in (tmp_path / "db.sqlite3").read_bytes())
    finally:
        store.close()


def test_the_writer_keeps_nothing_of_a_finished_job(store: SQLiteStore) -> None:
    # a commit's job refers to its whole batch: it must not outlive the commit
    class Batch:
        pass

    batch = Batch()
    gone = weakref.ref(batch)
    store._write(lambda _conn, held=batch: held)
    del batch
    assert _wait_until(lambda: gc.collect() >= 0 and gone() is None)


def test_writes_run_on_one_dedicated_thread(store: SQLiteStore) -> None:
    seen: list[tuple[int, int]] = []  # (writer thread, caller thread)
    lock = threading.Lock()

    def call() -> None:
        caller = threading.get_ident()
        inside = store._write(lambda _c: threading.get_ident())
        with lock:
            seen.append((inside, caller))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    call()
    for t in threads:
        t.join(WAIT_S)
        assert not t.is_alive()
    assert len(seen) == 7
    writers = {w for w, _ in seen}
    assert len(writers) == 1
    assert all(w != c for w, c in seen)
    assert writers.pop() != threading.get_ident()


def test_write_returns_the_function_result_and_commits(store: SQLiteStore) -> None:
    result = store._write(
        lambda c: c.execute("INSERT INTO checkpoints VALUES ('x', X'01')").rowcount
    )
    assert result == 1
    assert raw(store.path, "SELECT id FROM checkpoints") == [("x",)]


def test_failing_write_rolls_back_everything(store: SQLiteStore) -> None:
    coll = store.create_collection("s", "c")

    class Boom(Exception):
        pass

    def fn(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO checkpoints (id, body) VALUES ('cp', X'00')")
        conn.execute(
            f"INSERT INTO {table(coll.id)} (seq, doc_id, rev, flags) VALUES (1, 'd', '1-a', 0)"
        )
        conn.execute("UPDATE collections SET last_seq = 99")
        raise Boom

    with pytest.raises(Boom):
        store._write(fn)
    assert store.get_checkpoint("cp") is None
    assert list(changes(store, coll.id)) == []
    assert store.collections()[0].last_seq == 0
    # the writer is still healthy
    store.set_checkpoint("cp", b"ok")
    assert store.get_checkpoint("cp") == b"ok"


def test_sql_error_in_write_is_translated_and_rolled_back(store: SQLiteStore) -> None:
    def fn(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO checkpoints (id, body) VALUES ('a', X'00')")
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(DatabaseError, match="no_such_table"):
        store._write(fn)
    assert store.get_checkpoint("a") is None
    store.set_checkpoint("a", b"1")
    assert store.get_checkpoint("a") == b"1"


# --- collections --------------------------------------------------------------------------


def test_collections_create_idempotent_and_drop(store: SQLiteStore) -> None:
    assert store.collections() == []
    a = store.create_collection("_default", "_default")
    b = store.create_collection("sales", "orders")
    assert a.id != b.id
    assert (b.scope, b.name, b.last_seq, b.doc_count) == ("sales", "orders", 0, 0)
    again = store.create_collection("sales", "orders")
    assert again.id == b.id
    assert [(c.id, c.scope, c.name) for c in store.collections()] == [
        (a.id, "_default", "_default"),
        (b.id, "sales", "orders"),
    ]
    insert_docs(store, b.id, [(1, "d1", 0)])
    store._write(lambda c: c.execute("INSERT INTO blob_refs VALUES ('sha1-x', ?, 'd1')", (b.id,)))
    assert store.drop_collection(b.id) == ["sha1-x"]
    assert [c.id for c in store.collections()] == [a.id]
    assert store.all_referenced_digests() == set()
    names = {r[0] for r in raw(store.path, "SELECT name FROM sqlite_master")}
    assert table(b.id) not in names
    assert table(a.id) in names
    # a new collection never reuses a dropped table's documents
    c = store.create_collection("sales", "orders")
    assert list(changes(store, c.id)) == []


def test_collections_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    s = SQLiteStore(path)
    coll = s.create_collection("s", "c")
    insert_docs(s, coll.id, [(1, "a", 0), (2, "b", 0)])
    s.close()
    s = SQLiteStore(path)
    try:
        (row,) = s.collections()
        assert (row.id, row.scope, row.name, row.last_seq) == (coll.id, "s", "c", 2)
        assert s.get_record(coll.id, "b") is not None
    finally:
        s.close()


# --- documents: changes feed and IDs ------------------------------------------------------


def test_changes_in_sequence_order_after_since(store: SQLiteStore) -> None:
    coll = store.create_collection("s", "c")
    # inserted out of order, with gaps and a deletion
    insert_docs(store, coll.id, [(5, "e", 0), (2, "b", 0), (9, "z", DOC_DELETED), (3, "c", 0)])
    rows = list(changes(store, coll.id))
    assert [r[0] for r in rows] == [2, 3, 5, 9]  # (sequence, doc_id, rev_id, flags, body_size)
    assert [r[1] for r in rows] == ["b", "c", "e", "z"]
    assert [bool(r[3] & DOC_DELETED) for r in rows] == [False, False, False, True]
    assert all(r[4] == 2 for r in rows)
    assert [r[0] for r in changes(store, coll.id, since=3)] == [5, 9]
    assert [r[0] for r in changes(store, coll.id, since=9)] == []
    assert [r[0] for r in changes(store, coll.id, since=0, limit=2)] == [2, 3]
    assert [r[0] for r in changes(store, coll.id, since=2, limit=1)] == [3]
    assert list(changes(store, coll.id, limit=0)) == []


def test_changes_across_the_fetch_size_boundary(store: SQLiteStore) -> None:
    fetch = _tuning.CHANGES_FETCH_SIZE
    n = 2 * fetch + 7
    coll = store.create_collection("s", "c")
    insert_docs(store, coll.id, [(seq, f"doc-{seq:06d}", 0) for seq in range(1, n + 1)])
    seqs = [r[0] for r in changes(store, coll.id)]
    assert seqs == list(range(1, n + 1))
    # a limit larger than one fetch, and exactly at the boundary
    assert [r[0] for r in changes(store, coll.id, limit=fetch + 5)] == list(range(1, fetch + 6))
    assert [r[0] for r in changes(store, coll.id, limit=fetch)] == list(range(1, fetch + 1))
    assert [r[0] for r in changes(store, coll.id, since=fetch - 1, limit=3)] == [
        fetch,
        fetch + 1,
        fetch + 2,
    ]
    assert [r[0] for r in changes(store, coll.id, since=n - 2)] == [n - 1, n]


def test_changes_exactly_one_fetch(store: SQLiteStore) -> None:
    fetch = _tuning.CHANGES_FETCH_SIZE
    coll = store.create_collection("s", "c")
    insert_docs(store, coll.id, [(seq, f"d{seq}", 0) for seq in range(1, fetch + 1)])
    assert [r[0] for r in changes(store, coll.id)] == list(range(1, fetch + 1))


def test_doc_ids_live_only_and_including_deleted(store: SQLiteStore) -> None:
    fetch = _tuning.CHANGES_FETCH_SIZE
    coll = store.create_collection("s", "c")
    rows = [
        (seq, f"id-{seq:05d}", DOC_DELETED if seq % 3 == 0 else 0) for seq in range(1, fetch + 300)
    ]
    insert_docs(store, coll.id, rows)
    live = sorted(d for _, d, f in rows if not f & DOC_DELETED)
    everything = sorted(d for _, d, _f in rows)
    assert list(store.doc_ids(coll.id)) == live
    assert list(store.doc_ids(coll.id, include_deleted=True)) == everything
    empty = store.create_collection("s", "empty")
    assert list(store.doc_ids(empty.id)) == []


def test_get_record_and_get_records(store: SQLiteStore) -> None:
    coll = store.create_collection("s", "c")
    insert_docs(store, coll.id, [(seq, f"d{seq}", 0) for seq in range(1, 1201)], body=b'{"a":1}')
    rec = store.get_record(coll.id, "d7")
    assert rec is not None
    assert (rec.seq, rec.doc_id, rec.body, rec.deleted) == (7, "d7", b'{"a":1}', False)
    assert store.get_record(coll.id, "nope") is None
    wanted = [f"d{i}" for i in range(1, 1201, 2)] + ["missing"]
    found = store.get_records(coll.id, wanted)
    assert set(found) == set(wanted) - {"missing"}
    assert found["d999"].seq == 999


# --- checkpoints --------------------------------------------------------------------------


def test_local_checkpoints(store: SQLiteStore) -> None:
    assert store.get_checkpoint("cp-1") is None
    store.set_checkpoint("cp-1", b'{"local":1}')
    assert store.get_checkpoint("cp-1") == b'{"local":1}'
    store.set_checkpoint("cp-1", b'{"local":2}')
    assert store.get_checkpoint("cp-1") == b'{"local":2}'
    store.set_checkpoint("cp-2", b"other")
    store.delete_checkpoint("cp-1")
    assert store.get_checkpoint("cp-1") is None
    assert store.get_checkpoint("cp-2") == b"other"
    store.delete_checkpoint("never-existed")  # no error


def test_peer_checkpoints_revisions_and_conflicts(store: SQLiteStore) -> None:
    assert store.get_peer_checkpoint("client-a") is None
    assert store.set_peer_checkpoint("client-a", b"v1", None) == "1-cc"
    assert store.get_peer_checkpoint("client-a") == ("1-cc", b"v1")
    assert store.set_peer_checkpoint("client-a", b"v2", "1-cc") == "2-cc"
    assert store.get_peer_checkpoint("client-a") == ("2-cc", b"v2")

    with pytest.raises(ConflictError):
        store.set_peer_checkpoint("client-a", b"stale", "1-cc")
    with pytest.raises(ConflictError):
        store.set_peer_checkpoint("client-a", b"stale", None)
    with pytest.raises(ConflictError):
        store.set_peer_checkpoint("client-b", b"x", "1-cc")  # unknown client, rev given
    assert store.get_peer_checkpoint("client-a") == ("2-cc", b"v2")
    assert store.get_peer_checkpoint("client-b") is None

    assert store.set_peer_checkpoint("client-b", b"b1", None) == "1-cc"
    for n in range(3, 13):
        assert store.set_peer_checkpoint("client-a", b"v", f"{n - 1}-cc") == f"{n}-cc"
    assert store.get_peer_checkpoint("client-a") == ("12-cc", b"v")


def test_peer_checkpoint_race_one_winner(store: SQLiteStore) -> None:
    store.set_peer_checkpoint("c", b"0", None)

    def attempt(i: int) -> str | None:
        try:
            return store.set_peer_checkpoint("c", str(i).encode(), "1-cc")
        except ConflictError:
            return None

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(16)))
    assert results.count("2-cc") == 1
    assert results.count(None) == 15
    rev, body = store.get_peer_checkpoint("c") or ("", b"")
    assert rev == "2-cc"
    assert int(body) == results.index("2-cc")


def test_checkpoints_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    s = SQLiteStore(path)
    s.set_checkpoint("local", b"L")
    s.set_peer_checkpoint("peer", b"P", None)
    s.close()
    s = SQLiteStore(path)
    try:
        assert s.get_checkpoint("local") == b"L"
        assert s.get_peer_checkpoint("peer") == ("1-cc", b"P")
        assert s.set_peer_checkpoint("peer", b"P2", "1-cc") == "2-cc"
    finally:
        s.close()


# --- readers ------------------------------------------------------------------------------


def test_other_threads_see_only_committed_data(store: SQLiteStore) -> None:
    inside = threading.Event()
    release = threading.Event()
    observed: list[bytes | None] = []

    def slow_write(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO checkpoints (id, body) VALUES ('k', X'2A')")
        inside.set()
        assert release.wait(WAIT_S)

    writer = threading.Thread(target=lambda: store._write(slow_write))
    writer.start()
    try:
        assert inside.wait(WAIT_S)

        def look() -> None:
            observed.append(store.get_checkpoint("k"))

        reader = threading.Thread(target=look)
        reader.start()
        reader.join(WAIT_S)
        assert not reader.is_alive()
        look()  # this thread too
    finally:
        release.set()
        writer.join(WAIT_S)
    assert not writer.is_alive()
    assert observed == [None, None]
    assert store.get_checkpoint("k") == b"*"


def test_uncommitted_rolled_back_write_is_never_visible(store: SQLiteStore) -> None:
    inside = threading.Event()
    release = threading.Event()

    def doomed(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO checkpoints (id, body) VALUES ('gone', X'00')")
        inside.set()
        assert release.wait(WAIT_S)
        raise RuntimeError("abort")

    errors: list[BaseException] = []

    def run() -> None:
        try:
            store._write(doomed)
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    assert inside.wait(WAIT_S)
    assert store.get_checkpoint("gone") is None
    release.set()
    t.join(WAIT_S)
    assert not t.is_alive()
    assert len(errors) == 1
    assert store.get_checkpoint("gone") is None


def test_concurrent_reader_threads(store: SQLiteStore) -> None:
    coll = store.create_collection("s", "c")
    n = 1500
    insert_docs(store, coll.id, [(seq, f"d{seq:05d}", 0) for seq in range(1, n + 1)])
    stop = threading.Event()

    def keep_writing() -> int:
        written = 0
        while not stop.is_set() and written < 200:
            store.set_checkpoint(f"w{written}", b"x")
            written += 1
        return written

    def read_all(i: int) -> tuple[int, int, bool]:
        n_changes = sum(1 for _ in changes(store, coll.id))
        ids = sum(1 for _ in store.doc_ids(coll.id))
        rec = store.get_record(coll.id, f"d{(i * 97) % n + 1:05d}")
        return n_changes, ids, rec is not None

    with ThreadPoolExecutor(9) as pool:
        writes = pool.submit(keep_writing)
        results = list(pool.map(read_all, range(32)))
        stop.set()
        assert writes.result(timeout=WAIT_S) > 0
    assert results == [(n, n, True)] * 32
    assert len(store._readers) <= 10  # one connection per reading thread, not per call


# --- close --------------------------------------------------------------------------------


def test_use_after_close_raises_database_closed(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "db.sqlite3")
    coll = s.create_collection("s", "c")
    assert s.get_record(coll.id, "x") is None  # this thread now has a reader
    s.close()
    assert s.closed
    s.close()  # idempotent
    with pytest.raises(DatabaseClosedError):
        s._write(lambda c: None)
    with pytest.raises(DatabaseClosedError):
        s.set_checkpoint("a", b"b")
    with pytest.raises(DatabaseClosedError):
        s.get_checkpoint("a")
    with pytest.raises(DatabaseClosedError):
        s.get_record(coll.id, "x")
    with pytest.raises(DatabaseClosedError):
        list(changes(s, coll.id))
    with pytest.raises(DatabaseClosedError):
        s.collections()

    # a thread that never read before close gets the same error
    errors: list[BaseException] = []

    def other() -> None:
        try:
            s.get_record(coll.id, "x")
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(WAIT_S)
    assert len(errors) == 1 and isinstance(errors[0], DatabaseClosedError)


def _race_writes_with_close(s: SQLiteStore) -> list[str]:
    outcomes: list[str] = []
    lock = threading.Lock()
    go = threading.Barrier(9)

    def hammer() -> None:
        go.wait(WAIT_S)
        for i in range(200):
            try:
                s.set_checkpoint(f"k{i}", b"v")
                outcome = "ok"
            except DatabaseClosedError:
                outcome = "closed"
            with lock:
                outcomes.append(outcome)
            if outcome == "closed":
                return

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    go.wait(WAIT_S)
    s.close()
    for t in threads:
        t.join(WAIT_S)
        assert not t.is_alive(), "a write raced with close() and never returned"
    return outcomes


def test_close_racing_with_writes_never_hangs(tmp_path: Path) -> None:
    """Every write racing with close() either completes or raises DatabaseClosedError."""
    for round_ in range(5):
        outcomes = _race_writes_with_close(SQLiteStore(tmp_path / f"db{round_}.sqlite3"))
        assert outcomes
        assert set(outcomes) <= {"ok", "closed"}


# --- smaller queries and error translation ------------------------------------------------


def test_next_expiration_across_collections(store: SQLiteStore) -> None:
    assert store.next_expiration() is None
    a = store.create_collection("s", "a")
    b = store.create_collection("s", "b")
    insert_docs(store, a.id, [(1, "x", 0), (2, "y", 0)])
    insert_docs(store, b.id, [(1, "z", 0)])
    assert store.next_expiration() is None
    store._write(lambda c: c.execute(f"UPDATE {table(a.id)} SET expiration = 500.5"))
    store._write(lambda c: c.execute(f"UPDATE {table(b.id)} SET expiration = 100.25"))
    assert store.next_expiration() == 100.25
    store.drop_collection(b.id)
    assert store.next_expiration() == 500.5


def test_referenced_digests(store: SQLiteStore) -> None:
    coll = store.create_collection("s", "c")
    store._write(
        lambda c: c.executemany(
            "INSERT INTO blob_refs (digest, coll, doc_id) VALUES (?, ?, ?)",
            [("sha1-a", coll.id, "d1"), ("sha1-a", coll.id, "d2"), ("sha1-b", coll.id, "d1")],
        )
    )
    assert store.referenced_digests(["sha1-a", "sha1-c"]) == {"sha1-a"}
    assert store.referenced_digests([]) == set()
    assert store.all_referenced_digests() == {"sha1-a", "sha1-b"}


def test_read_errors_are_translated(store: SQLiteStore) -> None:
    with pytest.raises(DatabaseError, match="no such table") as info:
        store._fetchall("SELECT * FROM nowhere")
    assert not isinstance(info.value, sqlite3.Error)
    with pytest.raises(DatabaseError, match="no such table"):
        store._fetchone("SELECT * FROM nowhere")
    # readers are query-only: a write through one fails instead of bypassing the writer
    with pytest.raises(DatabaseError, match="readonly"):
        store._read(lambda c: c.execute("INSERT INTO checkpoints VALUES ('r', X'00')"))
    assert store.get_checkpoint("r") is None


def test_corrupt_page_found_while_reading(tmp_path: Path) -> None:
    from couchlite.errors import CorruptDatabaseError

    path = tmp_path / "db.sqlite3"
    s = SQLiteStore(path)
    coll = s.create_collection("s", "c")
    insert_docs(s, coll.id, [(seq, f"d{seq:05d}", 0) for seq in range(1, 3001)], body=b"b" * 200)
    s.close()
    data = bytearray(path.read_bytes())
    page = 4096
    pages = len(data) // page
    assert pages > 50
    for n in range(pages // 2, pages // 2 + 8):  # somewhere inside the documents' B-tree
        data[n * page : (n + 1) * page] = b"\xa5" * page
    path.write_bytes(bytes(data))
    s = SQLiteStore(path)  # the schema pages are intact: it opens
    try:
        with pytest.raises(CorruptDatabaseError, match="corrupt"):
            list(changes(s, coll.id))
    finally:
        s.close()


def test_a_version_4_database_gets_the_table_of_pins_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = SQLiteStore(path)
    coll = store.create_collection("_default", "_default")
    store.set_checkpoint("cp-1", b"{}")
    store.close()
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE pins; DELETE FROM migrations WHERE version = 5;")
    conn.execute("PRAGMA user_version = 4")
    conn.close()
    store = SQLiteStore(path)
    try:
        assert raw(path, "PRAGMA user_version") == [(5,)]
        assert store.get_checkpoint("cp-1") == b"{}"
        assert [c.id for c in store.collections()] == [coll.id]
        assert store.add_pin("peer-1", "ab" * 32) == "ab" * 32
        assert store.add_pin("peer-1", "cd" * 32) == "ab" * 32  # the first pin stays
        assert store.get_pin("peer-1") == "ab" * 32 and store.get_pin("other") is None
        assert store.pins() == {"peer-1": "ab" * 32}
        assert store.delete_pin("peer-1") and not store.delete_pin("peer-1")
    finally:
        store.close()


def test_pins_are_bounded_and_a_full_table_refuses_new_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_tuning, "MAX_CERTIFICATE_PINS", 2)
    store = SQLiteStore(tmp_path / "db.sqlite3")
    try:
        store.add_pin("a", "aa" * 32)
        store.add_pin("b", "bb" * 32)
        with pytest.raises(DatabaseError, match="forget_pin"):
            store.add_pin("c", "cc" * 32)
        assert store.add_pin("a", "dd" * 32) == "aa" * 32  # existing keys still answer
        assert store.pins() == {"a": "aa" * 32, "b": "bb" * 32}
    finally:
        store.close()


def test_a_version_1_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = SQLiteStore(path)
    coll = store.create_collection("_default", "_default")
    store.close()
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TABLE pins; DROP TABLE indexes; DROP TABLE remote_revs; DROP TABLE remotes;"
        "DROP INDEX peer_checkpoints_updated;"
        "ALTER TABLE peer_checkpoints DROP COLUMN updated;"
        "INSERT INTO peer_checkpoints (client_id, rev, body) VALUES ('old', '1-cc', X'7B7D');"
        "DELETE FROM migrations WHERE version >= 2; PRAGMA user_version = 1;"
    )
    conn.close()
    store = SQLiteStore(path)
    try:
        assert raw(path, "PRAGMA user_version") == [(5,)]
        assert [m[0] for m in raw(path, "SELECT version FROM migrations")] == [1, 2, 3, 4, 5]
        assert store.index_rows() == []  # v4: the table of query indexes
        assert store.pins() == {}  # v5: certificate pins
        # v3: peer checkpoints kept from before are the oldest, evicted first
        assert store.get_peer_checkpoint("old") == ("1-cc", b"{}")
        store.set_peer_checkpoint("new", b"{}", None, keep=1)
        assert store.get_peer_checkpoint("old") is None
        assert store.get_peer_checkpoint("new") == ("1-cc", b"{}")
        remote = store.remote_id("ws://peer/db")
        assert store.remote_id("ws://peer/db") == remote
        store.set_remote_revisions("ws://peer/db", coll.id, [("a", "1-" + "a" * 40)])
        assert store.remote_revisions("ws://peer/db", coll.id, ["a", "b"]) == {"a": "1-" + "a" * 40}
        assert store.remote_revisions("other", coll.id, ["a"]) == {}
    finally:
        store.close()


@pytest.mark.parametrize(
    "n",
    [
        0,
        1,
        INSERT_CHUNK_ROWS - 1,
        INSERT_CHUNK_ROWS,
        INSERT_CHUNK_ROWS + 1,
        3 * INSERT_CHUNK_ROWS + 5,
    ],
)
def test_insert_rows_in_chunks_and_the_rest(tmp_path: Path, n: int) -> None:
    conn = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, name TEXT UNIQUE, body BLOB)")
    rows = [(i, f"n{i}", bytes([i % 256]) * (i % 7)) for i in range(n)]
    assert insert_rows(conn, "INSERT INTO t (k, name, body)", rows, 3) == n
    assert conn.execute("SELECT k, name, body FROM t ORDER BY k").fetchall() == rows
    conn.close()


def test_insert_rows_counts_what_an_on_conflict_clause_skipped(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, name TEXT UNIQUE)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(1000, "n5"), (1001, "n300")])
    rows = [(i, f"n{i}") for i in range(2 * INSERT_CHUNK_ROWS + 50)]
    tail = "ON CONFLICT (name) DO NOTHING"
    # one taken name inside a full chunk, one in the rest
    assert insert_rows(conn, "INSERT INTO t (k, name)", rows, 2, tail) == len(rows) - 2
    assert conn.execute("SELECT k FROM t WHERE name = 'n5'").fetchone() == (1000,)
    # without the clause a taken name is an error, as with executemany
    with pytest.raises(sqlite3.IntegrityError):
        insert_rows(conn, "INSERT INTO t (k, name)", [(5000, "n7")], 2)
    conn.close()
