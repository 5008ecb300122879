"""``couchlite put|get|ls|rm|info|compact`` and the rules every command shares: ``--json``,
exit codes, one-line errors (``--debug`` for the traceback), databases never created by a read.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from couchlite import Database, DatabaseConfiguration, _tuning

from .helpers import couchlite, json_lines, ok, one_line_error, serving

pytestmark = pytest.mark.timeout(120)


def test_put_get_ls_rm_with_json(tmp_path: Path) -> None:
    db = tmp_path / "data" / "app.cblite2"
    saved = json_lines(ok("put", db, "k1", '{"name": "Kettle", "price": 25}', "--json"))[0]
    assert saved["id"] == "k1" and saved["revision_id"].startswith("1-")
    assert saved["collection"] == "_default._default" and saved["sequence"] == 1
    # the extension may be left out; "-" reads the body from stdin
    ok("put", tmp_path / "data" / "app", "l1", "-", "-c", "store.products",
       stdin_text='{"name": "Lamp", "tags": ["[bold]x[/bold]"]}')  # fmt: skip
    got = json_lines(ok("get", db, "k1", "--json"))[0]
    assert got == {**saved, "body": {"name": "Kettle", "price": 25}}
    plain = ok("get", db, "l1", "-c", "store.products")  # indented JSON
    assert orjson.loads(plain) == {"name": "Lamp", "tags": ["[bold]x[/bold]"]}
    assert len(plain.splitlines()) > 1
    assert json_lines(ok("ls", db, "--json")) == [
        {"scope": "_default", "name": "_default", "full_name": "_default._default", "count": 1},
        {"scope": "store", "name": "products", "full_name": "store.products", "count": 1},
    ]
    listing = ok("ls", db)
    assert "store.products" in listing and "_default._default" in listing
    again = json_lines(ok("put", db, "k1", '{"name": "Kettle", "price": 30}', "--json"))[0]
    assert again["revision_id"].startswith("2-")
    assert json_lines(ok("rm", db, "k1", "--json")) == [
        {"id": "k1", "collection": "_default._default", "deleted": True}
    ]
    one_line_error(couchlite("get", db, "k1"), 3)
    one_line_error(couchlite("rm", db, "k1"), 3)
    one_line_error(couchlite("get", db, "l1", "-c", "store.nothing"), 3)


def test_put_reads_a_bounded_body_from_stdin(tmp_path: Path) -> None:
    huge = '{"big": "' + "x" * _tuning.CLI_IMPORT_MAX_LINE_BYTES + '"}'
    message = one_line_error(couchlite("put", tmp_path / "db", "k", "-", stdin_text=huge), 1)
    assert "longer than" in message
    assert not (tmp_path / "db.cblite2").exists()  # refused before anything was opened


def test_info_and_compact(tmp_path: Path) -> None:
    db = tmp_path / "shop.cblite2"
    ok("put", db, "p", '{"price": 3}', "-c", "store.products")
    with Database("shop", DatabaseConfiguration(directory=tmp_path)) as opened:
        from couchlite import ValueIndexConfiguration

        products = opened.collection("products", "store")
        assert products is not None
        products.create_index("byPrice", ValueIndexConfiguration(["price"]))
    facts = json_lines(ok("info", db, "--json"))[0]
    assert facts["path"] == str(db) and facts["name"] == "shop"
    assert facts["size_bytes"] > 0 and len(facts["uuid"]) == 32
    assert facts["collections"][1] == {
        "scope": "store",
        "name": "products",
        "full_name": "store.products",
        "count": 1,
        "last_sequence": 1,
        "indexes": ["byPrice"],
    }
    assert "byPrice" in ok("info", db)
    compacted = json_lines(ok("compact", db, "--json"))[0]
    assert compacted["path"] == str(db) and compacted["size_after"] > 0
    assert "compacted" in ok("compact", db)


def test_read_commands_never_create_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.cblite2"
    for args in (
        ("ls", missing),
        ("get", missing, "x"),
        ("export", missing),
        ("query", missing, "SELECT 1"),
        ("info", missing),
        ("rm", missing, "x"),
        ("compact", missing),
    ):
        message = one_line_error(couchlite(*args), 3)
        assert "no database at" in message and str(missing) in message
    assert not missing.exists()


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    db = tmp_path / "app"
    one_line_error(couchlite("put", db, "x", "not json"), 1)
    one_line_error(couchlite("put", db, "x", "[1, 2]"), 1)
    message = one_line_error(couchlite("put", db, "_bad", "{}"), 1)
    assert "_bad" in message
    query = couchlite("query", db, "SELEC x")
    assert "offset 0" in one_line_error(query, 1)
    debug = couchlite("--debug", "query", db, "SELEC x")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == query.stderr.strip()
    usage = couchlite("get", db)  # a missing argument is click's usage error
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_a_running_server_owns_the_database_and_reads_still_work(tmp_path: Path) -> None:
    db = tmp_path / "live.cblite2"
    ok("put", db, "before", '{"n": 1}')
    with serving(db, "--no-tls") as (server, _):
        # the server holds the database: reads open it read-only beside it...
        assert json_lines(ok("get", db, "before", "--json"))[0]["body"] == {"n": 1}
        assert json_lines(ok("ls", db, "--json"))[0]["count"] == 1
        assert ok("export", db) == '{"_id":"before","n":1}\n'
        assert json_lines(ok("query", db, "SELECT n FROM _", "--json")) == [{"n": 1}]
        assert json_lines(ok("info", db, "--json"))[0]["collections"][0]["count"] == 1
        # ...and writes are refused with a clear error
        for args in (("put", db, "after", "{}"), ("rm", db, "before"), ("compact", db)):
            message = one_line_error(couchlite(*args), 5)
            assert "open in another process" in message and "read commands" in message
        code, _, _ = server.interrupt()
        assert code == 0
    assert json_lines(ok("ls", db, "--json"))[0]["count"] == 1


OWNER = Path(__file__).resolve().parents[1] / "database" / "ro_owner.py"


def test_read_commands_follow_an_application_that_keeps_writing(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, str(OWNER), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        deadline = time.monotonic() + 60
        while owner.stdout.readline().strip() != "wrote 20":
            assert time.monotonic() < deadline and owner.poll() is None
        db = tmp_path / "live.cblite2"
        first = json_lines(ok("ls", db, "--json"))[0]["count"]
        assert first >= 21
        assert json_lines(ok("get", db, "doc-20", "--json"))[0]["body"] == {"i": 20}
        while json_lines(ok("ls", db, "--json"))[0]["count"] <= first:  # it goes on writing
            assert time.monotonic() < deadline and owner.poll() is None
        exported = json_lines(ok("export", db))
        assert len(exported) > first and {"_id": "doc-0", "i": 0} in exported
        message = one_line_error(couchlite("put", db, "mine", "{}"), 5)
        assert "another process" in message
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.communicate(timeout=30)
