"""A passive peer in its own process: a database behind a ``UrlEndpointListener``.

Usage: ``python listener_peer.py '<json options>'`` with ``directory``, ``docs`` ({id: body} to
create first), ``tls`` (bool), ``auth`` ([user, password] or null), ``read_only`` (bool).

Prints one JSON event per line: ``listening`` (port, urls, certificate PEM), then answers the
commands it reads from stdin: ``status`` and ``dump`` (the documents). End of stdin stops the
listener and exits 0.
"""

from __future__ import annotations

import json
import sys

from couchlite import (
    Database,
    DatabaseConfiguration,
    ListenerPasswordAuthenticator,
    MutableDocument,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
)


def emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main() -> int:
    options = json.loads(sys.argv[1])
    database = Database("passive", DatabaseConfiguration(directory=options["directory"]))
    collection = database.default_collection()
    for doc_id, body in options.get("docs", {}).items():
        collection.save(MutableDocument(doc_id, body))
    auth = options.get("auth")
    authenticator = None
    if auth:
        user, password = auth
        authenticator = ListenerPasswordAuthenticator(lambda u, p: (u, p) == (user, password))
    config = UrlEndpointListenerConfiguration(
        collections=[collection],
        network_interface="127.0.0.1",
        disable_tls=not options.get("tls", False),
        authenticator=authenticator,
        read_only=options.get("read_only", False),
    )
    listener = UrlEndpointListener(config)
    listener.start()
    identity = listener.tls_identity
    emit(
        {
            "event": "listening",
            "port": listener.port,
            "urls": listener.urls,
            "certificate": identity.certificates_pem().decode() if identity else None,
        }
    )
    for line in sys.stdin:
        command = line.strip()
        if command == "status":
            status = listener.status
            emit(
                {
                    "event": "status",
                    "connections": status.connection_count,
                    "active": status.active_connection_count,
                }
            )
        elif command == "dump":
            docs = {}
            for doc_id in collection.document_ids():
                doc = collection.get(doc_id)
                if doc is not None:
                    docs[doc_id] = doc.to_dict()
            emit({"event": "dump", "docs": docs})
    listener.stop()
    database.close()
    emit({"event": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
