"""The one module of the CLI that knows ``couchlite.discovery`` (mDNS/DNS-SD peer discovery).

``serve --advertise``, ``sync --discover NAME``, ``sync --fingerprint HEX`` and ``peers`` go
through here. Discovery is an optional extra (``pip install 'couchlite[discovery]'``, which
brings zeroconf): the module is imported only when one of those options is used, and when it
cannot be imported the command fails with one line saying which extra it needs (exit code 1),
never with a traceback. Peers are handed to the commands as plain dicts (what ``--json``
prints), so nothing else depends on the discovery classes.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from couchlite import (
    CouchliteError,
    NotFoundError,
    ReplicatorConfiguration,
    UrlEndpointListenerConfiguration,
)
from couchlite.cli._common import CommandError

EXTRA_HINT = "pip install 'couchlite[discovery]'"


def _module() -> ModuleType:
    try:
        return importlib.import_module("couchlite.discovery")
    except ImportError as exc:
        missing = exc.name or "couchlite.discovery"
        raise CommandError(
            f"discovery needs the 'discovery' extra ({missing} is missing): {EXTRA_HINT}"
        ) from exc


def require() -> None:
    """Fail now (before anything is opened or created) if discovery cannot be used."""
    _module()


def available() -> bool:
    """Whether discovery can be used here (for tests and help texts)."""
    try:
        _module()
    except CommandError:
        return False
    return True


def peer_dict(peer: Any) -> dict[str, Any]:
    """A ``DiscoveredPeer`` as JSON-ready data."""
    return {
        "name": peer.name,
        "addresses": list(peer.addresses),
        "port": peer.port,
        "database": peer.database,
        "collections": list(peer.collections),
        "tls": peer.tls,
        "fingerprint": peer.fingerprint,
        "auth": peer.auth,
        "protocols": list(peer.protocols) if peer.protocols is not None else None,
        "peer_id": peer.peer_id,
        "url": peer.endpoint().url,
        "txt": dict(peer.txt) if peer.txt is not None else None,
    }


def peers(*, timeout: float, interfaces: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The peers found within ``timeout`` seconds."""
    found = _module().peers(interfaces=interfaces, timeout=timeout)
    return [peer_dict(peer) for peer in found]


@contextmanager
def browse(
    *, timeout: float | None, interfaces: Sequence[str] | None = None
) -> Iterator[Iterator[tuple[str, dict[str, Any]]]]:
    """``(kind, peer)`` events ("added", "updated", "removed") until ``timeout`` (``None``:
    until the caller stops)."""
    with _module().browse(interfaces=interfaces, timeout=timeout) as browser:
        yield ((event.kind, peer_dict(event.peer)) for event in browser)


def find(name: str, *, timeout: float, interfaces: Sequence[str] | None = None) -> dict[str, Any]:
    """The peer advertised as ``name``; ``NotFoundError`` (exit code 3) when none answers in
    time."""
    module = _module()
    try:
        peer = module.find_peer(name, interfaces=interfaces, timeout=timeout)
    except CouchliteError as exc:
        if isinstance(exc, module.DiscoveryError) and not isinstance(exc, NotFoundError):
            # nobody answered to that name: "not found" to scripts (exit code 3)
            raise NotFoundError(exc.message) from exc
        raise
    return peer_dict(peer)


def advertise(config: UrlEndpointListenerConfiguration, service_name: str | None) -> None:
    """Make the listener advertise itself over DNS-SD."""
    _module()  # the listener itself needs the extra to advertise
    # setattr: these fields come with the discovery feature, absent from older configurations
    setattr(config, "advertise", True)  # noqa: B010
    if service_name is not None:
        setattr(config, "service_name", service_name)  # noqa: B010


def service_name(listener: Any) -> str | None:
    """The name a started listener advertises under (``None`` if it does not advertise)."""
    name = getattr(listener, "service_name", None)
    return name if isinstance(name, str) else None


def fingerprint_option(fingerprint: str) -> dict[str, Any]:
    """The ``ReplicatorConfiguration`` keyword that pins the server's leaf certificate by its
    SHA-256 (lowercase hex, colons and case ignored)."""
    cleaned = fingerprint.replace(":", "").strip().lower()
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise CommandError(f"--fingerprint {fingerprint!r}: expected a SHA-256 as 64 hex digits", 2)
    if "server_fingerprint" not in inspect.signature(ReplicatorConfiguration).parameters:
        raise CommandError(
            "--fingerprint needs the 'discovery' extra (server certificate fingerprints): "
            f"{EXTRA_HINT}; or pin the certificate itself with --pin FILE"
        )
    return {"server_fingerprint": cleaned}


__all__ = [
    "advertise",
    "available",
    "browse",
    "find",
    "fingerprint_option",
    "peer_dict",
    "peers",
    "require",
    "service_name",
]
