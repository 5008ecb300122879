"""``Database.close`` stops what runs on the database (replicators, listeners) first."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from couchlite import Database, DatabaseClosedError, DatabaseConfiguration, DatabaseError
from couchlite.database.database import DatabaseDependent


class Recorder:
    """A dependent that records how and when it was asked to stop."""

    def __init__(self, db: Database, log: list[str], name: str) -> None:
        self.db = db
        self.log = log
        self.name = name
        self.thread: threading.Thread | None = None
        self.open_when_stopped: bool | None = None

    def _stop_for_database_close(self) -> None:
        self.thread = threading.current_thread()
        self.open_when_stopped = not self.db.is_closed
        # A stopping dependent uses the database (a replicator saves its checkpoint) and
        # unregisters itself: both must work from inside close().
        self.db.default_collection().count  # noqa: B018
        self.log.append(self.name)
        self.db._remove_dependent(self)


class Failing:
    def _stop_for_database_close(self) -> None:
        raise RuntimeError("cannot stop")


def test_close_stops_dependents_before_closing(tmp_path: Path) -> None:
    db = Database("app", DatabaseConfiguration(directory=tmp_path))
    log: list[str] = []
    first, second = Recorder(db, log, "first"), Recorder(db, log, "second")
    dependent: DatabaseDependent = first  # the Protocol is what callers type against
    db._add_dependent(dependent)
    db._add_dependent(first)  # idempotent
    db._add_dependent(second)
    db.close()
    assert sorted(log) == ["first", "second"]  # each stopped exactly once
    assert first.open_when_stopped and second.open_when_stopped
    assert first.thread is threading.current_thread()
    assert db.is_closed
    db.close()  # idempotent: nothing is stopped twice
    assert sorted(log) == ["first", "second"]


def test_removed_dependent_is_not_stopped(tmp_path: Path) -> None:
    db = Database("app", DatabaseConfiguration(directory=tmp_path))
    log: list[str] = []
    dep = Recorder(db, log, "dep")
    db._add_dependent(dep)
    db._remove_dependent(dep)
    db._remove_dependent(dep)  # idempotent
    db.close()
    assert log == []


def test_failing_dependent_does_not_prevent_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database("app", DatabaseConfiguration(directory=tmp_path))
    log: list[str] = []
    db._add_dependent(Failing())
    db._add_dependent(Recorder(db, log, "after"))
    with caplog.at_level(logging.WARNING, logger="couchlite.database.database"):
        db.close()
    assert db.is_closed
    assert log == ["after"]
    assert any("did not stop cleanly" in r.getMessage() for r in caplog.records)
    with Database("app", DatabaseConfiguration(directory=tmp_path)) as again:
        assert again.default_collection().count == 0


def test_no_dependent_registers_on_a_closed_database(tmp_path: Path) -> None:
    db = Database("app", DatabaseConfiguration(directory=tmp_path))
    db.close()
    with pytest.raises(DatabaseClosedError):
        db._add_dependent(Failing())


def test_close_inside_batch_stops_nothing(tmp_path: Path) -> None:
    db = Database("app", DatabaseConfiguration(directory=tmp_path))
    log: list[str] = []
    dep = Recorder(db, log, "dep")
    db._add_dependent(dep)
    with db.in_batch(), pytest.raises(DatabaseError):
        db.close()
    assert log == [] and not db.is_closed
    db._add_dependent(Recorder(db, log, "later"))  # still accepts dependents
    db.close()
    assert sorted(log) == ["dep", "later"]


def test_close_stops_only_this_objects_dependents(tmp_path: Path) -> None:
    config = DatabaseConfiguration(directory=tmp_path)
    one, two = Database("app", config), Database("app", config)
    log: list[str] = []
    db_one, db_two = Recorder(one, log, "one"), Recorder(two, log, "two")
    one._add_dependent(db_one)
    two._add_dependent(db_two)
    one.close()
    assert log == ["one"]
    assert two.default_collection().count == 0  # the file stays open for the other object
    two.close()
    assert log == ["one", "two"]
