"""Scopes and collections: naming rules, creation, deletion, isolation."""

from __future__ import annotations

import pytest

from couchlite import (
    Collection,
    Database,
    DatabaseClosedError,
    DatabaseConfiguration,
    InvalidArgumentError,
    MutableDocument,
)


def test_default_collection_and_scope(db: Database) -> None:
    col = db.default_collection()
    assert isinstance(col, Collection)
    assert col.name == "_default" and col.scope.name == "_default"
    assert col.full_name == "_default._default"
    assert db.default_scope().name == "_default"
    assert [s.name for s in db.scopes()] == ["_default"]
    assert db.collection("_default") is col


def test_create_named_collections(db: Database) -> None:
    orders = db.create_collection("orders", scope="sales")
    assert orders.full_name == "sales.orders"
    assert db.create_collection("orders", scope="sales") is orders
    assert db.collection("orders", scope="sales") is orders
    assert db.collection("missing", scope="sales") is None
    db.create_collection("people", scope="sales")
    assert [c.name for c in db.collections(scope="sales")] == ["orders", "people"]
    assert [s.name for s in db.scopes()] == ["_default", "sales"]
    scope = db.scope("sales")
    assert scope is not None and [c.name for c in scope.collections()] == ["orders", "people"]
    assert db.scope("nope") is None
    inventory = db.create_collection("inventory")
    assert inventory.scope.name == "_default"


def test_collections_are_isolated(db: Database) -> None:
    a = db.create_collection("a")
    b = db.create_collection("b")
    a.save(MutableDocument("same", {"in": "a"}))
    b.save(MutableDocument("same", {"in": "b"}))
    assert a.get("same")["in"] == "a"  # type: ignore[index]
    assert b.get("same")["in"] == "b"  # type: ignore[index]
    assert db.default_collection().get("same") is None
    # sequences are per collection
    assert [c.sequence for c in a.changes()] == [1]
    assert [c.sequence for c in b.changes()] == [1]


@pytest.mark.parametrize(
    "name", ["", "_private", "%percent", "has space", "dot.ted", "x" * 252, "ünï"]
)
def test_invalid_names(db: Database, name: str) -> None:
    with pytest.raises(InvalidArgumentError):
        db.create_collection(name)
    with pytest.raises(InvalidArgumentError):
        db.create_collection("ok", scope=name)


@pytest.mark.parametrize("name", ["a", "A-b_c%d", "9lives", "x" * 251, "-dash"])
def test_valid_names(db: Database, name: str) -> None:
    assert db.create_collection(name, scope=name).full_name == f"{name}.{name}"


def test_names_are_case_sensitive(db: Database) -> None:
    assert db.create_collection("Orders") is not db.create_collection("orders")


def test_delete_collection(db: Database) -> None:
    col = db.create_collection("tmp", scope="s")
    col.save(MutableDocument("d"))
    db.delete_collection("tmp", scope="s")
    assert db.collection("tmp", scope="s") is None
    assert db.scope("s") is None
    with pytest.raises(DatabaseClosedError):
        col.save(MutableDocument("e"))
    with pytest.raises(DatabaseClosedError):
        _ = col.count
    again = db.create_collection("tmp", scope="s")
    assert again.count == 0 and again is not col
    with pytest.raises(InvalidArgumentError):
        db.delete_collection("_default")


def test_collections_persist(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = DatabaseConfiguration(directory=tmp_path)
    with Database("db", config) as db:
        db.create_collection("orders", "sales").save(MutableDocument("o1", {"n": 1}))
    with Database("db", config) as db:
        col = db.collection("orders", "sales")
        assert col is not None and col.count == 1
        assert col.get("o1")["n"] == 1  # type: ignore[index]


def test_document_ids_lists_live_documents_in_order(db: Database) -> None:
    col = db.default_collection()
    for i in (3, 1, 2):
        col.save(MutableDocument(f"d{i}"))
    col.delete(col.get("d2"))  # type: ignore[arg-type]
    assert list(col.document_ids()) == ["d1", "d3"]
    for i in range(1500):
        col.save(MutableDocument(f"many-{i:05d}"))
    ids = list(col.document_ids())
    assert len(ids) == 1502 and ids == sorted(ids)


def test_changes_feed(db: Database) -> None:
    col = db.default_collection()
    for i in range(10):
        col.save(MutableDocument(f"d{i}", {"i": i}))
    doc = col.get("d0").to_mutable()  # type: ignore[union-attr]
    doc["i"] = 100
    col.save(doc)
    changes = list(col.changes())
    assert [c.doc_id for c in changes] == [f"d{i}" for i in range(1, 10)] + ["d0"]
    assert [c.sequence for c in changes] == list(range(2, 12))
    assert [c.doc_id for c in col.changes(since=9)] == ["d9", "d0"]
    assert len(list(col.changes(limit=3))) == 3
    assert changes[-1].rev_id == doc.revision_id and changes[-1].body_size > 0
    assert col.last_sequence == 11
