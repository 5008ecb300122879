"""The passive side of the replication benchmark, in its own process.

``python -m bench.replication_peer DIR [--tls]`` opens database ``server`` in DIR, starts a
listener on 127.0.0.1 and prints ``{"port": ..., "cert_pem": ...}``. Each line on stdin is a
command: ``count`` prints the number of documents, ``rss`` the peak resident memory in MiB,
``quit`` stops.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import orjson

from couchlite import (
    Database,
    DatabaseConfiguration,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
)


def peak_rss_mib() -> float:
    """This process's peak resident memory. ``VmHWM`` belongs to this program image, whereas
    ``ru_maxrss`` survives exec and would report the parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    directory = Path(sys.argv[1])
    tls = "--tls" in sys.argv[2:]
    db = Database("server", DatabaseConfiguration(directory=directory))
    config = UrlEndpointListenerConfiguration(collections=[db.default_collection()])
    config.network_interface = "127.0.0.1"
    config.disable_tls = not tls
    listener = UrlEndpointListener(config)
    listener.start()
    cert_pem = None
    if listener.tls_identity is not None:
        from cryptography.hazmat.primitives.serialization import Encoding

        cert_pem = listener.tls_identity.certificates[0].public_bytes(Encoding.PEM).decode()
    print(orjson.dumps({"port": listener.port, "cert_pem": cert_pem}).decode(), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "count":
            print(db.default_collection().count, flush=True)
        elif command == "rss":
            print(peak_rss_mib(), flush=True)
        elif command == "quit":
            break
    listener.stop()
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
