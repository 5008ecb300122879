"""``peers``, ``serve --advertise`` and ``sync --discover`` go through ``cli/_discovery.py``.

Without ``couchlite.discovery`` (the ``discovery`` extra) each fails with one line naming the
extra; with it, a served database is found by name and synced with.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import orjson
import pytest

from .helpers import couchlite, json_lines, ok, one_line_error, serving

pytestmark = pytest.mark.timeout(180)


def _importable() -> bool:
    try:
        return importlib.util.find_spec("couchlite.discovery") is not None and bool(
            importlib.import_module("couchlite.discovery")
        )
    except ImportError:
        return False


HAVE_DISCOVERY = _importable()
needs_discovery = pytest.mark.skipif(
    not HAVE_DISCOVERY, reason="couchlite.discovery is not importable (the discovery extra)"
)


@pytest.mark.skipif(HAVE_DISCOVERY, reason="couchlite.discovery is importable here")
def test_without_the_extra_each_says_what_it_needs(tmp_path: Path) -> None:
    for args in (
        ("peers",),
        ("peers", "--watch", "--timeout", "1"),
        ("peers", "--json"),
        ("serve", tmp_path / "db", "--advertise", "--port", "0"),
        ("sync", tmp_path / "db", "--discover", "hub"),
    ):
        message = one_line_error(couchlite(*args), 1)
        assert "discovery needs the 'discovery' extra" in message, message
        assert "pip install 'couchlite[discovery]'" in message


#: Discovery on the loopback interface only: the tests stay on this machine.
LOOPBACK = {"COUCHLITE_DISCOVERY_INTERFACES": "127.0.0.1"}


@needs_discovery
def test_an_advertised_server_is_listed_and_synced_with_by_name(tmp_path: Path) -> None:
    ok("put", tmp_path / "hub", "doc", '{"n": 1}')
    name = f"cli-test-{tmp_path.name}"
    with serving(tmp_path / "hub", "--advertise", "--name", name, env=LOOPBACK) as (
        server,
        started,
    ):
        assert started["service_name"] == name
        found = json_lines(ok("peers", "--json", "--timeout", "5", env=LOOPBACK))
        peer = next(p for p in found if p["name"] == name)
        assert peer["port"] == started["port"] and peer["tls"] is True
        assert peer["fingerprint"] == started["fingerprint"]
        done = couchlite("sync", tmp_path / "phone", "--discover", name, "--pull", "--json",
                         env=LOOPBACK)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert orjson.loads(done.stdout)["pulled"] == 1
        code, _, _ = server.interrupt()
        assert code == 0


@needs_discovery
def test_discovering_a_name_nobody_advertises_is_not_found(tmp_path: Path) -> None:
    done = couchlite("sync", tmp_path / "phone", "--discover", "nobody-here", "--timeout", "1",
                     env=LOOPBACK)  # fmt: skip
    one_line_error(done, 3)
