"""The public surface: what api.md promises is importable from ``couchlite``.

Guarded by introspection, so that a new error class or a new export cannot slip past: every
``CouchliteError`` subclass defined anywhere in the package is importable from ``couchlite``
and ``couchlite.errors``, and ``__all__`` lists only real, public names.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import couchlite
import couchlite.errors

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


def _all_package_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(couchlite.__path__, "couchlite."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # runs the command line on import
        importlib.import_module(info.name)
        names.append(info.name)
    return names


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    pending = [cls]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found


def test_every_error_class_of_the_package_is_exported_from_both_modules() -> None:
    modules = _all_package_modules()
    assert "couchlite.transport.websocket" in modules and "couchlite.blip.errors" in modules
    errors = {
        cls
        for cls in _subclasses(couchlite.CouchliteError) | {couchlite.CouchliteError}
        if cls.__module__.split(".")[0] == "couchlite" and not cls.__name__.startswith("_")
    }
    assert {"ChannelClosed", "HandshakeRefused"} <= {cls.__name__ for cls in errors}
    missing = []
    for cls in sorted(errors, key=lambda c: c.__name__):
        for module in (couchlite, couchlite.errors):
            if cls.__name__ not in module.__all__ or getattr(module, cls.__name__, None) is not cls:
                missing.append(f"{module.__name__}.{cls.__name__} ({cls.__module__})")
    assert missing == []


def test_errors_are_importable_from_couchlite_errors_in_a_fresh_interpreter() -> None:
    # The lazily re-exported classes must resolve without importing anything else first.
    code = (
        "from couchlite.errors import ChannelClosed, HandshakeRefused, BlipLimitExceeded; "
        "import couchlite.errors as e; "
        "assert issubclass(ChannelClosed, e.NetworkError); "
        "assert 'RedirectRefused' in dir(e); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_all_is_sorted_unique_and_resolves() -> None:
    for module in (couchlite, couchlite.errors):
        names = list(module.__all__)
        assert names == sorted(set(names)), module.__name__
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_no_public_name_leaks_a_private_module() -> None:
    leaks = []
    for name in couchlite.__all__:
        obj = getattr(couchlite, name)
        module = getattr(obj, "__module__", None)
        if not isinstance(module, str) or not module.startswith("couchlite"):
            continue
        if any(part.startswith("_") for part in module.split(".")):
            leaks.append(f"{name} is defined in {module}")
    assert leaks == []


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


def test_one_version_for_the_package_its_metadata_and_its_headers() -> None:
    from importlib import metadata

    from couchlite.listener.listener import _server_header
    from couchlite.replicator.supervisor import _user_agent

    assert metadata.version("couchlite") == couchlite.__version__
    assert _server_header() == f"CouchbaseLite/{couchlite.__version__} (couchlite)"
    assert _user_agent().startswith(f"couchlite/{couchlite.__version__}")
