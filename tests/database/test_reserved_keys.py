"""A local save refuses the top-level keys Couchbase Lite refuses (``_id``, ``_rev``,
``_deleted``), naming the key, and saves nothing; other ``_`` keys are data, as there."""

from __future__ import annotations

import pytest

from couchlite import Database, InvalidArgumentError, LiteCoreCode, MutableDocument


@pytest.mark.parametrize("key", ["_id", "_rev", "_deleted"])
def test_new_document_with_a_reserved_key_is_refused(db: Database, key: str) -> None:
    col = db.default_collection()
    doc = MutableDocument("d", {"a": 1, key: True})
    with pytest.raises(InvalidArgumentError, match=f"'{key}'") as info:
        col.save(doc)
    assert info.value.code == LiteCoreCode.CORRUPT_REVISION_DATA
    assert col.get("d") is None and len(col) == 0 and doc.revision_id is None


@pytest.mark.parametrize("key", ["_id", "_rev", "_deleted"])
def test_reserved_key_refused_in_a_batch_and_on_update(db: Database, key: str) -> None:
    col = db.default_collection()
    col.save(MutableDocument("old", {"v": 1}))
    with pytest.raises(InvalidArgumentError, match=f"'{key}'"), db.in_batch():
        col.save(MutableDocument("new", {key: "x"}))
    assert col.get("new") is None
    update = col["old"].to_mutable()
    update[key] = "x"
    with pytest.raises(InvalidArgumentError, match=f"'{key}'"):
        col.save(update)
    assert col["old"].to_dict() == {"v": 1} and col["old"].sequence == 1


def test_deleted_key_hints_at_delete(db: Database) -> None:
    with pytest.raises(InvalidArgumentError, match=r"Collection\.delete\(\)"):
        db.default_collection().save(MutableDocument("d", {"_deleted": True}))


def test_other_underscore_keys_are_saved_as_data(db: Database) -> None:
    col = db.default_collection()
    body = {"_attachments": {"a.txt": {"length": 1}}, "_private": 1, "nested": {"_id": 2}}
    col.save(MutableDocument("d", body))
    assert col["d"].to_dict() == body
