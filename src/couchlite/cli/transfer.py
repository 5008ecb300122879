"""``couchlite export`` and ``couchlite import``: a collection as JSON Lines, and back.

The format: one JSON object per line, a document's body with its ID under ``"_id"`` (a key
no saved document can have: ``_id`` is reserved). Blobs appear as their reference objects
(``{"@type": "blob", "digest": ...}``); their content is not exported.

``export`` streams: one document is read, written and forgotten at a time, so memory stays flat
whatever the collection's size. It opens the database read-only, so it can export a live
application's database; it is not a snapshot (a document written meanwhile may or may not be
in it).

``import`` reads lines of at most ``_tuning.CLI_IMPORT_MAX_LINE_BYTES`` and saves
``_tuning.CLI_IMPORT_BATCH_DOCS`` documents per transaction (``--batch-size``), fewer when their
lines reach ``_tuning.CLI_IMPORT_BATCH_BYTES``. Blank lines are
ignored. A line without ``_id`` gets a random ID; a document that exists is replaced (last
write wins). A bad line (not JSON, not an object, a bad ``_id``, a value or key the database
refuses, too long) stops the import with its line number and exit code 1: the batches before it
are saved, the batch holding it is not written at all -- a batch is never half-written. With
``--skip-bad``, each bad line is reported on stderr (``skipped line N: ...``) and skipped, and
the import goes on. Exit codes: :mod:`couchlite.cli._common`.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
import orjson

from couchlite import Collection, InvalidArgumentError, MutableDocument, _tuning
from couchlite.cli._common import (
    EXIT_CODES_HELP,
    CommandError,
    Interrupted,
    collection_option,
    database_argument,
    dumps,
    emit_json,
    find_collection,
    handles_errors,
    json_option,
    open_database,
)
from couchlite.cli._progress import ProgressDisplay, stderr_is_a_terminal

ID_KEY = "_id"


def _lines_of(collection: Collection) -> Iterator[tuple[str, int]]:
    """``(JSON line, body bytes)`` of each live document, in sequence order."""
    for doc_id in collection:
        doc = collection.get(doc_id)
        if doc is None:  # deleted by the owning process since the IDs were read
            continue
        body = doc.to_json()
        head = '{"' + ID_KEY + '":' + orjson.dumps(doc_id).decode()
        # splice the ID into the stored JSON rather than decoding and encoding the body
        inner = body.strip()[1:].lstrip()
        line = head + ("}" if inner.startswith("}") else "," + inner)
        yield line, len(body)


@click.command("export", short_help="Write a collection as JSON Lines.", epilog=EXIT_CODES_HELP)
@database_argument
@collection_option
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@json_option
@handles_errors
def export(path: Path, collection: str, output: Path | None, as_json: bool) -> None:
    """Write every document of a collection as JSON Lines: {"_id": ID, ...body} per line.

    Streams to stdout (or --output FILE); opens the database read-only. A summary goes to
    stderr when it is a terminal; --json prints it there as one JSON object {"exported",
    "bytes", "collection", "seconds"} in any case.
    """
    started = time.monotonic()
    count = size = 0
    with open_database(path, write=False) as db:
        source = find_collection(db, collection)
        sink: IO[str] = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
        try:
            for line, body_bytes in _lines_of(source):
                sink.write(line)
                sink.write("\n")
                count += 1
                size += body_bytes
            sink.flush()
        finally:
            if output:
                sink.close()
    summary = {
        "exported": count,
        "bytes": size,
        "collection": source.full_name,
        "seconds": round(time.monotonic() - started, 3),
    }
    if as_json:
        sys.stderr.write(dumps(summary) + "\n")
    elif stderr_is_a_terminal():
        sys.stderr.write(f"exported {count:,} documents from {source.full_name}\n")


class BadLine(Exception):
    def __init__(self, number: int, reason: str) -> None:
        super().__init__(f"line {number}: {reason}")
        self.number = number
        self.reason = reason


def _read_lines(source: IO[bytes]) -> Iterator[tuple[int, bytes | None, int]]:
    """``(line number, line or None if too long, bytes consumed)``, never holding more than
    ``CLI_IMPORT_MAX_LINE_BYTES`` of one line in memory."""
    limit = _tuning.CLI_IMPORT_MAX_LINE_BYTES
    number = 0
    while True:
        line = source.readline(limit + 1)
        if not line:
            return
        number += 1
        consumed = len(line)
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # skip the rest of the line, chunk by chunk
                rest = source.readline(limit)
                consumed += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None, consumed
            continue
        yield number, line, consumed


def _parse(number: int, line: bytes | None) -> MutableDocument | None:
    """The document of a line (``None`` for a blank line); ``BadLine`` when it is bad."""
    if line is None:
        raise BadLine(number, f"longer than {_tuning.CLI_IMPORT_MAX_LINE_BYTES} bytes")
    if not line.strip():
        return None
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadLine(number, f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadLine(number, "not a JSON object")
    doc_id = value.pop(ID_KEY, None)
    if doc_id is not None and not isinstance(doc_id, str):
        raise BadLine(number, f"{ID_KEY} must be a string")
    try:
        return MutableDocument(doc_id, value)
    except InvalidArgumentError as exc:
        raise BadLine(number, exc.message) from None


class _Importer:
    def __init__(self, target: Collection, *, skip_bad: bool, batch_size: int) -> None:
        self.target = target
        self.skip_bad = skip_bad
        self.batch_size = batch_size
        self.imported = 0
        self.skipped = 0
        self.bytes = 0

    def _bad(self, bad: BadLine) -> None:
        if not self.skip_bad:
            raise CommandError(
                f"{bad}; {self.imported} documents imported before its batch, which was not "
                "written (--skip-bad skips bad lines)"
            )
        self.skipped += 1
        sys.stderr.write(f"skipped {bad}\n")

    def save(self, batch: list[tuple[int, MutableDocument]]) -> None:
        """One transaction; in refuse mode any bad document rolls back the whole batch."""
        db = self.target.database
        saved = 0
        with db.in_batch():
            for number, doc in batch:
                try:
                    self.target.save(doc)
                except InvalidArgumentError as exc:
                    # a failed save inside a batch leaves the batch's other writes intact
                    self._bad(BadLine(number, exc.message))
                else:
                    saved += 1
        self.imported += saved

    def run(self, source: IO[bytes], shown: ProgressDisplay, total: int | None) -> None:
        batch: list[tuple[int, MutableDocument]] = []
        batch_bytes = 0
        for number, line, consumed in _read_lines(source):
            self.bytes += consumed
            try:
                doc = _parse(number, line)
            except BadLine as bad:
                self._bad(bad)
                continue
            if doc is not None:
                batch.append((number, doc))
                batch_bytes += consumed
            if len(batch) >= self.batch_size or batch_bytes >= _tuning.CLI_IMPORT_BATCH_BYTES:
                self.save(batch)
                batch, batch_bytes = [], 0
                self._show(shown, total)
        if batch:
            self.save(batch)
        self._show(shown, total)

    def _show(self, shown: ProgressDisplay, file_size: int | None) -> None:
        # the bar follows the part of the file read: the number of documents is not known
        fraction = min(1.0, self.bytes / file_size) if file_size else None
        shown.update(self.imported, None, self.bytes, fraction=fraction)


def _size_of(source: IO[bytes]) -> int | None:
    """The size of a regular file (``None`` for a pipe, a terminal...)."""
    try:
        info = os.fstat(source.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


@click.command("import", short_help="Save documents from JSON Lines.", epilog=EXIT_CODES_HELP)
@database_argument
@click.argument("file", metavar="FILE|-", type=click.File("rb"))
@collection_option
@click.option("--skip-bad", is_flag=True, help="Skip bad lines (reported on stderr).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=_tuning.CLI_IMPORT_BATCH_DOCS,
    show_default=True,
    help="Documents per transaction.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress, only the summary.")
@json_option
@handles_errors
def import_(
    path: Path,
    file: IO[bytes],
    collection: str,
    skip_bad: bool,
    batch_size: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Save the documents of a JSON Lines FILE ("-": stdin) into a collection.

    Each line is a JSON object; its "_id" is the document ID (a random one without it). The
    database and collection are created when missing. A bad line stops the import (exit code
    1; earlier batches stay saved, the bad line's batch is not written) unless --skip-bad.
    Progress on stderr: a bar on a terminal, plain lines otherwise. --json prints the summary
    as one JSON object: {"imported", "skipped", "bytes", "collection", "seconds"}.
    """
    started = time.monotonic()
    with open_database(path, write=True, create=True) as db:
        target = find_collection(db, collection, create=True)
        importer = _Importer(target, skip_bad=skip_bad, batch_size=batch_size)
        try:
            with ProgressDisplay("importing", quiet=quiet or as_json) as shown:
                importer.run(file, shown, _size_of(file))
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted: {importer.imported} documents imported; the batch in progress "
                "was not written"
            ) from None
    summary: dict[str, Any] = {
        "imported": importer.imported,
        "skipped": importer.skipped,
        "bytes": importer.bytes,
        "collection": target.full_name,
        "seconds": round(time.monotonic() - started, 3),
    }
    if as_json:
        emit_json(summary)
    else:
        skipped = f", skipped {importer.skipped} bad lines" if importer.skipped else ""
        sys.stdout.write(
            f"imported {importer.imported:,} documents into {target.full_name}{skipped} "
            f"in {summary['seconds']:.1f} s\n"
        )


COMMANDS = [export, import_]

__all__ = ["COMMANDS", "ID_KEY"]
