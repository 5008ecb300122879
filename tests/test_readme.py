"""Every ```python block of README.md runs, and so do its ``couchlite`` shell blocks.

Each block runs on its own, as a reader would paste it: in a fresh process, in a fresh empty
working directory, with the key store (``COUCHLITE_KEYSTORE``) and its passphrase pointing
into that directory and no OS keyring, bounded by a timeout. Shell blocks that run the
``couchlite`` command run under ``sh -e`` with ``couchlite`` meaning ``python -m couchlite`` of
this interpreter; the other shell blocks (``make demo``, ``make test``) are not run here.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
#: Bound on one block (the TLS recipe generates three RSA keys and replicates over TLS).
BLOCK_TIMEOUT_S = 120

_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^#+ (?P<title>.+)$", re.MULTILINE)

pytestmark = pytest.mark.timeout(BLOCK_TIMEOUT_S + 30)


def _blocks(language: str) -> list[tuple[str, str]]:
    """``(id, code)`` of every block fenced with ``language``; the id names its section."""
    text = README.read_text(encoding="utf-8")
    found: list[tuple[str, str]] = []
    for match in _FENCE.finditer(text):
        if match["lang"] != language:
            continue
        headings = _HEADING.findall(text, 0, match.start())
        section = headings[-1] if headings else "top"
        slug = re.sub(r"[^a-z0-9]+", "-", section.lower()).strip("-")
        found.append((f"{slug}-{len(found) + 1}", match["body"]))
    return found


def _cli_blocks() -> list[tuple[str, str]]:
    return [
        (name, code)
        for name, code in _blocks("sh")
        if re.search(r"^couchlite ", code, re.MULTILINE)
    ]


_PYTHON = _blocks("python")
_CLI = _cli_blocks()


def _environment(folder: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COUCHLITE_", "PYTEST_"))
    }
    env.update(
        COUCHLITE_KEYSTORE=str(folder / "keystore"),
        COUCHLITE_KEYSTORE_PASSPHRASE="readme passphrase",
        # Never touch a real keyring, should the keyring package be installed.
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        PYTHONWARNINGS="error::ResourceWarning",
    )
    return env


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``command`` as a reader would run it: no input, output captured as text, bounded."""
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )


def _report(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def test_the_readme_has_the_blocks_this_test_runs() -> None:
    assert len(_blocks("python")) >= 3
    assert len(_cli_blocks()) == 2  # TLS identities; the database commands
    quick_start = [code for _, code in _blocks("sh") if "make demo" in code]
    assert [line.split("#")[0].strip() for line in quick_start[0].splitlines()] == [
        "make demo",
        "make test",
    ]


def _has_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


@pytest.mark.parametrize(
    "event_loop",
    [
        "asyncio",
        pytest.param(
            "uvloop",
            marks=pytest.mark.skipif(not _has_uvloop(), reason="the fast extra is not installed"),
        ),
    ],
)
@pytest.mark.parametrize(("name", "code"), _PYTHON, ids=[name for name, _ in _PYTHON])
def test_python_block_runs(name: str, code: str, event_loop: str, tmp_path: Path) -> None:
    """On the standard loop and on uvloop (``$COUCHLITE_EVENT_LOOP``): a listener and a
    replicator in one process over wss:// is where uvloop once stalled the TLS handshake."""
    script = tmp_path / f"{name}.py"
    script.write_text(code, encoding="utf-8")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**_environment(tmp_path), "COUCHLITE_EVENT_LOOP": event_loop}
    check = "import couchlite._runtime as r; print(type(r.loop_thread().loop).__module__)\n"
    done = _run([sys.executable, "-c", check + code], cwd, env)
    assert done.returncode == 0, _report(done)
    assert done.stdout.splitlines()[0].startswith(event_loop), _report(done)


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
@pytest.mark.parametrize(("name", "code"), _CLI, ids=[name for name, _ in _CLI])
def test_cli_block_runs(name: str, code: str, tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    shim = 'couchlite() { "$COUCHLITE_TEST_PYTHON" -m couchlite "$@"; }\n'
    env = {**_environment(tmp_path), "COUCHLITE_TEST_PYTHON": sys.executable}
    done = _run(["sh", "-e", "-u", "-c", shim + code], cwd, env)
    assert done.returncode == 0, _report(done)
    if "couchlite identity create" not in code:
        return
    # The recipe's identities are in the key store, and usable from Python.
    check = "from couchlite import KeyStore\nstore = KeyStore()\nprint(' '.join(store.labels()))\n"
    listed = _run([sys.executable, "-c", check], cwd, _environment(tmp_path))
    assert listed.returncode == 0, _report(listed)
    assert listed.stdout.split(), _report(listed)
