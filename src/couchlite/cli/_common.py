"""What every database command shares: exit codes, errors, ``--json``, opening PATH.

Exit codes
----------
====  ======================================================================================
0     success
1     an error (invalid data, a query that does not parse, a failed write...)
2     usage: a misused option or argument (click's own)
3     not found: no database at PATH (read commands never create one), no such collection or
      document; a peer with no database of that name (HTTP 404)
4     network, TLS or authentication failure (refused, unreachable, untrusted certificate,
      credentials refused, a peer that broke the protocol)
5     the database is busy or read-only here: another process owns it (only one process at a
      time may write; reads run beside it), or the write was refused
130   interrupted (SIGINT) before a one-shot command finished
====  ======================================================================================

Errors print one line on stderr, ``error: <message>``, and no traceback; the global
``--debug`` option (``couchlite --debug COMMAND``) prints the traceback as well.

PATH is a database folder, ``dir/name.cblite2``; the extension may be left out (``dir/name``).
Commands that write (``put``, ``import``, ``sync``, ``serve``) create a missing database and
collection; ``rm`` and ``compact`` need an existing database; the read commands (``ls``,
``get``, ``export``, ``query``, ``info``) open it read-only, so that they work on the database
of a running application, and never create anything.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import orjson

from couchlite import (
    AuthenticationError,
    Collection,
    CouchliteError,
    Database,
    DatabaseConfiguration,
    DatabaseError,
    ErrorDomain,
    LiteCoreCode,
    NetworkError,
    NotFoundError,
    ProtocolError,
)
from couchlite.cli._secrets import SecretUnavailable

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_NETWORK = 4
EXIT_BUSY = 5
EXIT_INTERRUPTED = 130

#: The epilog of every command's ``--help``: the exit codes, one line each.
EXIT_CODES_HELP = """\b
Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 network, TLS or authentication failure,
5 database busy (another process writes to it) or read-only, 130 interrupted.
"""

#: The default collection's full name, as ``--collection`` takes it.
DEFAULT_COLLECTION = "_default._default"

EXTENSION = ".cblite2"


class Interrupted(Exception):
    """SIGINT (or SIGTERM) stopped a command before it finished: exit status 130."""


class CommandError(click.ClickException):
    """A failure the command itself detects (not the library's), with its exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = exit_code


def exit_code_of(exc: BaseException) -> int:
    """The exit status for an error (see the module docstring)."""
    if isinstance(exc, CommandError):
        return exc.status
    if isinstance(exc, NotFoundError) or (
        # the store's own "no database at PATH" (a folder deleted under us) is one too
        isinstance(exc, DatabaseError)
        and exc.domain is ErrorDomain.LITECORE
        and exc.code == LiteCoreCode.NOT_FOUND
    ):
        return EXIT_NOT_FOUND
    if isinstance(exc, NetworkError) and exc.domain is ErrorDomain.WEBSOCKET and exc.code == 404:
        return EXIT_NOT_FOUND  # the peer answered: it has no database of that name
    if isinstance(exc, (NetworkError, AuthenticationError, ProtocolError)):
        return EXIT_NETWORK
    if isinstance(exc, DatabaseError) and exc.code in (
        LiteCoreCode.BUSY,
        LiteCoreCode.NOT_WRITEABLE,
    ):
        return EXIT_BUSY
    if isinstance(exc, Interrupted):
        return EXIT_INTERRUPTED
    return EXIT_ERROR


def debugging() -> bool:
    """Whether the global ``--debug`` option was given."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().params.get("debug"))


def fail(exc: BaseException) -> NoReturn:
    """Print ``exc`` as one line on stderr (and its traceback with ``--debug``), then exit."""
    if debugging():
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, (click.ClickException, CouchliteError)):
        message = exc.message
    elif isinstance(exc, Interrupted):
        message = str(exc) or "interrupted"
    else:
        message = f"{type(exc).__name__}: {exc}"
    # one line, whatever the message holds: scripts grep it
    line = " ".join(message.split())
    sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()
    sys.exit(exit_code_of(exc))


def handles_errors(fn: F) -> F:
    """Turn the library's errors (and the command's own) into one line and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (CouchliteError, CommandError, SecretUnavailable, Interrupted) as exc:
            fail(exc)
        except KeyboardInterrupt:
            fail(Interrupted("interrupted"))
        except BrokenPipeError:  # `couchlite ... | head`: the reader had enough, not an error
            quiet_broken_stdout()
            sys.exit(EXIT_OK)
        except OSError as exc:  # a file that cannot be read or written, a closed pipe
            fail(CommandError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")))

    return wrapper  # type: ignore[return-value]


def quiet_broken_stdout() -> None:
    """Point stdout at /dev/null: the interpreter would complain once more when it flushes
    a stdout whose reader has gone."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


# --- options shared by many commands -----------------------------------------------------------


def json_option(fn: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Machine-readable JSON output (see each command)."
    )(fn)


def collection_option(fn: F) -> F:
    return click.option(
        "--collection",
        "-c",
        default=DEFAULT_COLLECTION,
        show_default=True,
        metavar="[SCOPE.]NAME",
        help="The collection (a name alone is in the _default scope).",
    )(fn)


def database_argument(fn: F) -> F:
    return click.argument("path", metavar="PATH", type=click.Path(path_type=Path))(fn)


# --- databases and collections -----------------------------------------------------------------


def split_path(path: Path) -> tuple[str, Path]:
    """``dir/name.cblite2`` (or ``dir/name``) -> ``("name", dir)``."""
    name = path.name[: -len(EXTENSION)] if path.name.endswith(EXTENSION) else path.name
    if not name:
        raise CommandError(f"{path} does not name a database", EXIT_USAGE)
    return name, path.parent


def database_folder(path: Path) -> Path:
    name, directory = split_path(path)
    return directory / f"{name}{EXTENSION}"


@contextmanager
def open_database(path: Path, *, write: bool, create: bool = False) -> Iterator[Database]:
    """The database at PATH: read-only unless ``write``; created only if ``create``."""
    name, directory = split_path(path)
    if (not write or not create) and not Database.exists(name, directory):
        raise NotFoundError(f"no database at {directory / (name + EXTENSION)}")
    config = DatabaseConfiguration(directory=directory, read_only=not write)
    try:
        db = Database(name, config)
    except DatabaseError as exc:
        if exc.code == LiteCoreCode.BUSY:
            raise DatabaseError(
                f"{exc.message}: only one process at a time may write to a database (read "
                "commands such as ls, get, export and query work beside it)",
                domain=exc.domain,
                code=exc.code,
            ) from exc
        raise
    with db:
        yield db


def parse_collection(spec: str) -> tuple[str, str]:
    """``scope.name`` or ``name`` -> ``(scope, name)``."""
    scope, dot, name = spec.partition(".")
    return (scope, name) if dot else ("_default", spec)


def find_collection(db: Database, spec: str, *, create: bool = False) -> Collection:
    scope, name = parse_collection(spec)
    found = db.collection(name, scope)
    if found is None:
        if not create:
            raise NotFoundError(f"no collection {scope}.{name} in {db.path}")
        found = db.create_collection(name, scope)
    return found


def all_collections(db: Database) -> list[Collection]:
    return [c for scope in db.scopes() for c in scope.collections()]


# --- output ------------------------------------------------------------------------------------


def _default(value: object) -> object:
    # blobs (in document bodies, query results) are shown as the dict stored for them
    properties = getattr(value, "properties", None)
    if isinstance(properties, dict):
        return properties
    return str(value)


def dumps(value: object, *, pretty: bool = False) -> str:
    """JSON text of ``value``; anything JSON has no type for becomes its string."""
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if pretty else 0)
    return orjson.dumps(value, default=_default, option=option).decode()


def emit_json(value: object) -> None:
    """One JSON document on a line of stdout (flushed: readers follow it live)."""
    sys.stdout.write(dumps(value) + "\n")
    sys.stdout.flush()


def parse_json_value(text: str) -> object:
    """``--param`` values: JSON when they parse as JSON, else the text itself."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


__all__ = [
    "DEFAULT_COLLECTION",
    "EXIT_BUSY",
    "EXIT_CODES_HELP",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "Interrupted",
    "all_collections",
    "collection_option",
    "database_argument",
    "database_folder",
    "debugging",
    "dumps",
    "emit_json",
    "exit_code_of",
    "fail",
    "find_collection",
    "handles_errors",
    "json_option",
    "open_database",
    "parse_collection",
    "parse_json_value",
    "quiet_broken_stdout",
    "split_path",
]
