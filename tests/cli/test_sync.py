"""``couchlite serve`` and ``couchlite sync`` against each other over 127.0.0.1, each in a
real process: the round trip, progress (a bar on a pseudo-terminal, lines without one), the
exit codes of network, TLS and authentication failures, stopping on SIGINT/SIGTERM."""

from __future__ import annotations

import inspect
import os
import signal
import socket
import time
from pathlib import Path

import orjson
import pytest

from couchlite import ReplicatorConfiguration

from .helpers import (
    LongRunning,
    couchlite,
    json_lines,
    local_url,
    ok,
    on_a_terminal,
    one_line_error,
    serving,
)

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

HAS_FINGERPRINTS = "server_fingerprint" in inspect.signature(ReplicatorConfiguration).parameters


def _fill(db: Path, n: int, collection: str = "_default._default") -> None:
    lines = "".join(
        orjson.dumps({"_id": f"d{i:05}", "i": i, "text": "x" * 50}).decode() + "\n"
        for i in range(n)
    )
    ok("import", db, "-", "-c", collection, "--quiet", stdin_text=lines)


def test_serve_sync_export_round_trip(tmp_path: Path) -> None:
    phone, hub, laptop = tmp_path / "phone", tmp_path / "hub.cblite2", tmp_path / "laptop"
    _fill(phone, 120, "shop.orders")
    cert = tmp_path / "hub.pem"
    with serving(hub, "-c", "shop.orders", "--certificate-out", cert) as (server, started):
        assert started["tls"] is True and started["port"] > 0
        assert started["database"] == "hub" and started["collections"] == ["shop.orders"]
        fingerprint = started["fingerprint"]
        assert len(fingerprint) == 64 and fingerprint == fingerprint.lower()
        url = local_url(started)
        assert url == f"wss://127.0.0.1:{started['port']}/hub"
        assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        pushed = couchlite("sync", phone, url, "--push", "-c", "shop.orders", "--pin", cert,
                           "--json")  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr
        summary = orjson.loads(pushed.stdout)
        assert summary["status"] == "ok" and summary["pushed"] == 120 and summary["pulled"] == 0
        assert summary["errors"] == 0 and summary["bytes"] > 120 * 50
        # the server owns hub: export reads it beside the server
        exported = ok("export", hub, "-c", "shop.orders")
        assert exported == ok("export", phone, "-c", "shop.orders")
        pulled = couchlite("sync", laptop, url, "--pull", "-c", "shop.orders", "--insecure",
                           "--json")  # fmt: skip
        assert pulled.returncode == 0, pulled.stderr
        assert orjson.loads(pulled.stdout)["pulled"] == 120
        assert ok("export", laptop, "-c", "shop.orders") == exported
        # both ways, and a plain summary
        ok("put", laptop, "new", '{"from": "laptop"}', "-c", "shop.orders")
        both = ok("sync", laptop, url, "-c", "shop.orders", "--insecure", "--quiet")
        # (the laptop never pushed: its first push proposes what it pulled too)
        assert both.startswith("ok: pushed ") and ", 0 errors" in both
        assert json_lines(ok("get", hub, "new", "-c", "shop.orders", "--json"))[0]["body"] == {
            "from": "laptop"
        }
        code, rest, err = server.interrupt(signal.SIGINT)
        assert code == 0, err
        events = [orjson.loads(line) for line in [*server.lines, *rest.splitlines()]]
        assert events[-1] == {"event": "stopped"}
        assert any(e["event"] == "connections" for e in events)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_sync_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    _fill(tmp_path / "a", 1500)
    with serving(tmp_path / "b", "--no-tls") as (_, started):
        code, output = on_a_terminal(["sync", tmp_path / "a", local_url(started), "--push"])
    assert code == 0, output
    assert "sync" in output and "%" in output and "━" in output, output
    assert "1,500" in output and "docs/s" in output
    assert "ok: pushed 1,500, pulled 0 documents" in output


def test_without_a_terminal_progress_is_plain_lines_or_nothing(tmp_path: Path) -> None:
    _fill(tmp_path / "a", 30)
    with serving(tmp_path / "b", "--no-tls") as (_, started):
        url = local_url(started)
        plain = couchlite("sync", tmp_path / "a", url)
        assert plain.returncode == 0, plain.stderr
        assert "\x1b[" not in plain.stderr and "━" not in plain.stderr
        assert plain.stderr.splitlines()[-1].startswith("sync: 30/30 docs (100%)")
        quiet = couchlite("sync", tmp_path / "a", url, "--quiet")
        assert quiet.returncode == 0 and quiet.stderr == ""
        assert quiet.stdout.startswith("ok: pushed 0, pulled 0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_network_tls_and_authentication_failures_exit_4(tmp_path: Path) -> None:
    refused = couchlite("sync", tmp_path / "a", f"ws://127.0.0.1:{_free_port()}/x", "--quiet")
    one_line_error(refused, 4)
    with serving(tmp_path / "hub", "--no-tls") as (_, started):
        wrong_name = local_url(started).replace("/hub", "/nothing")
        assert "404" in one_line_error(couchlite("sync", tmp_path / "a", wrong_name), 3)
    env = {"HUB_PW": "s3cret", "WRONG_PW": "nope"}
    with serving(tmp_path / "hub", "--user", "me", "--password-env", "HUB_PW", env=env) as (
        _,
        started,
    ):
        url = local_url(started)
        untrusted = one_line_error(couchlite("sync", tmp_path / "a", url, "--quiet"), 4)
        assert "not trusted" in untrusted and "--insecure" in untrusted
        anonymous = couchlite("sync", tmp_path / "a", url, "--insecure", "--json")
        one_line_error(anonymous, 4)
        assert orjson.loads(anonymous.stdout)["status"] == "error"
        wrong = couchlite("sync", tmp_path / "a", url, "--insecure", "--user", "me",
                          "--password-env", "WRONG_PW", env=env)  # fmt: skip
        one_line_error(wrong, 4)
        right = couchlite("sync", tmp_path / "a", url, "--insecure", "--user", "me",
                          "--password-env", "HUB_PW", env=env)  # fmt: skip
        assert right.returncode == 0, right.stderr
        unset = couchlite("sync", tmp_path / "a", url, "--user", "me", "--password-env", "UNSET")
        assert "UNSET" in one_line_error(unset, 1)
    one_line_error(couchlite("sync", tmp_path / "a", url, "--pin", tmp_path / "a.cblite2" /
                             "db.sqlite3", "--insecure"), 2)  # fmt: skip
    one_line_error(couchlite("sync", tmp_path / "a"), 2)  # neither URL nor --discover


def test_continuous_sync_runs_until_sigint(tmp_path: Path) -> None:
    with serving(tmp_path / "hub", "--no-tls") as (server, started):
        follower = LongRunning(
            ["sync", str(tmp_path / "a"), local_url(started), "--continuous", "--json"]
        )
        try:
            deadline = time.monotonic() + 60
            while server.wait_for_json("connections")["connections"] < 1:
                assert time.monotonic() < deadline
            code, out, err = follower.interrupt(signal.SIGINT)
        finally:
            follower.close()
        assert code == 0, err
        assert orjson.loads(out)["status"] == "interrupted"
        code, _, _ = server.interrupt(signal.SIGTERM)  # SIGTERM stops serve cleanly too
        assert code == 0


def test_fingerprint_pinning(tmp_path: Path) -> None:
    with serving(tmp_path / "hub") as (_, started):
        url, fingerprint = local_url(started), started["fingerprint"]
        done = couchlite("sync", tmp_path / "a", url, "--fingerprint", fingerprint, "--quiet")
        if not HAS_FINGERPRINTS:
            assert "discovery" in one_line_error(done, 1)
            return
        assert done.returncode == 0, done.stderr
        wrong = couchlite("sync", tmp_path / "a", url, "--fingerprint", "0" * 64, "--quiet")
        one_line_error(wrong, 4)
    one_line_error(couchlite("sync", tmp_path / "a", url, "--fingerprint", "xyz"), 2)


def test_a_pinned_certificate_of_another_server_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    with serving(tmp_path / "other", "--certificate-out", other):
        pass  # only its certificate is wanted
    with serving(tmp_path / "hub") as (_, started):
        url = local_url(started)
        wrong = couchlite("sync", tmp_path / "a", url, "--pin", other, "--quiet")
        assert "certificate" in one_line_error(wrong, 4)
        garbage = tmp_path / "garbage.pem"
        garbage.write_bytes(b"not a certificate")
        one_line_error(couchlite("sync", tmp_path / "a", url, "--pin", garbage, "--quiet"), 1)


def test_a_read_only_server_refuses_pushes(tmp_path: Path) -> None:
    ok("put", tmp_path / "hub", "h", '{"n": 1}')
    ok("put", tmp_path / "phone", "p", '{"n": 2}')
    with serving(tmp_path / "hub", "--no-tls", "--read-only") as (server, started):
        url = local_url(started)
        assert "pull-only" in one_line_error(couchlite("sync", tmp_path / "phone", url), 1)
        pulled = couchlite("sync", tmp_path / "phone", url, "--pull", "--json")
        assert pulled.returncode == 0, pulled.stderr
        assert orjson.loads(pulled.stdout)["pulled"] == 1
        assert server.interrupt()[0] == 0
    assert [d["_id"] for d in json_lines(ok("export", tmp_path / "hub"))] == ["h"]


def test_serve_with_an_identity_from_the_key_store(tmp_path: Path) -> None:
    env = {
        "COUCHLITE_KEYSTORE": str(tmp_path / "keys"),
        "COUCHLITE_KEYSTORE_PASSPHRASE": "test passphrase",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }
    ok("identity", "create", "hub", "--cn", "127.0.0.1", "--ip", "127.0.0.1", env=env)
    cert = tmp_path / "hub.crt"
    ok("identity", "export", "hub", cert, "--format", "cert", env=env)
    with serving(tmp_path / "hub", "--identity", "hub", env=env) as (server, started):
        done = couchlite("sync", tmp_path / "phone", local_url(started), "--pin", cert)
        assert done.returncode == 0, done.stderr
        assert server.interrupt()[0] == 0
    usage = couchlite("serve", tmp_path / "hub", "--identity", "hub", "--no-tls", env=env)
    one_line_error(usage, 2)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_serve_shows_a_live_status_line_on_a_terminal(tmp_path: Path) -> None:
    code, output = on_a_terminal(
        ["serve", tmp_path / "hub", "--port", "0", "--no-tls"], interrupt_after="Ctrl-C stops"
    )
    assert code == 0, output
    assert "url: ws://127.0.0.1:" in output and "0 connections (0 replicating)" in output
    assert output.rstrip().endswith("stopped"), output
