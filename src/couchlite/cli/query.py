"""``couchlite query PATH "SELECT ..."``: run a SQL++ query, print its rows.

Opens the database read-only. Rows are a rich table, or with ``--json`` JSON Lines: one
object per row, keyed by column name (a MISSING column is absent). ``--param name=value``
binds ``$name``: the value is JSON when it parses as JSON (``3``, ``true``, ``"3"``,
``[1,2]``), else the text itself. ``--explain`` prints SQLite's plan instead of running the
query. A query that does not parse is exit code 1 (the error names the offset). Exit codes:
:mod:`couchlite.cli._common`.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from couchlite.cli._common import (
    EXIT_CODES_HELP,
    CommandError,
    database_argument,
    dumps,
    emit_json,
    handles_errors,
    json_option,
    open_database,
    parse_json_value,
)

_console = Console(soft_wrap=True, highlight=False, markup=False)


def _parameters(pairs: tuple[str, ...]) -> dict[str, object]:
    parameters: dict[str, object] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        name = name.strip().removeprefix("$")
        if not equals or not name:
            raise CommandError(f"--param {pair!r}: expected NAME=VALUE", 2)
        parameters[name] = parse_json_value(value)
    return parameters


def _cell(value: object) -> str:
    return value if isinstance(value, str) else dumps(value)


@click.command("query", short_help="Run a SQL++ query.", epilog=EXIT_CODES_HELP)
@database_argument
@click.argument("sql", metavar='"SELECT ..."')
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Bind $NAME (VALUE as JSON if it parses, else text); repeatable.",
)
@click.option("--explain", is_flag=True, help="Print the SQL and SQLite's plan instead.")
@json_option
@handles_errors
def query(path: Path, sql: str, params: tuple[str, ...], explain: bool, as_json: bool) -> None:
    """Run a SQL++ query and print its rows.

    Rows are shown as a table, or with --json as JSON Lines (one object per row, keyed by
    column name). Opens the database read-only.

    \b
      couchlite query data/app "SELECT meta().id, name FROM _ WHERE price < $max" -p max=10
    """
    with open_database(path, write=False) as db:
        prepared = db.create_query(sql)
        prepared.parameters = _parameters(params)
        if explain:
            plan = prepared.explain()
            if as_json:
                emit_json({"explain": plan})
            else:
                _console.print(plan, markup=False)
            return
        results = prepared.execute()
        columns = results.column_names
        if as_json:
            for row in results:
                emit_json(row.to_dict())
            return
        table = Table(*columns)
        count = 0
        for row in results:
            values = row.to_list()
            # Text: a value's brackets are data, not rich markup
            table.add_row(*(Text("" if v is None else _cell(v)) for v in values))
            count += 1
    _console.print(table)
    _console.print(f"{count} row{'s' if count != 1 else ''}")


COMMANDS = [query]

__all__ = ["COMMANDS"]
