"""An active couchlite peer in its own process (so that a test can kill it with SIGKILL).

    python tests/resilience/replicator_proc.py --dir D --db NAME --url ws://... [--docs N]
        [--kind push|pull|pushpull] [--heartbeat S]

Opens the database (creating ``--docs`` documents ``doc-NNNNN`` in one batch when it is empty),
starts a *continuous* replicator (backoff capped at 1 s) and prints ``{"ready": true, "count":
n}``. Then answers JSON-line commands on stdin:

* ``{"op": "status"}`` -> ``{"activity": "IDLE", "error": null, "count": n}``
* ``{"op": "stop"}`` -> stops the replicator, closes the database, ``{"stopped": true}``, exits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from couchlite import (
    Database,
    DatabaseConfiguration,
    MutableDocument,
    Replicator,
    ReplicatorConfiguration,
    ReplicatorType,
    UrlEndpoint,
)

KINDS = {
    "push": ReplicatorType.PUSH,
    "pull": ReplicatorType.PULL,
    "pushpull": ReplicatorType.PUSH_AND_PULL,
}


def reply(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--docs", type=int, default=0)
    parser.add_argument("--kind", choices=sorted(KINDS), default="push")
    parser.add_argument("--heartbeat", type=float, default=300.0)
    args = parser.parse_args()

    db = Database(args.db, DatabaseConfiguration(directory=args.dir))
    col = db.default_collection()
    if col.count == 0 and args.docs:
        with db.in_batch():
            for i in range(args.docs):
                col.save(MutableDocument(f"doc-{i:05d}", {"i": i, "text": "payload " * 8}))
    config = ReplicatorConfiguration(target=UrlEndpoint(args.url))
    config.add_collection(col)
    config.replicator_type = KINDS[args.kind]
    config.continuous = True
    config.heartbeat = args.heartbeat
    config.max_attempt_wait_time = 1.0
    repl = Replicator(config)
    repl.start()
    reply({"ready": True, "count": col.count})
    for line in sys.stdin:
        cmd = orjson.loads(line)
        if cmd["op"] == "status":
            status = repl.status
            error = None if status.error is None else str(status.error)
            reply({"activity": status.activity.name, "error": error, "count": col.count})
        elif cmd["op"] == "stop":
            repl.stop()
            db.close()
            reply({"stopped": True})
            return 0
    repl.stop()
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
