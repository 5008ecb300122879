"""Documents: save, get, delete, purge, conflicts, validation."""

from __future__ import annotations

import threading

import pytest

from couchlite import (
    ConcurrencyControl,
    ConflictError,
    Database,
    DatabaseConfiguration,
    Document,
    InvalidArgumentError,
    MutableDocument,
    NotFoundError,
)
from couchlite.model.revid import parse_rev_id


def test_save_and_get_round_trip(db: Database) -> None:
    col = db.default_collection()
    doc = MutableDocument("order-1", {"qty": 2, "nested": {"a": [1, {"b": None}], "t": True}})
    col.save(doc)
    gen, digest = parse_rev_id(doc.revision_id or "")
    assert gen == 1 and len(digest) == 40
    assert doc.sequence == 1
    got = col.get("order-1")
    assert isinstance(got, Document) and not isinstance(got, MutableDocument)
    assert got.id == "order-1"
    assert got.revision_id == doc.revision_id
    assert got.sequence == 1
    assert got.to_dict() == {"qty": 2, "nested": {"a": [1, {"b": None}], "t": True}}
    assert got["qty"] == 2 and got.get("missing", 7) == 7 and "qty" in got
    assert sorted(got) == ["nested", "qty"] and len(got) == 2
    assert got.to_json() == '{"nested":{"a":[1,{"b":null}],"t":true},"qty":2}'


def test_dict_like_mutable_document() -> None:
    doc = MutableDocument("d", {"a": 1})
    doc["b"] = [1, 2]
    del doc["a"]
    assert doc.to_dict() == {"b": [1, 2]}
    assert doc.get("a") is None and "b" in doc
    assert doc.to_json() == '{"b":[1,2]}'
    with pytest.raises(KeyError):
        del doc["zzz"]


def test_generated_ids_are_unique_uuids() -> None:
    ids = {MutableDocument().id for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 36 for i in ids)
    assert MutableDocument({"x": 1}).to_dict() == {"x": 1}


def test_update_makes_a_child_revision(db: Database) -> None:
    col = db.default_collection()
    doc = MutableDocument("d", {"v": 1})
    col.save(doc)
    first = doc.revision_id
    doc["v"] = 2
    col.save(doc)
    assert parse_rev_id(doc.revision_id or "")[0] == 2
    assert doc.revision_id != first
    assert doc.sequence == 2
    assert col.get("d")["v"] == 2  # type: ignore[index]
    assert col.count == 1


def test_to_mutable_edits_do_not_touch_the_original(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d", {"list": [1, 2], "obj": {"k": "v"}}))
    original = col.get("d")
    assert original is not None
    mutable = original.to_mutable()
    mutable["list"].append(3)
    mutable["obj"]["k"] = "changed"
    assert original.to_dict() == {"list": [1, 2], "obj": {"k": "v"}}
    col.save(mutable)
    assert col.get("d").to_dict() == {"list": [1, 2, 3], "obj": {"k": "changed"}}  # type: ignore[union-attr]


def test_fail_on_conflict_raises_and_changes_nothing(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d", {"v": 0}))
    a = col.get("d").to_mutable()  # type: ignore[union-attr]
    b = col.get("d").to_mutable()  # type: ignore[union-attr]
    a["v"] = "a"
    col.save(a)
    b["v"] = "b"
    with pytest.raises(ConflictError) as info:
        col.save(b, concurrency_control=ConcurrencyControl.FAIL_ON_CONFLICT)
    assert info.value.code == 8 and not info.value.is_transient
    assert col.get("d")["v"] == "a"  # type: ignore[index]
    assert col.get("d").revision_id == a.revision_id  # type: ignore[union-attr]


def test_last_write_wins_overwrites(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d", {"v": 0}))
    a = col.get("d").to_mutable()  # type: ignore[union-attr]
    b = col.get("d").to_mutable()  # type: ignore[union-attr]
    a["v"] = "a"
    col.save(a)
    b["v"] = "b"
    col.save(b)
    assert col.get("d")["v"] == "b"  # type: ignore[index]
    assert parse_rev_id(b.revision_id or "")[0] == 3


def test_new_document_with_existing_id(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d", {"v": 1}))
    with pytest.raises(ConflictError):
        col.save(MutableDocument("d", {"v": 2}), ConcurrencyControl.FAIL_ON_CONFLICT)
    col.save(MutableDocument("d", {"v": 3}))
    assert col.get("d")["v"] == 3  # type: ignore[index]
    assert parse_rev_id(col.get("d").revision_id or "")[0] == 2  # type: ignore[union-attr]


def test_conflict_handler_merges(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d", {"a": 0, "b": 0}))
    mine = col.get("d").to_mutable()  # type: ignore[union-attr]
    theirs = col.get("d").to_mutable()  # type: ignore[union-attr]
    theirs["b"] = 2
    col.save(theirs)
    mine["a"] = 1
    seen = []

    def merge(doc: MutableDocument, current: Document | None) -> bool:
        assert current is not None
        seen.append(current.to_dict())
        doc["b"] = current["b"]
        return True

    col.save(mine, conflict_handler=merge)
    assert seen == [{"a": 0, "b": 2}]
    assert col.get("d").to_dict() == {"a": 1, "b": 2}  # type: ignore[union-attr]


def test_conflict_handler_can_refuse(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d", {"v": 0}))
    mine = col.get("d").to_mutable()  # type: ignore[union-attr]
    col.save(col.get("d").to_mutable())  # type: ignore[union-attr]
    mine["v"] = 1
    with pytest.raises(ConflictError):
        col.save(mine, conflict_handler=lambda doc, current: False)
    assert col.get("d")["v"] == 0  # type: ignore[index]


def test_conflict_handler_not_called_without_conflict(db: Database) -> None:
    col = db.default_collection()
    doc = MutableDocument("d", {"v": 0})
    calls = []
    col.save(doc, conflict_handler=lambda d, c: calls.append(1) or True)
    doc["v"] = 1
    col.save(doc, conflict_handler=lambda d, c: calls.append(1) or True)
    assert calls == []


def test_delete_makes_a_tombstone(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d", {"v": 1}))
    doc = col.get("d")
    assert doc is not None
    col.delete(doc)
    assert col.get("d") is None
    assert col.count == 0
    changes = list(col.changes())
    assert len(changes) == 1 and changes[0].deleted and changes[0].doc_id == "d"
    assert parse_rev_id(changes[0].rev_id)[0] == 2
    with pytest.raises(NotFoundError):
        col.delete(doc)
    # a deleted document can be created again, continuing its history
    again = MutableDocument("d", {"v": 2})
    col.save(again)
    assert parse_rev_id(again.revision_id or "")[0] == 3
    assert col.count == 1


def test_delete_fail_on_conflict(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d", {"v": 1}))
    stale = col.get("d")
    col.save(col.get("d").to_mutable())  # type: ignore[union-attr]
    with pytest.raises(ConflictError):
        col.delete(stale, ConcurrencyControl.FAIL_ON_CONFLICT)  # type: ignore[arg-type]
    assert col.get("d") is not None
    col.delete(stale)  # type: ignore[arg-type]
    assert col.get("d") is None


def test_delete_of_unsaved_document_is_not_found(db: Database) -> None:
    with pytest.raises(NotFoundError):
        db.default_collection().delete(MutableDocument("nope"))


def test_purge_removes_everything(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d", {"v": 1}))
    col.purge("d")
    assert col.get("d") is None
    assert list(col.changes()) == []
    assert col.count == 0
    with pytest.raises(NotFoundError):
        col.purge("d")
    fresh = MutableDocument("d", {"v": 2})
    col.save(fresh)
    assert parse_rev_id(fresh.revision_id or "")[0] == 1


def test_purge_accepts_a_document(db: Database) -> None:
    col = db.default_collection()
    doc = MutableDocument("d")
    col.save(doc)
    col.purge(doc)
    assert col.get("d") is None


@pytest.mark.parametrize(
    "doc_id",
    ["", "_design", "a\x00b", "tab\tinside", "x" * 241, "é" * 121],
)
def test_invalid_document_ids(db: Database, doc_id: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        MutableDocument(doc_id)
    assert isinstance(info.value, ValueError)
    assert db.default_collection().count == 0


@pytest.mark.parametrize("doc_id", ["a", "x" * 240, "ünïcödé-✓", "with space", "a/b:c"])
def test_valid_document_ids(db: Database, doc_id: str) -> None:
    col = db.default_collection()
    col.save(MutableDocument(doc_id, {"ok": True}))
    assert col.get(doc_id)["ok"] is True  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"x": float("nan")}, "'x'"),
        ({"a": {"b": [1, float("inf")]}}, "'a.b[1]'"),
        ({"s": {1, 2}}, "'s'"),
        ({"o": object()}, "'o'"),
        ({"k": {3: "int key"}}, "'k'"),
        ({"big": 2**70}, "'big'"),
    ],
)
def test_unrepresentable_values_are_refused_with_their_path(
    db: Database, value: dict[str, object], path: str
) -> None:
    col = db.default_collection()
    doc = MutableDocument("bad", value)
    with pytest.raises(InvalidArgumentError) as info:
        col.save(doc)
    assert path in str(info.value)
    assert col.get("bad") is None and col.count == 0
    assert doc.revision_id is None
    assert list(col.changes()) == []


def test_saving_a_document_of_another_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with (
        Database("one", DatabaseConfiguration(directory=tmp_path)) as one,
        Database("two", DatabaseConfiguration(directory=tmp_path)) as two,
    ):
        one.default_collection().save(MutableDocument("d", {"v": 1}))
        doc = one.default_collection().get("d").to_mutable()  # type: ignore[union-attr]
        with pytest.raises(InvalidArgumentError, match="another database"):
            two.default_collection().save(doc)
        assert two.default_collection().count == 0
        other = one.create_collection("other")
        with pytest.raises(InvalidArgumentError, match="another collection"):
            other.save(doc)


def test_only_mutable_documents_can_be_saved(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d"))
    with pytest.raises(InvalidArgumentError):
        col.save(col.get("d"))  # type: ignore[arg-type]


def test_sequences_are_monotonic_and_never_reused(db: Database) -> None:
    col = db.default_collection()
    seqs = []
    for i in range(5):
        doc = MutableDocument(f"d{i}")
        col.save(doc)
        seqs.append(doc.sequence)
    col.purge("d4")
    doc = MutableDocument("new")
    col.save(doc)
    assert seqs == [1, 2, 3, 4, 5]
    assert doc.sequence == 6


def test_sequences_survive_reopen(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = DatabaseConfiguration(directory=tmp_path)
    with Database("db", config) as db:
        for i in range(3):
            db.default_collection().save(MutableDocument(f"d{i}"))
        db.default_collection().purge("d2")
    with Database("db", config) as db:
        doc = MutableDocument("x")
        db.default_collection().save(doc)
        assert doc.sequence == 4


def test_concurrent_writers_from_many_threads(db: Database) -> None:
    col = db.default_collection()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                doc = MutableDocument(f"t{n}-{i}", {"n": n, "i": i})
                col.save(doc)
                doc["i"] = -i
                col.save(doc)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert col.count == 400
    seqs = [c.sequence for c in col.changes()]
    assert len(seqs) == 400 and seqs == sorted(seqs) and len(set(seqs)) == 400
    assert all(col.get(f"t{n}-{i}")["i"] == -i for n in range(8) for i in range(50))  # type: ignore[index]
