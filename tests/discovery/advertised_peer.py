"""A listener in its own process, advertised by DNS-SD on 127.0.0.1.

Usage: ``python advertised_peer.py '<json options>'`` with ``directory``, ``name`` (the service
name), ``tls`` (bool), ``new_identity`` (bool: a fresh self-signed identity instead of the
database's anonymous one), ``password`` (required with user ``me``, or null), ``docs``
({id: body} saved first).

Prints JSON lines: ``listening`` (port, service name, fingerprint), then obeys stdin: ``stop``
stops the listener (the process stays, answering ``stopped``), ``dump`` lists the documents;
end of stdin exits.
"""

from __future__ import annotations

import hashlib
import json
import sys

from cryptography.hazmat.primitives.serialization import Encoding

from couchlite import (
    Database,
    DatabaseConfiguration,
    KeyUsage,
    ListenerPasswordAuthenticator,
    MutableDocument,
    TLSIdentity,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
)


def emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main() -> int:
    options = json.loads(sys.argv[1])
    database = Database("laptop", DatabaseConfiguration(directory=options["directory"]))
    collection = database.default_collection()
    for doc_id, body in options.get("docs", {}).items():
        collection.save(MutableDocument(doc_id, body))
    password = options.get("password")
    config = UrlEndpointListenerConfiguration(
        collections=[collection],
        network_interface="127.0.0.1",
        disable_tls=not options.get("tls", True),
        advertise=True,
        service_name=options["name"],
    )
    if password:
        config.authenticator = ListenerPasswordAuthenticator(
            lambda u, p: (u, p) == ("me", password)
        )
    if options.get("new_identity"):
        config.tls_identity = TLSIdentity.create_identity(
            KeyUsage.SERVER_AUTH, {"CN": "laptop", "IP": "127.0.0.1"}
        )
    listener = UrlEndpointListener(config)
    listener.start()
    identity = listener.tls_identity
    fingerprint = None
    if identity is not None:
        der = identity.certificates[0].public_bytes(Encoding.DER)
        fingerprint = hashlib.sha256(der).hexdigest()
    emit(
        {
            "event": "listening",
            "port": listener.port,
            "service_name": listener.service_name,
            "fingerprint": fingerprint,
        }
    )
    for line in sys.stdin:
        command = line.strip()
        if command == "stop":
            listener.stop()
            emit({"event": "stopped"})
        elif command == "dump":
            emit({"event": "dump", "ids": sorted(collection.document_ids())})
    listener.stop()
    database.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
