"""Shared pieces of the tests that replicate between real databases over real sockets on
127.0.0.1: databases in a folder, documents saved in one batch, replicator configurations, and
the checks that end a test closing a database under a running replication."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from couchlite import (
    Database,
    DatabaseConfiguration,
    MutableDocument,
    ReplicatorConfiguration,
    UrlEndpoint,
)

#: Bound on polling for a condition from a blocking test body.
POLL_TIMEOUT_S = 10.0


def open_database(directory: Path, name: str) -> Database:
    """The database ``name`` stored in ``directory`` (created if missing)."""
    return Database(name, DatabaseConfiguration(directory=directory))


def fill(db: Database, prefix: str, count: int) -> None:
    """Save ``count`` documents ``<prefix><i>`` (body ``{"i": i}``) in the default collection,
    in one batch."""
    collection = db.default_collection()
    with db.in_batch():
        for i in range(count):
            collection.save(MutableDocument(f"{prefix}{i}", {"i": i}))


def filled_ids(prefix: str, count: int) -> set[str]:
    """The ids :func:`fill` saves."""
    return {f"{prefix}{i}" for i in range(count)}


def replicator_config(
    db: Database, port: int | None, path: str = "db", **options: Any
) -> ReplicatorConfiguration:
    """A configuration replicating ``db``'s default collection with ``ws://127.0.0.1:<port>/<path>``
    (``options`` as ``ReplicatorConfiguration`` takes them, e.g. ``continuous=True``)."""
    config = ReplicatorConfiguration(UrlEndpoint(f"ws://127.0.0.1:{port}/{path}"), **options)
    config.add_collection(db.default_collection())
    return config


def port_closed(port: int) -> bool:
    """Whether nothing accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def poll_until(predicate: Callable[[], object], timeout: float = POLL_TIMEOUT_S) -> None:
    """Block (bounded) until ``predicate()`` holds; fails the test if it never does."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def assert_no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing was logged at ERROR or above."""
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


@contextmanager
def closing_pair(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, closed: str, kept: str, docs: int
) -> Iterator[tuple[Database, Database]]:
    """Two databases, ``closed`` (the test closes it under a running replication) and ``kept``,
    each filled with ``docs`` documents prefixed by its name, warnings captured.

    On a clean exit it checks what closing must not cost: nothing logged at ERROR, and
    ``closed`` reopens with every document of both sides (none lost, none half-written)."""
    directory = tmp_path / closed
    kept_db = open_database(tmp_path / kept, kept)
    closed_db = open_database(directory, closed)
    try:
        fill(closed_db, closed, docs)
        fill(kept_db, kept, docs)
        caplog.set_level(logging.WARNING)
        yield closed_db, kept_db
        assert_no_errors_logged(caplog)
        closed_db.close()  # idempotent: the test has closed it already
        with open_database(directory, closed) as reopened:
            ids = set(reopened.default_collection().document_ids())
            assert filled_ids(closed, docs) | filled_ids(kept, docs) <= ids
    finally:
        closed_db.close()
        kept_db.close()
