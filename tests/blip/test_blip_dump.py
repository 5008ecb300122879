"""The dump tool, run as a real subprocess on interop recordings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data import INTEROP

pytestmark = pytest.mark.timeout(60)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "couchlite.blip.dump", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )


def test_text_output_shows_header_messages_acks_and_close() -> None:
    result = run(str(INTEROP / "08-large-doc.jsonl"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("scenario: large-doc\n")
    assert "subprotocol: BLIP_3+CBMobile_3" in out
    assert "→ c2s MSG #1 getCheckpoint" in out
    assert "→ c2s MSG #2 [compressed,urgent] proposeChanges" in out
    assert "← s2c ERR #1  HTTP/404" in out
    assert "→ c2s MSG #3 [compressed] rev  (11 frames)" in out
    assert "ACKMSG #3  acknowledges 65205 bytes" in out
    assert "ACKMSG #3  acknowledges 130406 bytes" in out
    assert '"count": 6400' in out  # pretty-printed JSON body
    assert "\nclose: " in out and '"code": 1000' in out


def test_text_output_shows_error_bodies_as_text() -> None:
    result = run(str(INTEROP / "05-blob-push.missing-blob.jsonl"))
    assert result.returncode == 0
    assert "→ c2s ERR #1  LiteCore/7" in result.stdout
    assert "text: 'No such blob'" in result.stdout


def test_json_output_matches_the_recording() -> None:
    path = INTEROP / "02-pull-basic.jsonl"
    result = run(str(path), "--json")
    assert result.returncode == 0, result.stderr
    ours = [json.loads(line) for line in result.stdout.splitlines()]
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    expected = [
        {
            "dir": r["dir"],
            "msgno": r["decoded"]["msgno"],
            "type": r["decoded"]["type"],
            "flags": [f for f in r["decoded"]["flags"] if f != "moreComing"],
            "properties": r["decoded"]["properties"],
            "body": {"hex": r["decoded"]["body"]["hex"]}
            if r["decoded"]["body_format"] == "hex"
            else r["decoded"]["body"],
        }
        for r in records
        if "hex" in r and r["decoded"].get("message_complete")
    ]
    assert ours == expected
    assert all(list(o) == ["dir", "msgno", "type", "flags", "properties", "body"] for o in ours)


def test_checksum_error_gives_nonzero_exit(tmp_path: Path) -> None:
    lines = (INTEROP / "01-push-basic.jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[1])
    record["hex"] = record["hex"][:-2] + ("00" if record["hex"][-2:] != "00" else "01")
    lines[1] = json.dumps(record)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run(str(bad))
    assert result.returncode == 1
    assert "invalid checksum" in result.stderr and "close code 1011" in result.stderr
    assert "!! c2s frame i=1: invalid checksum" in result.stdout


def test_missing_file_exit_code() -> None:
    result = run("/nonexistent/recording.jsonl")
    assert result.returncode == 2 and "recording.jsonl" in result.stderr
