"""``couchlite identity ...`` through click's CliRunner, in a temporary key store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("click")
pytest.importorskip("rich")

import click
from click.testing import CliRunner

from couchlite import KeyStore, KeyUsage, TLSIdentity
from couchlite.cli import main
from tests.terminal import run_on_a_terminal

from .conftest import PASSPHRASE

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


# --- ``python -m couchlite``, help texts, secrets without a terminal ---------------------------


def _couchlite(
    *args: str, stdin_text: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m couchlite ARGS`` in a real process: stdin is ``stdin_text`` or /dev/null."""
    return subprocess.run(
        [sys.executable, "-m", "couchlite", *args],
        input=stdin_text,
        stdin=subprocess.DEVNULL if stdin_text is None else None,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80", **(env or {})},
    )


def test_python_dash_m_couchlite_is_the_console_script() -> None:
    done = _couchlite("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: couchlite ")
    script = Path(sys.executable).with_name("couchlite")
    if script.exists():  # the [project.scripts] entry point of an installed couchlite
        same = subprocess.run(
            [str(script), "--help"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "80"},
        )
        assert same.stdout == done.stdout
    version = _couchlite("--version")
    assert version.returncode == 0 and "version" in version.stdout


def _words(text: str) -> list[str]:
    return text.replace("\b", " ").split()


def _commands(group: click.Group) -> list[tuple[list[str], click.Command]]:
    found: list[tuple[list[str], click.Command]] = [([], group)]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += [([name, *path], sub) for path, sub in _commands(command)]
        else:
            found.append(([name], command))
    return found


def test_every_help_text_is_shown_whole() -> None:
    commands = _commands(main)
    assert len(commands) == 20  # couchlite, its twelve database commands, identity and its six
    for path, command in commands:
        result = CliRunner().invoke(main, [*path, "--help"], terminal_width=80)
        assert result.exit_code == 0, result.output
        assert command.help
        body = " ".join(_words(result.output))
        assert " ".join(_words(command.help)) in body, (path, result.output)
        listing = result.output.partition("Commands:")[2]
        assert "..." not in listing, listing
    # And in a real process (the console width click sees there is its own).
    done = _couchlite("identity", "--help")
    assert " ".join(_words(identity_help())) in " ".join(_words(done.stdout))


def identity_help() -> str:
    group = main.commands["identity"]
    assert group.help
    return group.help


def test_without_a_terminal_a_missing_secret_is_a_one_line_error(
    keystore_env: Path, tmp_path: Path
) -> None:
    TLSIdentity.create_identity(KeyUsage.CLIENT_AUTH, {"CN": "truck"}, label="truck")
    p12 = tmp_path / "truck.p12"
    p12.write_bytes(TLSIdentity.identity("truck").to_pkcs12("s3cret"))
    attempts = [
        ("identity", "export", "truck", str(tmp_path / "out.p12")),
        ("identity", "export", "truck", str(tmp_path / "out.pem"), "--format", "pem"),
        ("identity", "import", "copy", str(p12)),
        ("identity", "--ask-passphrase", "list"),
        ("identity", "delete", "truck"),
        ("identity", "export", "truck", str(tmp_path / "o.p12"), "--password-env", "UNSET_PW"),
    ]
    for args in attempts:
        done = _couchlite(*args)  # stdin is /dev/null
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, done.stderr)
        assert "GetPassWarning" not in done.stderr and "Aborted" not in done.stderr
    assert not (tmp_path / "out.p12").exists() and not (tmp_path / "out.pem").exists()
    assert KeyStore().labels() == ["truck"]


def test_without_a_terminal_secrets_come_from_the_environment_or_stdin(
    keystore_env: Path, tmp_path: Path
) -> None:
    TLSIdentity.create_identity(KeyUsage.CLIENT_AUTH, {"CN": "truck"}, label="truck")
    piped = tmp_path / "piped.p12"
    done = _couchlite("identity", "export", "truck", str(piped), stdin_text="from stdin\n")
    assert done.returncode == 0, done.stderr
    assert TLSIdentity.import_identity(piped.read_bytes(), "from stdin").label is None
    from_env = tmp_path / "env.p12"
    done = _couchlite(
        "identity", "export", "truck", str(from_env), "--password-env", "PW", env={"PW": "e"}
    )
    assert done.returncode == 0, done.stderr
    TLSIdentity.import_identity(from_env.read_bytes(), "e")
    done = _couchlite("identity", "import", "copy", str(piped), stdin_text="from stdin\n")
    assert done.returncode == 0, done.stderr
    done = _couchlite("identity", "delete", "copy", "--yes")
    assert done.returncode == 0, done.stderr
    # Two secrets on stdin: the key-store passphrase first, then the PKCS#12 password.
    other = tmp_path / "other-store"
    two = f"{PASSPHRASE}-2\nsecond\n"
    done = _couchlite(
        "identity", "--keystore", str(other), "--ask-passphrase", "import", "t", str(piped),
        stdin_text=f"{PASSPHRASE}-2\nfrom stdin\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = tmp_path / "two.p12"
    done = _couchlite(
        "identity", "--keystore", str(other), "--ask-passphrase", "export", "t", str(out),
        stdin_text=two,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    TLSIdentity.import_identity(out.read_bytes(), "second")
    assert KeyStore(other, passphrase=f"{PASSPHRASE}-2").load("t").label == "t"


def test_the_cli_runner_reads_piped_secrets_line_by_line(
    keystore_env: Path, tmp_path: Path
) -> None:
    TLSIdentity.create_identity(KeyUsage.SERVER_AUTH, {"CN": "laptop"}, label="laptop")
    out = tmp_path / "laptop.pem"
    result = CliRunner().invoke(
        main, ["identity", "export", "laptop", str(out), "--format", "pem"], input="pem pw\n"
    )
    assert result.exit_code == 0, result.output
    TLSIdentity.from_pem(out.read_bytes(), out.read_bytes(), password=b"pem pw")
    result = CliRunner().invoke(main, ["identity", "export", "laptop", str(out)], input="")
    assert result.exit_code == 1
    assert "no export password" in result.output and "Aborted" not in result.output


def _on_a_terminal(args: list[str], answers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """Run ``python -m couchlite ARGS`` with a pseudo-terminal as stdin, stdout and stderr,
    typing each answer once its prompt has appeared; bounded by a deadline."""
    searched, pending = 0, list(answers)

    def react(process: subprocess.Popen[bytes], master: int, output: bytes) -> None:
        nonlocal searched
        if pending and pending[0][0] in output[searched:]:
            searched = output.index(pending[0][0], searched) + len(pending[0][0])
            os.write(master, pending.pop(0)[1] + b"\n")

    return run_on_a_terminal(args, os.environ.copy(), react)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_on_a_terminal_secrets_are_prompted_for_hidden_and_confirmed(
    keystore_env: Path, tmp_path: Path
) -> None:
    TLSIdentity.create_identity(KeyUsage.CLIENT_AUTH, {"CN": "truck"}, label="truck")
    out = tmp_path / "typed.p12"
    code, output = _on_a_terminal(
        ["identity", "export", "truck", str(out)],
        [(b"Export password: ", b"typed"), (b"confirmation: ", b"typed")],
    )
    assert code == 0, output
    assert b"typed" not in output.replace(b"typed.p12", b"")  # never echoed
    assert b"GetPassWarning" not in output
    TLSIdentity.import_identity(out.read_bytes(), "typed")
