"""Crash durability: a writer process is SIGKILLed mid-batch or mid-commit, then we reopen.

The child is ``crash_writer.py`` (a real process writing a real database). Whatever the kill
point, the database must open cleanly and hold either exactly the first batch (none of the
second) or both batches entirely -- never part of a batch -- with every document readable, the
changes feed agreeing with the count, blobs of every stored document readable, and new writes
working. The folder lock of the dead process must not prevent reopening.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from couchlite import Database, DatabaseConfiguration, DatabaseError, MutableDocument

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

HELPER = Path(__file__).with_name("crash_writer.py")
NAME = "crash"
N_FIRST = 300
N_SECOND = 20_000
LINE_TIMEOUT_S = 60.0


class Child:
    """The writer process and the lines it prints."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HELPER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def wait_for(self, wanted: str, timeout: float = LINE_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {wanted!r} from the child; saw {self.seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"the child ended before {wanted!r}; saw {self.seen}; stderr: {self.stderr()}"
                )
            self.seen.append(line)
            if line == wanted:
                return

    def drain(self) -> None:
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.seen.append(line)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._reader.join(timeout=10)
        self.drain()
        assert self.process.returncode == -signal.SIGKILL, (
            f"the child was not killed (rc {self.process.returncode}): {self.stderr()}"
        )

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()[-2000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.close()


def start(children: list[Child], *args: str) -> Child:
    child = Child(*args)
    children.append(child)
    return child


def wal_size(directory: Path) -> int:
    try:
        return (directory / f"{NAME}.cblite2" / "db.sqlite3-wal").stat().st_size
    except FileNotFoundError:
        return 0


def kill_when_wal_grows(child: Child, directory: Path, grow_by: int) -> bool:
    """After ``committing``: SIGKILL as soon as the WAL has grown by ``grow_by`` bytes.

    The batch lives in memory until the commit, so WAL growth means the commit's SQLite
    transaction is being written. Returns whether the kill came before ``committed``.
    """
    base = wal_size(directory)
    deadline = time.monotonic() + LINE_TIMEOUT_S
    while time.monotonic() < deadline:
        if wal_size(directory) >= base + grow_by:
            os.kill(child.process.pid, signal.SIGKILL)
            break
        if child.process.poll() is not None:
            break
        time.sleep(0.0005)
    child.kill()
    return "committed" not in child.seen


def check_recovered(directory: Path) -> str:
    """Open the crashed database and check it holds exactly one whole state; return which."""
    with Database(NAME, DatabaseConfiguration(directory=directory)) as db:
        col = db.default_collection()
        count = col.count
        assert count in (N_FIRST, N_FIRST + N_SECOND), f"partial batch: {count} documents"
        outcome = "none" if count == N_FIRST else "all"
        want_v = 1 if outcome == "none" else 2

        ids = list(col.document_ids())
        assert len(ids) == count
        firsts = [i for i in ids if i.startswith("first-")]
        seconds = [i for i in ids if i.startswith("second-")]
        assert firsts == [f"first-{i:06d}" for i in range(N_FIRST)]
        assert seconds == (
            [] if outcome == "none" else [f"second-{i:06d}" for i in range(N_SECOND)]
        )

        # every document readable, and from the same state
        for doc_id in ids:
            doc = col.get(doc_id)
            assert doc is not None, doc_id
            assert doc["v"] == want_v, (doc_id, doc.to_dict())
            assert doc.revision_id.startswith(f"{want_v}-" if doc_id < "second" else "1-")
        if outcome == "all":
            for i in range(0, N_SECOND, 1000):
                doc = col.get(f"second-{i:06d}")
                assert doc is not None
                blob = doc["att"]
                assert blob.content == f"blob-{i}".encode() * 50

        # the changes feed agrees with the count
        changes = list(col.changes())
        seqs = [c.sequence for c in changes]
        assert seqs == sorted(set(seqs))
        assert len(changes) == count
        assert not any(c.deleted for c in changes)
        assert sorted(c.doc_id for c in changes) == ids
        assert col.last_sequence >= seqs[-1]

        # new writes work, and get a fresh sequence
        doc = MutableDocument("after-crash", {"ok": True})
        col.save(doc)
        assert doc.sequence is not None and doc.sequence > seqs[-1]
        assert col.count == count + 1
        assert col.get("after-crash") is not None
        with db.in_batch():
            col.save(MutableDocument("after-crash-2", {"ok": True}))
        assert col.count == count + 2

        # no temporary blob files survive a reopen
        attachments = db.path / "Attachments"
        assert not list(attachments.glob("tmp-*"))
    # and it reopens once more, with the new documents
    with Database(NAME, DatabaseConfiguration(directory=directory)) as db:
        assert db.default_collection().count == count + 2
    return outcome


def run_writer(children: list[Child], directory: Path) -> Child:
    child = start(children, str(directory), str(N_FIRST), str(N_SECOND))
    child.wait_for("first-committed")
    child.wait_for("started")
    return child


@pytest.mark.parametrize("progress", [0, 8000, 18000])
def test_kill_inside_the_batch_keeps_only_the_first(
    tmp_path: Path, children: list[Child], progress: int
) -> None:
    child = run_writer(children, tmp_path)
    child.wait_for(f"progress {progress}")
    child.kill()
    assert "committing" not in child.seen
    assert check_recovered(tmp_path) == "none"


@pytest.mark.parametrize(
    "grow_by", [4096, 256 * 1024, 1024 * 1024, 3 * 1024 * 1024, 5 * 1024 * 1024]
)
def test_kill_during_the_commit_is_all_or_nothing(
    tmp_path: Path, children: list[Child], grow_by: int
) -> None:
    child = run_writer(children, tmp_path)
    child.wait_for("committing")
    before_committed = kill_when_wal_grows(child, tmp_path, grow_by)
    outcome = check_recovered(tmp_path)
    if not before_committed:
        # the commit returned before the kill: it must have survived the crash
        assert outcome == "all"


def test_kill_right_after_committing_line(tmp_path: Path, children: list[Child]) -> None:
    child = run_writer(children, tmp_path)
    child.wait_for("committing")
    child.kill()
    outcome = check_recovered(tmp_path)
    if "committed" in child.seen:
        assert outcome == "all"


def test_kill_after_commit_keeps_everything(tmp_path: Path, children: list[Child]) -> None:
    child = run_writer(children, tmp_path)
    child.wait_for("committed")
    child.kill()
    assert check_recovered(tmp_path) == "all"


def test_database_of_a_killed_process_can_be_reopened(
    tmp_path: Path, children: list[Child]
) -> None:
    child = start(children, "--hold", str(tmp_path))
    child.wait_for("open")
    lock = tmp_path / f"{NAME}.cblite2" / "db.lock"
    assert lock.exists()
    with pytest.raises(DatabaseError, match="open in another process"):
        Database(NAME, DatabaseConfiguration(directory=tmp_path))
    child.kill()
    with Database(NAME, DatabaseConfiguration(directory=tmp_path)) as db:
        col = db.default_collection()
        doc = col.get("held")
        assert doc is not None and doc["by"] == "child"
        col.save(MutableDocument("mine", {}))
        assert col.count == 2


# --- one process at a time --------------------------------------------------------------------

TRY_OPEN = """
import sys
from couchlite import Database, DatabaseConfiguration, DatabaseError
try:
    db = Database("crash", DatabaseConfiguration(directory=sys.argv[1]))
except DatabaseError as exc:
    print("REFUSED", exc.code, exc)
else:
    print("OPENED", db.default_collection().count)
    db.close()
"""


def try_open_in_child(directory: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", TRY_OPEN, str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_second_process_cannot_open_an_open_database(tmp_path: Path) -> None:
    with Database(NAME, DatabaseConfiguration(directory=tmp_path)) as db:
        db.default_collection().save(MutableDocument("a", {}))
        before = (db.path / "db.sqlite3").stat().st_size
        answer = try_open_in_child(tmp_path)
        assert answer.startswith("REFUSED"), answer
        assert "open in another process" in answer
        # the refused process touched nothing: this one keeps working
        db.default_collection().save(MutableDocument("b", {}))
        assert db.default_collection().count == 2
        assert (db.path / "db.sqlite3").stat().st_size >= before
    # once closed here, another process may open it
    assert try_open_in_child(tmp_path) == "OPENED 2"


def test_lock_is_per_database_not_per_directory(tmp_path: Path) -> None:
    with Database("other", DatabaseConfiguration(directory=tmp_path)):
        assert try_open_in_child(tmp_path) == "OPENED 0"


def test_failed_open_in_this_process_releases_the_lock(tmp_path: Path) -> None:
    folder = tmp_path / f"{NAME}.cblite2"
    folder.mkdir()
    (folder / "db.sqlite3").write_bytes(b"garbage, not a database")
    with pytest.raises(DatabaseError):
        Database(NAME, DatabaseConfiguration(directory=tmp_path))
    # were the lock still held, the child would be told "open in another process"
    answer = try_open_in_child(tmp_path)
    assert answer.startswith("REFUSED") and "not a database" in answer, answer
    assert "another process" not in answer
