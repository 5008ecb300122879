"""A passive couchlite peer in its own process, driven over stdin/stdout with JSON lines.

Started by the integration tests (``PeerProcess`` in ``peer_harness.py``)::

    python tests/integration/peer.py --dir D --db NAME [--tls] [--user U --password P]
        [--read-only] [--collection scope.name ...]

It opens the database, starts a ``UrlEndpointListener`` on 127.0.0.1 (free port) and prints one
JSON line ``{"port": ..., "urls": [...], "cert_pem": ..., "event_loop": ...}``. Then it answers
commands, one JSON object per line, with one JSON line each:

* ``{"op": "put", "collection": "scope.name", "id": ..., "body": {...}}`` -> ``{"rev": ...}``
* ``{"op": "delete", "collection": ..., "id": ...}`` -> ``{"rev": ...}``
* ``{"op": "dump", "collection": ...}`` -> ``{"docs": {id: {"rev": ..., "body": {...}}}}``
* ``{"op": "count", "collection": ...}`` -> ``{"count": n}`` (live documents)
* ``{"op": "status"}`` -> ``{"connections": n, "active": n}``
* ``{"op": "stop"}`` -> ``{"stopped": true}`` then exits
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
    ListenerPasswordAuthenticator,
    MutableDocument,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
)


def reply(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--read-only", action="store_true")
    parser.add_argument("--collection", action="append", default=[])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    db = Database(args.db, DatabaseConfiguration(directory=args.dir))
    collections = {}
    for full in args.collection or ["_default._default"]:
        scope, name = full.split(".", 1)
        collections[full] = db.create_collection(name, scope=scope)
    config = UrlEndpointListenerConfiguration(collections=list(collections.values()))
    config.port = args.port
    config.network_interface = "127.0.0.1"
    config.disable_tls = not args.tls
    config.read_only = args.read_only
    if args.user:
        user, password = args.user, args.password

        def check(username: str, given: str) -> bool:
            return username == user and given == password

        config.authenticator = ListenerPasswordAuthenticator(check)
    listener = UrlEndpointListener(config)
    listener.start()
    cert_pem = None
    if listener.tls_identity is not None:
        from cryptography.hazmat.primitives.serialization import Encoding

        cert_pem = listener.tls_identity.certificates[0].public_bytes(Encoding.PEM).decode()
    # (the library's own loop, which the listener runs on: its module names its kind)
    from couchlite._runtime import loop_thread

    event_loop = type(loop_thread().loop).__module__.split(".")[0]
    reply(
        {
            "port": listener.port,
            "urls": listener.urls,
            "cert_pem": cert_pem,
            "event_loop": event_loop,
        }
    )

    def coll(cmd: dict[str, Any]) -> Any:
        return collections[cmd.get("collection", "_default._default")]

    for line in sys.stdin:
        cmd = orjson.loads(line)
        op = cmd["op"]
        if op == "put":
            col = coll(cmd)
            existing = col.get(cmd["id"])
            doc = existing.to_mutable() if existing is not None else MutableDocument(cmd["id"])
            doc.set_data(cmd["body"])
            col.save(doc)
            reply({"rev": doc.revision_id})
        elif op == "delete":
            col = coll(cmd)
            doc = col.get(cmd["id"])
            col.delete(doc)
            reply({"rev": doc.revision_id})
        elif op == "dump":
            col = coll(cmd)
            docs = {}
            for doc_id in col.document_ids():
                doc = col.get(doc_id)
                docs[doc_id] = {"rev": doc.revision_id, "body": orjson.loads(doc.to_json())}
            reply({"docs": docs})
        elif op == "count":
            reply({"count": coll(cmd).count})
        elif op == "status":
            status = listener.status
            reply(
                {"connections": status.connection_count, "active": status.active_connection_count}
            )
        elif op == "stop":
            listener.stop()
            db.close()
            reply({"stopped": True})
            return 0
    listener.stop()
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
