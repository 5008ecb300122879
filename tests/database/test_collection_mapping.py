"""``Collection`` is a read-only ``Mapping[str, Document]`` (len, in, iteration over live IDs in
sequence order, streamed in batches) that keeps identity equality, hashing and truthiness."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from couchlite import Database, Document, InvalidArgumentError, MutableDocument
from couchlite.storage.sqlite_store import SQLiteStore


def _fill(db: Database) -> None:
    col = db.default_collection()
    for doc_id in ("b", "a", "c", "gone"):
        col.save(MutableDocument(doc_id, {"id": doc_id}))
    updated = col["b"].to_mutable()
    updated["v"] = 2
    col.save(updated)  # b moves to the newest sequence
    col.delete(col["gone"])


def test_list_len_and_in(db: Database) -> None:
    _fill(db)
    col = db.default_collection()
    assert isinstance(col, Mapping)
    assert list(col) == ["a", "c", "b"]
    assert len(col) == col.count == 3
    assert "a" in col and "gone" not in col and "never" not in col and 0 not in col
    assert list(col.keys()) == ["a", "c", "b"]
    assert [d["id"] for d in col.values()] == ["a", "c", "b"]
    assert [(k, d.id) for k, d in col.items()] == [("a", "a"), ("c", "c"), ("b", "b")]
    assert all(isinstance(d, Document) for d in col.values())
    assert dict(col)["b"]["v"] == 2


def test_getitem_and_get(db: Database) -> None:
    _fill(db)
    col = db.default_collection()
    assert col["a"].id == "a"
    for missing in ("gone", "never", 0):
        with pytest.raises(KeyError):
            col[missing]  # type: ignore[index]
    assert col.get("gone") is None
    sentinel = MutableDocument("x")
    assert col.get("never", sentinel) is sentinel
    with pytest.raises(InvalidArgumentError, match="must be a string"):
        col.get(0)  # type: ignore[arg-type]


def test_iteration_is_streamed_in_batches(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from couchlite import _tuning

    col = db.default_collection()
    with db.in_batch():
        for i in range(10):
            col.save(MutableDocument(f"d{i}"))
    monkeypatch.setattr(_tuning, "CHANGES_FETCH_SIZE", 3)
    queries: list[tuple[object, ...]] = []
    original = SQLiteStore._fetchall

    def counting(self: SQLiteStore, sql: str, params: object = ()) -> list[object]:
        rows = original(self, sql, params)  # type: ignore[arg-type]
        queries.append((sql, len(rows)))
        return rows

    monkeypatch.setattr(SQLiteStore, "_fetchall", counting)
    it = iter(col)
    assert next(it) == "d0"
    assert len(queries) == 1 and queries[0][1] == 3  # one batch read, not the whole list
    assert list(it) == [f"d{i}" for i in range(1, 10)]
    assert [n for _, n in queries] == [3, 3, 3, 1]


def test_iteration_inside_a_batch_sees_the_batch(db: Database) -> None:
    _fill(db)
    col = db.default_collection()
    with db.in_batch():
        col.save(MutableDocument("new"))
        col.delete(col["a"])
        changed = col["c"].to_mutable()
        changed["v"] = 3
        col.save(changed)
        assert list(col) == ["b", "new", "c"]
        assert len(col) == 3 and "new" in col and "a" not in col
    assert list(col) == ["b", "new", "c"]


def test_identity_equality_hash_and_truth(db: Database) -> None:
    first = db.create_collection("one")
    second = db.create_collection("two")
    assert len(first) == len(second) == 0
    assert first != second  # equal contents (both empty) do not make them equal
    assert first == db.collection("one") and first is db.collection("one")
    assert len({first, second, db.collection("one")}) == 2
    assert bool(first)  # "if collection:" still tests for None, not for emptiness
    assert first != {}
