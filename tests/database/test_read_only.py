"""``DatabaseConfiguration(read_only=True)``: reading a database another process owns."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from couchlite import (
    Database,
    DatabaseClosedError,
    DatabaseConfiguration,
    DatabaseError,
    LiteCoreCode,
    MutableDocument,
    NotFoundError,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    ReplicatorType,
    UrlEndpoint,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
    ValueIndexConfiguration,
)
from couchlite.replicator.replicator import Replicator
from couchlite.storage._schema import SCHEMA_VERSION

pytestmark = pytest.mark.timeout(90)

OWNER = Path(__file__).with_name("ro_owner.py")


def _read_only(directory: Path, name: str = "live") -> Database:
    return Database(name, DatabaseConfiguration(directory=directory, read_only=True))


def _refused(fn: object, *args: object) -> None:
    with pytest.raises(DatabaseError) as caught:
        fn(*args)  # type: ignore[operator]
    assert caught.value.code == LiteCoreCode.NOT_WRITEABLE, caught.value
    assert "read-only" in str(caught.value)


def test_a_missing_database_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        _read_only(tmp_path, "nothing")
    assert not (tmp_path / "nothing.cblite2").exists()


def test_a_read_only_open_creates_nothing_in_the_folder(tmp_path: Path) -> None:
    with Database("live", DatabaseConfiguration(directory=tmp_path)) as owner:
        owner.default_collection().save(MutableDocument("a", {"v": 1}))
    attachments = tmp_path / "live.cblite2" / "Attachments"
    attachments.rmdir()  # a database without blobs, its folder gone (or never made)
    with _read_only(tmp_path) as reader:
        doc = reader.default_collection().get("a")
        assert doc is not None and doc.to_dict() == {"v": 1}
    assert not attachments.exists()


def test_a_database_still_being_created_is_not_found(tmp_path: Path) -> None:
    # what a reader sees between its owner's creating the file and committing the schema
    folder = tmp_path / "new.cblite2"
    folder.mkdir()
    (folder / "db.sqlite3").touch()
    with pytest.raises(NotFoundError, match="being created"):
        _read_only(tmp_path, "new")
    assert sorted(p.name for p in folder.iterdir()) == ["db.sqlite3"]


def test_an_older_schema_is_refused_not_migrated(tmp_path: Path) -> None:
    with Database("old", DatabaseConfiguration(directory=tmp_path)):
        pass
    path = tmp_path / "old.cblite2" / "db.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    with pytest.raises(DatabaseError) as caught:
        _read_only(tmp_path, "old")
    assert caught.value.code == LiteCoreCode.DATABASE_TOO_OLD
    with contextlib.closing(sqlite3.connect(path)) as conn:  # only the owner migrates
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION - 1


def test_every_write_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    config = DatabaseConfiguration(directory=tmp_path)
    with Database("live", config) as owner:
        owner.default_collection().save(MutableDocument("a", {"n": 1}))
        owner.create_collection("orders", "shop").save(MutableDocument("o1", {"total": 3}))
        with _read_only(tmp_path) as reader:
            assert reader.is_read_only
            col = reader.default_collection()
            assert col["a"].to_dict() == {"n": 1}
            orders = reader.collection("orders", "shop")
            assert orders is not None and orders.count == 1
            assert [r.to_dict() for r in reader.create_query("SELECT n FROM _").execute()] == [
                {"n": 1}
            ]
            doc = col["a"].to_mutable()
            doc["n"] = 2
            _refused(col.save, doc)
            _refused(col.save, MutableDocument("new"))
            _refused(col.delete, col["a"])
            _refused(col.purge, "a")
            _refused(col.set_document_expiration, "a", None)
            _refused(col.create_index, "by_n", ValueIndexConfiguration(["n"]))
            _refused(col.delete_index, "by_n")
            _refused(reader.create_collection, "other")
            _refused(reader.delete_collection, "orders", "shop")
            _refused(reader.compact)
            _refused(reader.delete)
            with pytest.raises(DatabaseError), reader.in_batch():
                pass
            assert doc.revision_id == col["a"].revision_id
        assert owner.default_collection()["a"].to_dict() == {"n": 1}
        assert owner.collection("other") is None
        assert owner.default_collection().indexes == []
    assert Database.exists("live", tmp_path)


def test_a_writing_replicator_or_listener_is_refused(tmp_path: Path) -> None:
    with Database("live", DatabaseConfiguration(directory=tmp_path)), _read_only(tmp_path) as db:
        listener = UrlEndpointListener(
            UrlEndpointListenerConfiguration(
                collections=[db.default_collection()], port=0, disable_tls=True
            )
        )
        _refused(listener.start)
        config = ReplicatorConfiguration(target=UrlEndpoint("ws://127.0.0.1:9/live"))
        config.add_collection(db.default_collection())
        replicator = Replicator(config)
        _refused(replicator.start)
        # a listener that only lets peers pull may serve it
        readonly = UrlEndpointListener(
            UrlEndpointListenerConfiguration(
                collections=[db.default_collection()], port=0, disable_tls=True, read_only=True
            )
        )
        readonly.start()
        try:
            assert readonly.port
        finally:
            readonly.stop()


def _line(process: subprocess.Popen[str], prefix: str, deadline: float) -> str:
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"the owner never printed {prefix!r}")


def test_a_second_process_reads_while_the_owner_writes(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, str(OWNER), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    try:
        _line(owner, "wrote 5", deadline)
        # the owner holds the folder lock: a read-write open from here is refused...
        with pytest.raises(DatabaseError) as busy:
            Database("live", DatabaseConfiguration(directory=tmp_path))
        assert busy.value.code == LiteCoreCode.BUSY
        # ...but a read-only one runs beside it and sees each new commit
        with _read_only(tmp_path) as reader:
            col = reader.default_collection()
            assert col["doc-5"].to_dict() == {"i": 5}
            seen = int(_line(owner, "wrote", deadline).split()[1]) + 10
            _line(owner, f"wrote {seen}", deadline)
            assert col[f"doc-{seen}"].to_dict() == {"i": seen}
            _refused(col.save, MutableDocument("from-reader"))
            assert col.count > seen and col.last_sequence > seen  # re-read, not cached
            assert [c.name for c in reader.collections()] == ["_default"]
        assert owner.stdin is not None
        owner.stdin.write("stop\n")
        owner.stdin.flush()
        count = int(_line(owner, "count", deadline).split()[1])
        assert owner.wait(timeout=30) == 0
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=10)
        for pipe in (owner.stdin, owner.stdout):
            if pipe is not None:
                pipe.close()
    with Database("live", DatabaseConfiguration(directory=tmp_path)) as db:
        col = db.default_collection()
        assert col.count == count and "from-reader" not in col


def test_collections_created_by_the_owner_appear(tmp_path: Path) -> None:
    config = DatabaseConfiguration(directory=tmp_path)
    with Database("live", config) as owner, _read_only(tmp_path) as reader:
        assert reader.collection("orders", "shop") is None
        owner.create_collection("orders", "shop").save(MutableDocument("o", {"n": 1}))
        assert [s.name for s in reader.scopes()] == ["_default", "shop"]
        orders = reader.collection("orders", "shop")
        assert orders is not None and orders["o"].to_dict() == {"n": 1}
        assert [c.name for c in reader.collections("shop")] == ["orders"]


def test_collections_deleted_by_the_owner_go(tmp_path: Path) -> None:
    config = DatabaseConfiguration(directory=tmp_path)
    with Database("live", config) as owner, _read_only(tmp_path) as reader:
        owner.create_collection("orders", "shop").save(MutableDocument("o", {"n": 1}))
        seen = reader.collection("orders", "shop")
        assert seen is not None and seen.count == 1
        owner.delete_collection("orders", "shop")
        assert reader.collection("orders", "shop") is None
        assert [c.name for c in reader.collections("shop")] == []
        assert [s.name for s in reader.scopes()] == ["_default"]
        with pytest.raises(DatabaseClosedError):  # typed, not SQLite's "no such table"
            seen.get("o")


def test_a_peer_pulls_from_a_read_only_database(tmp_path: Path) -> None:
    with Database("live", DatabaseConfiguration(directory=tmp_path)) as owner:
        for n in range(3):
            owner.default_collection().save(MutableDocument(f"doc-{n}", {"n": n}))
    with (
        _read_only(tmp_path) as source,
        Database("copy", DatabaseConfiguration(directory=tmp_path / "peer")) as copy,
    ):
        listener = UrlEndpointListener(
            UrlEndpointListenerConfiguration(
                collections=[source.default_collection()],
                port=0,
                disable_tls=True,
                read_only=True,
            )
        )
        listener.start()
        try:
            config = ReplicatorConfiguration(
                target=UrlEndpoint(f"ws://127.0.0.1:{listener.port}/live"),
                replicator_type=ReplicatorType.PULL,
            )
            config.add_collection(copy.default_collection())
            replicator = Replicator(config)
            replicator.start()
            try:
                deadline = time.monotonic() + 30
                while replicator.status.activity is not ReplicatorActivityLevel.STOPPED:
                    assert time.monotonic() < deadline, replicator.status
                    time.sleep(0.05)
            finally:
                replicator.stop()
            # the pull ends cleanly: the peer's checkpoint is acknowledged, not stored
            assert replicator.status.error is None
            assert copy.default_collection().count == 3
        finally:
            listener.stop()
