"""Document expiration: expired documents are purged automatically."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading

import pytest

from couchlite import (
    Database,
    DatabaseConfiguration,
    InvalidArgumentError,
    MutableDocument,
    NotFoundError,
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_expired_documents_are_purged_without_any_call(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("soon", {"v": 1}))
    col.save(MutableDocument("later", {"v": 1}))
    col.save(MutableDocument("never", {"v": 1}))
    purged = threading.Event()
    col.add_document_change_listener("soon", lambda change: purged.set())
    col.set_document_expiration("soon", now() + dt.timedelta(milliseconds=200))
    col.set_document_expiration("later", now() + dt.timedelta(hours=1))
    assert purged.wait(20), "the expired document was not purged"
    assert col.get("soon") is None
    assert col.get("later") is not None and col.get("never") is not None
    assert [c.doc_id for c in col.changes()] == ["later", "never"]


def test_expiration_get_set_clear(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d"))
    assert col.get_document_expiration("d") is None
    when = now() + dt.timedelta(days=1)
    col.set_document_expiration("d", when)
    got = col.get_document_expiration("d")
    assert got is not None and abs((got - when).total_seconds()) < 0.001
    col.set_document_expiration("d", None)
    assert col.get_document_expiration("d") is None
    with pytest.raises(NotFoundError):
        col.set_document_expiration("missing", when)


def test_expiration_survives_updates_and_reopen(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = DatabaseConfiguration(directory=tmp_path)
    when = now() + dt.timedelta(days=1)
    with Database("db", config) as db:
        col = db.default_collection()
        doc = MutableDocument("d", {"v": 1})
        col.save(doc)
        col.set_document_expiration("d", when)
        doc["v"] = 2
        col.save(doc)
        assert col.get_document_expiration("d") is not None
    with Database("db", config) as db:
        got = db.default_collection().get_document_expiration("d")
        assert got is not None and abs((got - when).total_seconds()) < 0.001


def test_documents_already_expired_at_open_are_purged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = DatabaseConfiguration(directory=tmp_path)
    with Database("db", config) as db:
        col = db.default_collection()
        col.save(MutableDocument("d"))
        col.set_document_expiration("d", now() + dt.timedelta(days=1))
        path = db.path / "db.sqlite3"
    # rewrite the stored time into the past, as if the process had been stopped for a day
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE kv_1 SET expiration = 1 WHERE doc_id = 'd'")
    conn.close()
    with Database("db", config) as db:
        col = db.default_collection()
        event = threading.Event()
        col.add_change_listener(lambda change: event.set())
        if col.get("d") is not None:
            assert event.wait(20)
        assert col.get("d") is None


def test_expiration_in_a_failed_batch_is_rolled_back(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d"))
    with pytest.raises(RuntimeError), db.in_batch():
        col.set_document_expiration("d", now() + dt.timedelta(days=1))
        assert col.get_document_expiration("d") is not None
        raise RuntimeError
    assert col.get_document_expiration("d") is None


def test_a_naive_expiration_is_refused_as_document_dates_are(tmp_path) -> None:
    with Database("db", DatabaseConfiguration(directory=tmp_path)) as db:
        col = db.default_collection()
        col.save(MutableDocument("d", {}))
        with pytest.raises(InvalidArgumentError, match="aware datetime"):
            col.set_document_expiration("d", dt.datetime.now() + dt.timedelta(days=1))
        assert col.get_document_expiration("d") is None


def test_set_data_refuses_what_is_not_a_mapping() -> None:
    doc = MutableDocument("d", {"a": 1})
    with pytest.raises(InvalidArgumentError, match="mapping"):
        doc.set_data([("a", 2)])  # type: ignore[arg-type]
    assert doc.to_dict() == {"a": 1}
