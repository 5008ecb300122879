"""The public surface: what api.md promises is importable from ``couchlite``."""

from __future__ import annotations

import subprocess
import sys

import couchlite

PROMISED = {
    "AsyncReplicator",
    "AsyncUrlEndpointListener",
    "BasicAuthenticator",
    "Blob",
    "Collection",
    "CollectionConfiguration",
    "Conflict",
    "DocumentFlags",
    "DocumentReplication",
    "ListenerPasswordAuthenticator",
    "Replicator",
    "ReplicatorActivityLevel",
    "ReplicatorChange",
    "ReplicatorConfiguration",
    "ReplicatorStatus",
    "ReplicatorType",
    "TLSIdentity",
    "UrlEndpoint",
    "UrlEndpointListener",
    "UrlEndpointListenerConfiguration",
    "CollectionChange",
    "ConcurrencyControl",
    "ConfigurationError",
    "ConflictError",
    "CouchliteError",
    "Database",
    "DatabaseClosedError",
    "DatabaseConfiguration",
    "Document",
    "DocumentChange",
    "InvalidArgumentError",
    "MutableDocument",
    "NetworkError",
    "NotFoundError",
    "AuthenticationError",
    "TLSError",
    "ProtocolError",
}


def test_promised_names_are_exported() -> None:
    assert set(couchlite.__all__) >= PROMISED
    for name in couchlite.__all__:
        assert hasattr(couchlite, name), name


def test_error_tree() -> None:
    for name in PROMISED:
        obj = getattr(couchlite, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, couchlite.CouchliteError)
    assert issubclass(couchlite.InvalidArgumentError, ValueError)
    err = couchlite.NetworkError("refused")
    assert err.is_transient and err.domain == "Network"
    assert not couchlite.TLSError("untrusted").is_transient


def test_import_has_no_side_effects() -> None:
    code = (
        "import sys, threading; before = threading.active_count(); import couchlite; "
        "assert threading.active_count() == before; "
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_demo_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", "couchlite.demo", "--local", "--directory", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "refused" in out.stdout and "done." in out.stdout
    assert (tmp_path / "shop.cblite2" / "db.sqlite3").exists()


def test_peer_to_peer_demo_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", "couchlite.demo", "--directory", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert "both databases identical: True" in out.stdout and "done." in out.stdout
    assert "merged on both sides" in out.stdout
