"""Without zeroconf installed (hidden from a subprocess by a meta-path blocker): couchlite
works, ``couchlite.discovery`` says which extra to install, and so does ``advertise=True``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

BLOCKER = """
import importlib.abc, sys

class _NoZeroconf(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "zeroconf" or name.startswith("zeroconf."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoZeroconf())
"""


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = BLOCKER + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )


def test_importing_discovery_names_the_extra(tmp_path: Path) -> None:
    out = _run(
        """
        import couchlite
        from couchlite import DiscoveryError  # the error class needs no zeroconf
        try:
            import couchlite.discovery
        except ImportError as exc:
            print("ImportError:", exc)
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "ImportError: couchlite.discovery needs the zeroconf package" in out.stdout
    assert "pip install 'couchlite[discovery]'" in out.stdout


def test_advertise_without_zeroconf_fails_at_start_with_the_hint(tmp_path: Path) -> None:
    out = _run(
        """
        from couchlite import (ConfigurationError, Database, DatabaseConfiguration,
                               UrlEndpointListener, UrlEndpointListenerConfiguration)
        with Database("db", DatabaseConfiguration(directory="data")) as db:
            plain = UrlEndpointListenerConfiguration(
                collections=[db.default_collection()], network_interface="127.0.0.1",
                disable_tls=True)
            with UrlEndpointListener(plain) as listener:   # no advertising: no zeroconf needed
                print("plain listener on", listener.port)
            config = UrlEndpointListenerConfiguration(
                collections=[db.default_collection()], network_interface="127.0.0.1",
                disable_tls=True, advertise=True)
            listener = UrlEndpointListener(config)
            try:
                listener.start()
            except ConfigurationError as exc:
                print("ConfigurationError:", exc)
            print("listening:", listener.is_listening)
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "plain listener on" in out.stdout
    assert "ConfigurationError: advertise=True needs the zeroconf package" in out.stdout
    assert "pip install 'couchlite[discovery]'" in out.stdout
    assert "listening: False" in out.stdout
