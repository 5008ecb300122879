"""A listener in its own process, driven by JSON lines (see ``peers.ListenerProcess``).

    python listener_proc.py  < JSON lines: the options, then commands

Document bodies (``docs``, ``put``) may hold ``{"@blob": base64, "content_type": ...}`` for a
blob. Options: ``directory``, ``db`` (database name), ``docs`` ({id: body} created first),
``collections`` (extra "scope.name" collections, served too), ``tls`` (bool), ``auth``
([user, password] or {"user", "password", "delay"}: a password check taking ``delay`` seconds),
``cert_auth`` ({"roots": [PEM]} or {"chain_ends_with": PEM}: the naive callback
``chain[-1] == ca``), ``read_only``, ``config`` (extra ``UrlEndpointListenerConfiguration``
keyword arguments), ``log_level``, ``max_lifetime`` (seconds before the process exits on its
own, so that it can never outlive a test run).

Prints ``{"event": "ready", ...}`` (port, urls, certificate PEM, pid), then answers each command
read from stdin with one ``{"reply": op, ...}`` line: ``status``, ``dump``, ``revs``, ``put``,
``delete``, ``tasks``, ``missing_blobs``, ``stop``. End of stdin stops the listener and exits.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from typing import Any

from cryptography import x509

from couchlite import (
    Blob,
    Collection,
    Database,
    ListenerCertificateAuthenticator,
    ListenerPasswordAuthenticator,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
    _runtime,
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

#: Once stdin has closed, the process exits within this many seconds whatever happens.
EXIT_GRACE_S = 15.0


def _authenticator(options: dict[str, Any]) -> Any:
    auth = options.get("auth")
    if auth:
        if isinstance(auth, dict):
            user, password, delay = auth["user"], auth["password"], float(auth.get("delay", 0))
        else:
            (user, password), delay = auth, 0.0

        def check(u: str, p: str) -> bool:
            if delay:
                time.sleep(delay)
            return (u, p) == (user, password)

        return ListenerPasswordAuthenticator(check)
    cert_auth = options.get("cert_auth")
    if cert_auth:
        if "roots" in cert_auth:
            return ListenerCertificateAuthenticator.from_roots(
                [pem.encode("ascii") for pem in cert_auth["roots"]]
            )
        ca = x509.load_pem_x509_certificate(cert_auth["chain_ends_with"].encode("ascii"))
        return ListenerCertificateAuthenticator(lambda chain: bool(chain) and chain[-1] == ca)
    return None


def _collection(database: Database, full_name: str | None) -> Collection:
    if not full_name or full_name == "_default._default":
        return database.default_collection()
    scope, _, name = full_name.rpartition(".")
    found = database.collection(name, scope or None)
    if found is None:
        raise KeyError(f"no collection {full_name}")
    return found


def _blob_missing(value: Any) -> bool:
    if isinstance(value, Blob):
        try:
            value.content  # noqa: B018 - reading it is the check
        except Exception:
            return True
        return False
    if isinstance(value, dict):
        return any(_blob_missing(v) for v in value.values())
    if isinstance(value, list):
        return any(_blob_missing(v) for v in value)
    return False


def _count_tasks() -> int:
    async def count() -> int:
        return len(asyncio.all_tasks())

    return _runtime.loop_thread().run(count(), 10)


def handle(command: dict[str, Any], database: Database, listener: UrlEndpointListener) -> Any:
    op = command["op"]
    if op == "status":
        status = listener.status
        return {
            "connections": status.connection_count,
            "active": status.active_connection_count,
            "listening": listener.is_listening,
        }
    collection = _collection(database, command.get("collection"))
    if op == "tasks":
        return {"tasks": _count_tasks(), "threads": threading.active_count()}
    if op == "missing_blobs":
        missing = []
        for doc_id in collection.document_ids():
            doc = collection.get(doc_id)
            if doc is not None and _blob_missing(doc.to_dict()):
                missing.append(doc_id)
        return {"missing": missing}
    return document_command(command, collection)


def main() -> int:
    options = read_options()
    database = open_database(options)
    collections = [database.default_collection()]
    for full_name in options.get("collections", []):
        scope, _, name = full_name.rpartition(".")
        collections.append(
            database.collection(name, scope or None) or database.create_collection(name, scope)
        )
    seed(database, collections[0], options.get("docs"))
    config = UrlEndpointListenerConfiguration(
        collections=collections,
        network_interface="127.0.0.1",
        disable_tls=not options.get("tls", False),
        authenticator=_authenticator(options),
        read_only=options.get("read_only", False),
        **options.get("config", {}),
    )
    listener = UrlEndpointListener(config)
    listener.start()
    identity = listener.tls_identity
    emit(
        {
            "event": "ready",
            "pid": os.getpid(),
            "port": listener.port,
            "urls": listener.urls,
            "certificate": identity.certificates_pem().decode() if identity else None,
        }
    )
    try:
        serve(lambda command: handle(command, database, listener))
    finally:
        hard_exit_after(EXIT_GRACE_S, 3)
        listener.stop()
        database.close()
        emit({"reply": "stop", "stopped": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
