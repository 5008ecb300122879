"""Test data the project owns (copied from the shared ground truth, so that a clone anywhere
runs every test)."""

from pathlib import Path

#: Real Couchbase Lite 3.2 replication sessions, frame by frame (see interop/README.md).
INTEROP = Path(__file__).resolve().parent / "interop"
