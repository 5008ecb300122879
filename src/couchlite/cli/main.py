"""The ``couchlite`` click group: the global options and every command, module by module.

* :mod:`~couchlite.cli.documents`: ``ls``, ``get``, ``put``, ``rm``, ``info``, ``compact``;
* :mod:`~couchlite.cli.transfer`: ``export`` and ``import`` (JSON Lines);
* :mod:`~couchlite.cli.query`: ``query``;
* :mod:`~couchlite.cli.serve`: ``serve`` (a listener);
* :mod:`~couchlite.cli.sync`: ``sync`` (a replicator, with :mod:`~couchlite.cli._progress`);
* :mod:`~couchlite.cli.peers`: ``peers`` (through :mod:`~couchlite.cli._discovery`);
* :mod:`~couchlite.cli.identity`: ``identity ...`` (TLS identities in a key store).

Exit codes and error output are in :mod:`couchlite.cli._common`.
"""

from __future__ import annotations

import click

from couchlite.cli import documents, peers, query, serve, sync, transfer
from couchlite.cli._common import EXIT_CODES_HELP
from couchlite.cli.identity import identity

#: Commands and groups show their whole help text, however wide the terminal.
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(
    context_settings=_CONTEXT,
    short_help="An embedded document database with Couchbase Lite's peer-to-peer sync.",
    epilog=EXIT_CODES_HELP,
)
@click.version_option(package_name="couchlite")
@click.option(
    "--debug", is_flag=True, help="Show the traceback of an error, not only its one-line message."
)
def main(debug: bool) -> None:
    """couchlite: an embedded document database with Couchbase Lite's peer-to-peer sync.

    PATH is a database folder, dir/name.cblite2 (the extension may be left out). Read
    commands (ls, get, export, query, info) open it read-only, so they work on the database
    of a running application; put, import, sync and serve create it when missing. Every
    command has --json output for scripts. "python -m couchlite" runs the same command; see
    "couchlite COMMAND --help" for each command's options.
    """


for _command in [
    *documents.COMMANDS,
    *transfer.COMMANDS,
    *query.COMMANDS,
    *serve.COMMANDS,
    *sync.COMMANDS,
    *peers.COMMANDS,
    identity,
]:
    main.add_command(_command)

__all__ = ["main"]
