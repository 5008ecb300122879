"""``couchlite ls|get|put|rm|info|compact``: look into a database and edit single documents.

``ls``, ``get`` and ``info`` open the database read-only (they work on a database another
process is writing to); ``put`` creates the database and the collection when missing; ``rm``
and ``compact`` need an existing database and, like ``put``, that no other process has it open
for writing. Exit codes: :mod:`couchlite.cli._common`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from couchlite import Collection, Database, MutableDocument, NotFoundError, _tuning
from couchlite.cli._common import (
    EXIT_CODES_HELP,
    CommandError,
    all_collections,
    collection_option,
    database_argument,
    dumps,
    emit_json,
    find_collection,
    handles_errors,
    json_option,
    open_database,
)

_console = Console(soft_wrap=True, highlight=False, markup=False)


def _counts(db: Database) -> list[dict[str, Any]]:
    return [
        {"scope": c.scope.name, "name": c.name, "full_name": c.full_name, "count": c.count}
        for c in all_collections(db)
    ]


@click.command("ls", short_help="Collections and their document counts.", epilog=EXIT_CODES_HELP)
@database_argument
@json_option
@handles_errors
def ls(path: Path, as_json: bool) -> None:
    """List the collections of the database at PATH with their document counts.

    Opens the database read-only. --json prints one JSON object per collection:
    {"scope", "name", "full_name", "count"}.
    """
    with open_database(path, write=False) as db:
        rows = _counts(db)
    if as_json:
        for row in rows:
            emit_json(row)
        return
    table = Table(title=str(db.path))
    table.add_column("collection")
    table.add_column("documents", justify="right")
    for row in rows:
        table.add_row(row["full_name"], str(row["count"]))
    _console.print(table)


def _document(collection: Collection, doc_id: str) -> Any:
    doc = collection.get(doc_id)
    if doc is None:
        raise NotFoundError(f"no document {doc_id!r} in {collection.full_name}")
    return doc


@click.command("get", short_help="Print a document as JSON.", epilog=EXIT_CODES_HELP)
@database_argument
@click.argument("doc_id", metavar="ID")
@collection_option
@json_option
@handles_errors
def get(path: Path, doc_id: str, collection: str, as_json: bool) -> None:
    """Print the body of document ID as JSON.

    Opens the database read-only. --json prints one object with the metadata too:
    {"id", "collection", "revision_id", "sequence", "body"}. Blobs appear as their stored
    reference ({"@type": "blob", "digest": ...}).
    """
    with open_database(path, write=False) as db:
        doc = _document(find_collection(db, collection), doc_id)
        body = orjson.loads(doc.to_json())
        meta = {
            "id": doc.id,
            "collection": doc.collection.full_name if doc.collection else collection,
            "revision_id": doc.revision_id,
            "sequence": doc.sequence,
        }
    if as_json:
        emit_json({**meta, "body": body})
    else:
        sys.stdout.write(dumps(body, pretty=True) + "\n")


def _body(text: str) -> dict[str, Any]:
    data: str | bytes = text
    if text == "-":
        # bounded as an import line is: a body larger could not be replicated anyway
        limit = _tuning.CLI_IMPORT_MAX_LINE_BYTES
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise CommandError(f"the body on stdin is longer than {limit} bytes")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CommandError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise CommandError("the body must be a JSON object")
    return body


@click.command("put", short_help="Save a document from JSON.", epilog=EXIT_CODES_HELP)
@database_argument
@click.argument("doc_id", metavar="ID")
@click.argument("body", metavar="JSON|-")
@collection_option
@json_option
@handles_errors
def put(path: Path, doc_id: str, body: str, collection: str, as_json: bool) -> None:
    """Save document ID with the JSON object BODY ("-": read it from stdin).

    Replaces the document's whole body if it exists (last write wins). Creates the database
    and the collection when missing. --json prints {"id", "collection", "revision_id",
    "sequence"}.
    """
    data = _body(body)
    with open_database(path, write=True, create=True) as db:
        target = find_collection(db, collection, create=True)
        doc = MutableDocument(doc_id, data)
        target.save(doc)
        result = {
            "id": doc.id,
            "collection": target.full_name,
            "revision_id": doc.revision_id,
            "sequence": doc.sequence,
        }
    if as_json:
        emit_json(result)
    else:
        _console.print(f"saved {doc_id} in {result['collection']} ({doc.revision_id})")


@click.command("rm", short_help="Delete a document.", epilog=EXIT_CODES_HELP)
@database_argument
@click.argument("doc_id", metavar="ID")
@collection_option
@json_option
@handles_errors
def rm(path: Path, doc_id: str, collection: str, as_json: bool) -> None:
    """Delete document ID (a tombstone is kept, so that peers learn of the deletion).

    A document that does not exist is exit code 3. --json prints {"id", "collection",
    "deleted": true}.
    """
    with open_database(path, write=True) as db:
        target = find_collection(db, collection)
        target.delete(_document(target, doc_id))
    if as_json:
        emit_json({"id": doc_id, "collection": target.full_name, "deleted": True})
    else:
        _console.print(f"deleted {doc_id} from {target.full_name}")


def _size_on_disk(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            # a file may go while we walk (the owner's WAL, a temporary blob)
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


@click.command(
    "info", short_help="Path, size, UUID, collections and indexes.", epilog=EXIT_CODES_HELP
)
@database_argument
@json_option
@handles_errors
def info(path: Path, as_json: bool) -> None:
    """Show where the database is, its size on disk, UUID, collections and indexes.

    Opens the database read-only. --json prints one object: {"path", "name", "size_bytes",
    "uuid", "collections": [{"scope", "name", "full_name", "count", "last_sequence",
    "indexes"}]}.
    """
    with open_database(path, write=False) as db:
        collections: list[dict[str, Any]] = [
            {
                "scope": c.scope.name,
                "name": c.name,
                "full_name": c.full_name,
                "count": c.count,
                "last_sequence": c.last_sequence,
                "indexes": c.indexes,
            }
            for c in all_collections(db)
        ]
        facts = {
            "path": str(db.path),
            "name": db.name,
            "size_bytes": _size_on_disk(db.path),
            "uuid": db.uuid,
            "collections": collections,
        }
    if as_json:
        emit_json(facts)
        return
    _console.print(f"path:  {facts['path']}")
    _console.print(f"size:  {facts['size_bytes']:,} bytes")
    _console.print(f"uuid:  {facts['uuid']}")
    table = Table()
    for column in ("collection", "documents", "last sequence", "indexes"):
        table.add_column(column)
    for c in collections:
        table.add_row(
            c["full_name"], str(c["count"]), str(c["last_sequence"]), ", ".join(c["indexes"])
        )
    _console.print(table)


@click.command(
    "compact", short_help="Purge expired documents, delete unused blobs.", epilog=EXIT_CODES_HELP
)
@database_argument
@json_option
@handles_errors
def compact(path: Path, as_json: bool) -> None:
    """Purge expired documents and delete blobs no document references.

    Needs write access: refused (exit code 5) while another process has the database open.
    --json prints {"path", "size_before", "size_after"}.
    """
    with open_database(path, write=True) as db:
        before = _size_on_disk(db.path)
        db.compact()
        folder = db.path
    after = _size_on_disk(folder)
    if as_json:
        emit_json({"path": str(folder), "size_before": before, "size_after": after})
    else:
        _console.print(f"compacted {folder}: {before:,} -> {after:,} bytes")


COMMANDS = [ls, get, put, rm, info, compact]

__all__ = ["COMMANDS"]
