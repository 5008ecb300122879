"""``exit_code_of``: the library's errors onto the documented exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from couchlite import DatabaseError, LiteCoreCode, NotFoundError
from couchlite.cli._common import EXIT_BUSY, EXIT_ERROR, EXIT_NOT_FOUND, exit_code_of
from couchlite.storage.sqlite_store import SQLiteStore


def test_the_stores_no_database_is_not_found(tmp_path: Path) -> None:
    # what a read command meets when the folder goes between its check and its open
    with pytest.raises(DatabaseError) as caught:
        SQLiteStore.open_folder(tmp_path, read_only=True)
    assert exit_code_of(caught.value) == EXIT_NOT_FOUND
    assert exit_code_of(NotFoundError("no document")) == EXIT_NOT_FOUND
    assert exit_code_of(DatabaseError("refused", code=LiteCoreCode.NOT_WRITEABLE)) == EXIT_BUSY
    assert exit_code_of(DatabaseError("broken", code=LiteCoreCode.CORRUPT_DATA)) == EXIT_ERROR
