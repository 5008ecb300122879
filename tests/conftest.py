"""Shared fixtures: real databases in temporary folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from couchlite import Database, DatabaseConfiguration


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database("test", DatabaseConfiguration(directory=tmp_path))
    yield database
    database.close()
