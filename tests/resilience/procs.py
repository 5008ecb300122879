"""The replicator in a subprocess (see ``replicator_proc.py``)."""

from __future__ import annotations

from pathlib import Path

from ..integration.peer_harness import JsonProcess

REPLICATOR = Path(__file__).with_name("replicator_proc.py")


def replicator_process(
    directory: Path, url: str, *, docs: int = 0, kind: str = "push", db: str = "client"
) -> JsonProcess:
    args = [str(REPLICATOR), "--dir", str(directory), "--db", db, "--url", url]
    args += ["--docs", str(docs), "--kind", kind]
    return JsonProcess(args)
