"""A Replicator in its own process, driven by JSON lines (see ``peers.ReplicatorProcess``).

    python replicator_proc.py  < JSON lines: the options, then commands

Document bodies (``docs``, ``put``) may hold ``{"@blob": base64, "content_type": ...}`` for a
blob. Options: ``directory``, ``db``, ``url``, ``docs`` ({id: body} created first), ``type``
(push/pull/pushpull), ``continuous``, ``auth`` ([user, password]), ``pinned_cert`` (PEM),
``accept_only_self_signed``, ``trusted_roots`` ([PEM]), ``headers``, ``config`` (any other
``ReplicatorConfiguration`` attribute by name: heartbeat, max_attempts, max_message_size...),
``collection`` (``CollectionConfiguration`` fields: ``document_ids``; ``push_filter_ids`` /
``pull_filter_ids``: filters admitting only those IDs), ``start`` (default true),
``max_lifetime``.

Prints ``{"event": "ready"}``, then one ``{"event": "status", ...}`` line per status change and
one ``{"event": "documents", ...}`` line per batch of replicated documents, errors included.
Commands on stdin are answered with ``{"reply": op, ...}``: ``status``, ``dump``, ``revs``,
``put``, ``delete``, ``start``, ``stop_replicator``, ``missing_blobs``, ``stop``. End of stdin
stops the replicator and exits.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from couchlite import (
    BasicAuthenticator,
    CollectionConfiguration,
    CouchliteError,
    Database,
    DocumentReplication,
    Replicator,
    ReplicatorChange,
    ReplicatorConfiguration,
    ReplicatorStatus,
    ReplicatorType,
)
from tests.adversarial.childproc import (
    document_command,
    emit,
    hard_exit_after,
    open_database,
    read_options,
    seed,
    serve,
)

EXIT_GRACE_S = 30.0
TYPES = {
    "push": ReplicatorType.PUSH,
    "pull": ReplicatorType.PULL,
    "pushpull": ReplicatorType.PUSH_AND_PULL,
}


def error_dict(error: BaseException | None) -> dict[str, Any] | None:
    if error is None:
        return None
    if isinstance(error, CouchliteError):
        return {
            "type": type(error).__name__,
            "domain": str(error.domain),
            "code": error.code,
            "message": error.message,
            "transient": error.is_transient,
        }
    return {"type": type(error).__name__, "domain": None, "code": None, "message": str(error)}


def status_dict(status: ReplicatorStatus) -> dict[str, Any]:
    return {
        "activity": status.activity.name,
        "completed": status.progress.completed,
        "total": status.progress.total,
        "error": error_dict(status.error),
    }


def _id_filter(ids: list[str]) -> Any:
    allowed = frozenset(ids)
    return lambda doc, flags: doc.id in allowed


def build(options: dict[str, Any], database: Database) -> Replicator:
    config = ReplicatorConfiguration(target=options["url"])
    config.replicator_type = TYPES[options.get("type", "pushpull")]
    config.continuous = bool(options.get("continuous", False))
    if options.get("auth"):
        config.authenticator = BasicAuthenticator(*options["auth"])
    if options.get("pinned_cert"):
        config.pinned_server_certificate = options["pinned_cert"].encode("ascii")
    if options.get("accept_only_self_signed"):
        config.accept_only_self_signed_server_certificate = True
    if options.get("trusted_roots"):
        config.trusted_root_certificates = [p.encode("ascii") for p in options["trusted_roots"]]
    if options.get("headers"):
        config.headers = dict(options["headers"])
    for name, value in options.get("config", {}).items():
        if not hasattr(config, name):
            raise AttributeError(f"ReplicatorConfiguration has no field {name!r}")
        setattr(config, name, value)
    fields = dict(options.get("collection", {}))
    push_ids = fields.pop("push_filter_ids", None)
    pull_ids = fields.pop("pull_filter_ids", None)
    collection_config = CollectionConfiguration(**fields)
    if push_ids is not None:
        collection_config.push_filter = _id_filter(push_ids)
    if pull_ids is not None:
        collection_config.pull_filter = _id_filter(pull_ids)
    config.add_collection(database.default_collection(), collection_config)
    replicator = Replicator(config)

    def on_change(change: ReplicatorChange) -> None:
        emit({"event": "status", **status_dict(change.status)})

    def on_documents(replication: DocumentReplication) -> None:
        docs = [
            {"id": d.id, "flags": int(d.flags), "error": error_dict(d.error)}
            for d in replication.documents
        ]
        emit({"event": "documents", "is_push": replication.is_push, "docs": docs})

    replicator.add_change_listener(on_change)
    replicator.add_document_replication_listener(on_documents)
    return replicator


def handle(command: dict[str, Any], database: Database, replicator: Replicator) -> Any:
    op = command["op"]
    collection = database.default_collection()
    if op == "status":
        return status_dict(replicator.status)
    if op == "start":
        replicator.start(reset=bool(command.get("reset", False)))
        return {}
    if op == "stop_replicator":
        replicator.stop()
        return status_dict(replicator.status)
    return document_command(command, collection)


def main() -> int:
    options = read_options()
    database = open_database(options)
    collection = database.default_collection()
    seed(database, collection, options.get("docs"))
    replicator = build(options, database)
    if options.get("start", True):
        replicator.start()
    emit({"event": "ready", "pid": os.getpid(), "count": collection.count})
    try:
        serve(lambda command: handle(command, database, replicator))
    finally:
        hard_exit_after(EXIT_GRACE_S, 3)
        replicator.stop()
        final = status_dict(replicator.status)
        database.close()
        emit({"reply": "stop", "stopped": True, **final})
    return 0


if __name__ == "__main__":
    sys.exit(main())
