"""Opening, closing, deleting databases; configuration; UUIDs; errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from couchlite import (
    ConfigurationError,
    Database,
    DatabaseClosedError,
    DatabaseConfiguration,
    DatabaseError,
    InvalidArgumentError,
    MutableDocument,
)


def test_open_creates_the_folder(tmp_path: Path) -> None:
    config = DatabaseConfiguration(directory=tmp_path / "data")
    assert not Database.exists("app", directory=tmp_path / "data")
    with Database("app", config) as db:
        assert db.name == "app"
        assert db.path == tmp_path / "data" / "app.cblite2"
        assert (db.path / "db.sqlite3").is_file()
        assert len(db.uuid) == 32 and int(db.uuid, 16) >= 0
        assert db.uuid != db.private_uuid
        uuid = db.uuid
    assert Database.exists("app", directory=tmp_path / "data")
    with Database("app", config) as db:
        assert db.uuid == uuid


def test_use_after_close(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("d"))
    doc = col.get("d")
    db.close()
    db.close()  # idempotent
    assert db.is_closed
    with pytest.raises(DatabaseClosedError):
        col.get("d")
    with pytest.raises(DatabaseClosedError):
        col.save(MutableDocument("e"))
    with pytest.raises(DatabaseClosedError):
        db.default_collection()
    with pytest.raises(DatabaseClosedError):
        _ = db.uuid
    with pytest.raises(DatabaseClosedError), db.in_batch():
        pass
    assert doc is not None and doc.id == "d"


def test_delete(tmp_path: Path) -> None:
    db = Database("gone", DatabaseConfiguration(directory=tmp_path))
    db.default_collection().save(MutableDocument("d"))
    path = db.path
    db.delete()
    assert not path.exists()
    assert not Database.exists("gone", directory=tmp_path)


def test_delete_database_static(tmp_path: Path) -> None:
    with Database("x", DatabaseConfiguration(directory=tmp_path)) as db:
        with pytest.raises(DatabaseError):
            Database.delete_database("x", directory=tmp_path)
        db.default_collection().save(MutableDocument("d"))
    Database.delete_database("x", directory=tmp_path)
    assert not Database.exists("x", directory=tmp_path)
    Database.delete_database("x", directory=tmp_path)  # absent: nothing to do


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "a\\b", "nul\x00"])
def test_invalid_database_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgumentError):
        Database(name, DatabaseConfiguration(directory=tmp_path))


def test_invalid_configuration(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        Database("x", DatabaseConfiguration(directory=tmp_path, max_rev_tree_depth=0))


def test_configuration_is_copied(tmp_path: Path) -> None:
    config = DatabaseConfiguration(directory=tmp_path)
    with Database("x", config) as db:
        config.max_rev_tree_depth = 3
        assert db.config.max_rev_tree_depth == 20


def test_revision_trees_are_pruned_to_the_configured_depth(tmp_path: Path) -> None:
    from couchlite.database.records import tree_of

    config = DatabaseConfiguration(directory=tmp_path, max_rev_tree_depth=5)
    with Database("x", config) as db:
        col = db.default_collection()
        doc = MutableDocument("d", {"v": 0})
        for i in range(30):
            doc["v"] = i
            col.save(doc)
        record = db._engine_or_raise().store.get_record(1, "d")
        assert record is not None
        tree = tree_of(record)
        assert len(tree) == 5
        assert tree.current.rev_id == doc.revision_id
        assert len(tree.history(doc.revision_id or "")) == 5


def test_default_depth_is_twenty(db: Database) -> None:
    from couchlite.database.records import tree_of

    col = db.default_collection()
    doc = MutableDocument("d")
    for i in range(40):
        doc["v"] = i
        col.save(doc)
    record = db._engine_or_raise().store.get_record(1, "d")
    assert record is not None and len(tree_of(record)) == 20


def test_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "x.cblite2").write_text("not a folder")
    with pytest.raises(DatabaseError):
        Database("x", DatabaseConfiguration(directory=tmp_path))
    assert (tmp_path / "x.cblite2").read_text() == "not a folder"


def test_configuration_refuses_unknown_attributes(tmp_path: Path) -> None:
    config = DatabaseConfiguration()
    with pytest.raises(AttributeError, match=r"'directry'.*did you mean 'directory'\?"):
        config.directry = tmp_path  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="max_rev_tree_depth"):
        config.max_rev_depth = 3  # type: ignore[attr-defined]
    config.directory = tmp_path  # declared attributes work as before
    config.max_rev_tree_depth = 5
    with Database("app", config) as db:
        assert db.config.directory == tmp_path and db.config.max_rev_tree_depth == 5
        assert db.config == config
