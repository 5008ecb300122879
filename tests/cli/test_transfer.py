"""``couchlite export`` and ``import`` (JSON Lines) and ``query``, in real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from couchlite import Blob, Database, DatabaseConfiguration, MutableDocument, _tuning

from .helpers import couchlite, environment, json_lines, ok, on_a_terminal, one_line_error

pytestmark = pytest.mark.timeout(180)


def _docs(n: int) -> str:
    return "".join(
        orjson.dumps(
            {"_id": f"doc-{i:04}", "i": i, "tags": ["a", i % 3], "nested": {"x": i}}
        ).decode()
        + "\n"
        for i in range(n)
    )


def test_import_then_export_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(_docs(250))
    summary = json_lines(
        ok("import", tmp_path / "a", source, "-c", "shop.items", "--batch-size", "40", "--json")
    )[0]
    assert summary["imported"] == 250 and summary["skipped"] == 0
    assert summary["collection"] == "shop.items" and summary["bytes"] == source.stat().st_size
    exported = ok("export", tmp_path / "a", "-c", "shop.items")
    assert sorted(json_lines(exported), key=lambda d: d["_id"]) == json_lines(source.read_text())
    # and into another database through a pipe
    ok("import", tmp_path / "b", "-", "-c", "shop.items", stdin_text=exported)
    assert ok("export", tmp_path / "b", "-c", "shop.items") == exported
    out = tmp_path / "out.jsonl"
    done = couchlite("export", tmp_path / "b", "-c", "shop.items", "-o", out, "--json")
    assert done.returncode == 0 and done.stdout == ""
    assert orjson.loads(done.stderr)["exported"] == 250
    assert out.read_text() == exported


def test_export_shows_blobs_as_references(tmp_path: Path) -> None:
    with Database("pics", DatabaseConfiguration(directory=tmp_path)) as db:
        db.default_collection().save(MutableDocument("p", {"img": Blob("image/png", b"png")}))
        db.default_collection().save(MutableDocument("empty"))
    lines = {d["_id"]: d for d in json_lines(ok("export", tmp_path / "pics"))}
    assert lines["empty"] == {"_id": "empty"}
    assert lines["p"]["img"]["@type"] == "blob" and lines["p"]["img"]["length"] == 3


def test_a_bad_line_stops_the_import_and_its_batch_is_not_written(tmp_path: Path) -> None:
    lines = [
        '{"_id": "a"}',
        '{"_id": "b"}',
        '{"_id": "c"}',
        '{"_id": "d", "_rev": "1-abc"}',  # refused by the database: reserved key
        '{"_id": "e"}',
    ]
    source = tmp_path / "bad.jsonl"
    source.write_text("\n".join(lines) + "\n")
    done = couchlite("import", tmp_path / "db", source, "--batch-size", "2")
    message = one_line_error(done, 1)
    assert message.startswith("error: line 4:") and "_rev" in message
    # the first batch (a, b) is saved; the one holding line 4 (c, d) is not written at all
    ids = {d["_id"] for d in json_lines(ok("export", tmp_path / "db"))}
    assert ids == {"a", "b"}
    for bad, reason in (
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"_id": 7}', "_id must be a string"),
    ):
        source.write_text('{"_id": "ok"}\n' + bad + "\n")
        assert reason in one_line_error(couchlite("import", tmp_path / "other", source), 1)
    assert not json_lines(ok("export", tmp_path / "other"))


def test_large_documents_are_saved_in_batches_bounded_in_bytes(tmp_path: Path) -> None:
    # lines of 1 MiB: a default batch of 1000 would hold a GiB; the byte bound saves them in
    # batches of CLI_IMPORT_BATCH_BYTES, which the bad line at the end shows (earlier batches
    # stay saved)
    big = "x" * (_tuning.CLI_IMPORT_BATCH_BYTES // 32)
    count = 40
    source = tmp_path / "big.jsonl"
    with source.open("w") as out:
        for i in range(count):
            out.write(orjson.dumps({"_id": f"doc-{i}", "big": big}).decode() + "\n")
        out.write("not json\n")
    message = one_line_error(couchlite("import", tmp_path / "db", source), 1)
    assert message.startswith(f"error: line {count + 1}:")
    with Database("db", DatabaseConfiguration(directory=tmp_path, read_only=True)) as db:
        assert 0 < db.default_collection().count < count


def test_skip_bad_reports_each_line_and_goes_on(tmp_path: Path) -> None:
    text = '{"_id": "a", "v": 1}\n\nnot json\n{"v": 2}\n[3]\n{"_id": "_x"}\n{"_id": "z"}\n'
    done = couchlite("import", tmp_path / "db", "-", "--skip-bad", "--json", stdin_text=text)
    assert done.returncode == 0, done.stderr
    assert json_lines(done.stdout)[0]["imported"] == 3
    assert json_lines(done.stdout)[0]["skipped"] == 3
    skipped = [line for line in done.stderr.splitlines() if line.startswith("skipped ")]
    assert [line.split(":")[0] for line in skipped] == [
        "skipped line 3",
        "skipped line 5",
        "skipped line 6",
    ]
    docs = json_lines(ok("export", tmp_path / "db"))
    assert len(docs) == 3 and {"a", "z"} <= {d["_id"] for d in docs}  # and one random ID


def test_query_table_json_and_parameters(tmp_path: Path) -> None:
    ok("import", tmp_path / "db", "-", "-c", "store.products", stdin_text=_docs(10))
    sql = "SELECT meta().id, i FROM store.products WHERE i >= $min ORDER BY i"
    rows = json_lines(ok("query", tmp_path / "db", sql, "-p", "min=7", "--json"))
    assert rows == [{"id": f"doc-{i:04}", "i": i} for i in (7, 8, 9)]
    table = ok("query", tmp_path / "db", sql, "--param", "$min=9")
    assert "doc-0009" in table and "doc-0008" not in table and "1 row" in table
    # a value that is not JSON is text: no document's i equals the string "x"
    assert json_lines(ok("query", tmp_path / "db", sql, "-p", "min=x", "--json")) == []
    assert "SCAN" in ok("query", tmp_path / "db", sql, "--explain").upper()
    one_line_error(couchlite("query", tmp_path / "db", sql, "-p", "novalue"), 2)


@pytest.mark.skipif(not hasattr(__import__("os"), "openpty"), reason="needs a pseudo-terminal")
def test_import_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(_docs(3000))
    code, output = on_a_terminal(["import", tmp_path / "db", source, "--batch-size", "500"])
    assert code == 0, output
    assert "importing" in output and "100%" in output and "━" in output, output
    assert "imported 3,000 documents" in output


def test_an_interrupted_import_exits_130_and_keeps_whole_batches_only(tmp_path: Path) -> None:
    db = tmp_path / "db"
    importer = subprocess.Popen(
        [sys.executable, "-m", "couchlite", "import", str(db), "-", "--batch-size", "1000"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    )
    try:
        assert importer.stdin is not None
        importer.stdin.write(_docs(2500).encode())  # two whole batches and half of a third
        importer.stdin.flush()  # the pipe stays open: the import waits for more lines
        deadline = time.monotonic() + 60
        while True:  # until both batches are committed (read beside the import)
            listed = couchlite("ls", db, "--json")  # fails until the database is set up
            if listed.returncode == 0 and json_lines(listed.stdout)[0]["count"] >= 2000:
                break
            assert time.monotonic() < deadline and importer.poll() is None
            time.sleep(0.2)
        importer.send_signal(signal.SIGINT)
        _, err = importer.communicate(timeout=60)
    finally:
        if importer.poll() is None:
            importer.kill()
            importer.communicate(timeout=30)
    assert importer.returncode == 130, err
    assert err.decode().strip().splitlines()[-1] == (
        "error: interrupted: 2000 documents imported; the batch in progress was not written"
    )
    assert len(json_lines(ok("export", db))) == 2000
