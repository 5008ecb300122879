"""Child process of ``test_read_only.py``: owns a database and keeps writing to it.

``python ro_owner.py DIRECTORY`` opens the database ``live`` in DIRECTORY, then saves
``doc-<i>`` (``{"i": i}``) for i = 0, 1, 2, ... printing ``wrote <i>`` after each commit, until
stdin has a line (or closes); then it prints its count of documents and exits.
"""

from __future__ import annotations

import select
import sys

from couchlite import Database, DatabaseConfiguration, MutableDocument


def main(directory: str) -> None:
    with Database("live", DatabaseConfiguration(directory=directory)) as db:
        col = db.default_collection()
        i = 0
        while True:
            col.save(MutableDocument(f"doc-{i}", {"i": i}))
            sys.stdout.write(f"wrote {i}\n")
            sys.stdout.flush()
            i += 1
            # a short pause between writes: the reader must see them arrive one by one
            ready, _, _ = select.select([sys.stdin], [], [], 0.01)
            if ready:
                break
        sys.stdout.write(f"count {col.count}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
