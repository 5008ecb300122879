"""``couchlite identity ...`` through click's CliRunner, in a temporary key store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("click")
pytest.importorskip("rich")

from click.testing import CliRunner

from couchlite import KeyStore, TLSIdentity
from couchlite.cli import main

pytestmark = pytest.mark.timeout(60)


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, ["identity", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_create_list_show_export_import_delete(keystore_env: Path, tmp_path: Path) -> None:
    out = _run("create", "laptop", "--cn", "laptop.local", "--ip", "127.0.0.1", "--client")
    assert "created" in out and "passphrase" in out
    _run("create", "fleet-ca", "--cn", "Fleet CA", "--ca", "--no-server", "--days", "30")
    _run("create", "truck", "--cn", "truck-7", "--no-server", "--client", "--issuer", "fleet-ca")
    listing = _run("list")
    for label in ("laptop", "fleet-ca", "truck"):
        assert label in listing
    shown = _run("show", "truck")
    assert "CN=truck-7" in shown and "CN=Fleet CA" in shown and "SHA-256" in shown
    p12 = tmp_path / "truck.p12"
    out = _run("export", "truck", str(p12), "--password-env", "P12_PW", env={"P12_PW": "s3cret"})
    assert "exported" in out
    assert p12.stat().st_mode & 0o077 == 0
    imported = TLSIdentity.import_identity(p12.read_bytes(), "s3cret")
    assert imported.certificates[0].subject.rfc4514_string() == "CN=truck-7"
    pem = tmp_path / "truck.pem"
    _run("export", "truck", str(pem), "--format", "pem", "--password-env", "P", env={"P": "x"})
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in pem.read_bytes()
    assert b"BEGIN PRIVATE KEY" not in pem.read_bytes()
    cert = tmp_path / "truck.crt"
    _run("export", "truck", str(cert), "--format", "cert")
    assert b"PRIVATE KEY" not in cert.read_bytes()
    _run("import", "truck-copy", str(p12), "--password-env", "P12_PW", env={"P12_PW": "s3cret"})
    _run("delete", "truck", "--yes")
    assert KeyStore().labels() == ["fleet-ca", "laptop", "truck-copy"]


def test_errors_are_one_line_and_exit_1(keystore_env: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["identity", "show", "missing"])
    assert result.exit_code == 1
    assert "no TLS identity labelled 'missing'" in result.output
    bad = tmp_path / "bad.p12"
    bad.write_bytes(b"garbage")
    result = runner.invoke(
        main, ["identity", "import", "x", str(bad), "--password-env", "P"], env={"P": "p"}
    )
    assert result.exit_code == 1 and "PKCS#12" in result.output
    result = runner.invoke(main, ["identity", "create", "x", "--cn", "x", "--country", "USA"])
    assert result.exit_code == 1


def test_passphrase_prompt_and_keystore_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COUCHLITE_KEYSTORE_PASSPHRASE")
    folder = tmp_path / "other-store"
    result = CliRunner().invoke(
        main,
        ["identity", "--keystore", str(folder), "--ask-passphrase", "create", "p", "--cn", "p"],
        input="typed passphrase\n",
    )
    assert result.exit_code == 0, result.output
    assert KeyStore(folder, passphrase="typed passphrase").load("p").label == "p"


def test_the_library_imports_without_click_or_rich() -> None:
    code = (
        "import sys\n"
        "sys.modules['click'] = None; sys.modules['rich'] = None\n"
        "import couchlite, couchlite.tls, couchlite.listener\n"
        "assert 'click' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
