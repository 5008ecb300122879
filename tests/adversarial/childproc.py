"""What ``listener_proc.py`` and ``replicator_proc.py`` share: the JSON-lines protocol on
stdin/stdout, the bounded lifetime, the database they open and the document commands.

Document bodies may hold ``{"@blob": base64, "content_type": ...}`` for a blob.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from couchlite import Blob, Collection, Database, DatabaseConfiguration, MutableDocument

_write_lock = threading.Lock()


def emit(obj: dict[str, Any]) -> None:
    line = json.dumps(obj, default=str)
    with _write_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def materialize(value: Any) -> Any:
    """A JSON body with ``{"@blob": base64, "content_type": ...}`` objects turned into blobs."""
    if isinstance(value, dict):
        if "@blob" in value:
            content = base64.b64decode(value["@blob"])
            return Blob(value.get("content_type", "application/octet-stream"), content)
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [materialize(v) for v in value]
    return value


def hard_exit_after(seconds: float, code: int) -> None:
    timer = threading.Timer(seconds, os._exit, args=(code,))
    timer.daemon = True
    timer.start()


def read_options() -> dict[str, Any]:
    """The options (the first line of stdin: they may be too big for a command line); arms
    the ``max_lifetime`` exit and sets up logging to stderr."""
    options: dict[str, Any] = json.loads(sys.stdin.readline())
    hard_exit_after(float(options.get("max_lifetime", 600)), 4)
    logging.basicConfig(
        level=options.get("log_level", "WARNING"),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return options


def open_database(options: dict[str, Any]) -> Database:
    return Database(options.get("db", "db"), DatabaseConfiguration(directory=options["directory"]))


def seed(database: Database, collection: Collection, docs: dict[str, Any] | None) -> None:
    """Create the documents of ``docs`` ({id: body}) that do not exist yet."""
    if docs:
        with database.in_batch():
            for doc_id, body in docs.items():
                if collection.get(doc_id) is None:
                    collection.save(MutableDocument(doc_id, materialize(body)))


def document_command(command: dict[str, Any], collection: Collection) -> dict[str, Any]:
    """Answer ``dump``, ``revs``, ``put`` or ``delete`` on ``collection``."""
    op = command["op"]
    if op == "dump":
        docs = {}
        for doc_id in collection.document_ids():
            doc = collection.get(doc_id)
            if doc is not None:
                docs[doc_id] = json.loads(doc.to_json())
        return {"docs": docs}
    if op == "revs":
        revs = {}
        for doc_id in collection.document_ids():
            doc = collection.get(doc_id)
            if doc is not None:
                revs[doc_id] = doc.revision_id
        return {"revs": revs}
    if op == "put":
        doc = collection.get(command["id"])
        mutable = doc.to_mutable() if doc is not None else MutableDocument(command["id"])
        mutable.set_data(materialize(command["body"]))
        collection.save(mutable)
        return {"rev": mutable.revision_id}
    if op == "delete":
        doc = collection.get(command["id"])
        if doc is not None:
            collection.delete(doc)
        return {"deleted": doc is not None}
    raise ValueError(f"unknown op {op!r}")


def serve(handle: Callable[[dict[str, Any]], Any]) -> None:
    """Answer each command read from stdin with one ``{"reply": op, ...}`` line (``failed``
    when ``handle`` raises), until a ``stop`` command or the end of stdin."""
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        if command["op"] == "stop":
            break
        try:
            result = handle(command)
            emit({"reply": command["op"], **result})
        except Exception as exc:
            emit({"reply": command["op"], "failed": f"{type(exc).__name__}: {exc}"})
