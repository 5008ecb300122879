"""Child process of ``test_crash.py``: writes two batches, reporting where it is on stdout.

``python crash_writer.py DIRECTORY N_FIRST N_SECOND`` opens the database ``crash`` in DIRECTORY,
commits a first batch of N_FIRST documents (``first-<i>``, ``{"v": 1}``), then starts a second
``in_batch`` that updates every first document to ``{"v": 2}``, saves N_SECOND new documents
(``second-<i>``, ~200-byte bodies, a small blob on every 1000th) one by one, and commits. Lines:

``first-committed`` / ``started`` / ``progress <i>`` (every 2000 saves) / ``committing`` (the
last statement inside the ``with`` block) / ``committed``; then it waits on stdin for ever, so
the parent decides when it dies (SIGKILL). ``python crash_writer.py --hold DIRECTORY`` only opens
the database, prints ``open`` and waits.
"""

from __future__ import annotations

import sys

from couchlite import Blob, Database, DatabaseConfiguration, MutableDocument

NAME = "crash"
PAD = "x" * 160


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> None:
    if argv[0] == "--hold":
        db = Database(NAME, DatabaseConfiguration(directory=argv[1]))
        db.default_collection().save(MutableDocument("held", {"by": "child"}))
        say("open")
        sys.stdin.read()
        return
    directory, n_first, n_second = argv[0], int(argv[1]), int(argv[2])
    db = Database(NAME, DatabaseConfiguration(directory=directory))
    col = db.default_collection()
    with db.in_batch():
        for i in range(n_first):
            col.save(MutableDocument(f"first-{i:06d}", {"v": 1, "i": i}))
    say("first-committed")
    say("started")
    with db.in_batch():
        for i in range(n_first):
            doc = col.get(f"first-{i:06d}")
            assert doc is not None
            mutable = doc.to_mutable()
            mutable["v"] = 2
            col.save(mutable)
        for i in range(n_second):
            props: dict[str, object] = {"v": 2, "i": i, "pad": PAD}
            if i % 1000 == 0:
                props["att"] = Blob("application/octet-stream", f"blob-{i}".encode() * 50)
            col.save(MutableDocument(f"second-{i:06d}", props))
            if i % 2000 == 0:
                say(f"progress {i}")
        say("committing")
    say("committed")
    sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1:])
