"""A replicator's name: ``repl-<n>``, the same on the ``Replicator`` façade and on the
``AsyncReplicator`` it runs, read-only, and the name its messages use. A real WebSocket client
on 127.0.0.1 against a port nobody listens on (the replicator stays OFFLINE)."""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from typing import Any

import pytest

from couchlite import (
    AsyncReplicator,
    Database,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    UrlEndpoint,
)

from .helpers import BlockedClock, closed_port, run

Level = ReplicatorActivityLevel


def _config(db: Database, **options: Any) -> ReplicatorConfiguration:
    config = ReplicatorConfiguration(
        UrlEndpoint(f"ws://127.0.0.1:{closed_port()}/db"), continuous=True, **options
    )
    config.add_collection(db.default_collection())
    return config


def _wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_the_sync_replicator_has_its_async_replicators_name(db: Database) -> None:
    repl = Replicator(_config(db))
    assert re.fullmatch(r"repl-\d+", repl.name)
    assert repl.name == repl._async.name
    assert repl.name in repr(repl)


def test_each_replicator_has_its_own_name(db: Database) -> None:
    names = {Replicator(_config(db)).name for _ in range(3)}
    names.add(AsyncReplicator(_config(db)).name)
    assert len(names) == 4


@pytest.mark.parametrize("cls", [Replicator, AsyncReplicator])
def test_the_name_is_a_documented_read_only_property(db: Database, cls: type) -> None:
    attribute = inspect.getattr_static(cls, "name")
    assert isinstance(attribute, property)
    assert attribute.__doc__ and "repl-" in attribute.__doc__
    repl = cls(_config(db))
    before = repl.name
    with pytest.raises(AttributeError):
        repl.name = "other"
    assert repl.name == before


def test_wait_for_messages_use_the_sync_replicators_name(db: Database) -> None:
    repl = Replicator(_config(db), clock=BlockedClock())
    repl.start()
    try:
        _wait_until(lambda: repl.status.activity is Level.OFFLINE)
        with pytest.raises(TimeoutError) as caught:
            repl.wait_for(Level.IDLE, timeout=0.2)
        assert str(caught.value).startswith(f"{repl.name}: still OFFLINE")
    finally:
        repl.stop()
    assert repl.status.activity is Level.STOPPED


def test_wait_for_messages_use_the_async_replicators_name(db: Database) -> None:
    async def main() -> str:
        repl = AsyncReplicator(_config(db), clock=BlockedClock())
        async with repl:
            for _ in range(1000):
                if repl.status.activity is Level.OFFLINE:
                    break
                await asyncio.sleep(0.01)
            with pytest.raises(TimeoutError) as caught:
                await repl.wait_for(Level.IDLE, timeout=0.2)
            assert str(caught.value).startswith(f"{repl.name}: still OFFLINE")
        return repl.name

    assert re.fullmatch(r"repl-\d+", run(main()))


def test_the_sync_server_certificate_says_it_is_kept_when_refused() -> None:
    # The API reference is made from these docstrings: the façade must not lose the note.
    doc = inspect.getdoc(Replicator.server_certificate) or ""
    assert "refused" in doc
    assert doc == inspect.getdoc(AsyncReplicator.server_certificate)
