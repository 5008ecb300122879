"""``couchlite peers``: the couchlite and Couchbase Lite peers advertised on the local network.

Browses DNS-SD for ``--timeout`` seconds and lists what answered: name, addresses and port,
database and collections, whether it uses TLS, its certificate fingerprint. ``--watch`` streams
the peers as they are added, updated and removed, until SIGINT (exit code 0) or ``--timeout``
when one is given. ``--interface`` (repeatable) limits the browsing to some interfaces (default:
``$COUCHLITE_DISCOVERY_INTERFACES``, else every one). Needs the ``discovery`` extra.

``--json``: one JSON object per peer (``name, addresses, port, database, collections, tls,
fingerprint, auth, protocols, peer_id, url, txt``); with ``--watch``, one per event:
``{"event": "added"|"updated"|"removed", "peer": {...}}``. Exit codes:
:mod:`couchlite.cli._common`.
"""

from __future__ import annotations

import threading
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from couchlite import _tuning
from couchlite.cli import _discovery
from couchlite.cli._common import EXIT_CODES_HELP, emit_json, handles_errors, json_option
from couchlite.cli._signals import stop_requested

_console = Console(highlight=False, soft_wrap=True, markup=False)


def _where(peer: dict[str, Any]) -> str:
    return ", ".join(f"{a}:{peer['port']}" for a in peer["addresses"])


def _table(found: list[dict[str, Any]]) -> Table:
    table = Table()
    for column in ("name", "address", "database", "collections", "tls", "fingerprint"):
        table.add_column(column)
    for peer in found:
        table.add_row(
            *(
                Text(str(value))
                for value in (
                    peer["name"],
                    _where(peer),
                    peer["database"] or "",
                    ", ".join(peer["collections"]),
                    "yes" if peer["tls"] else "no",
                    peer["fingerprint"] or "",
                )
            )
        )
    return table


def _watch(
    timeout: float | None, interfaces: list[str] | None, as_json: bool, stop: threading.Event
) -> None:
    with _discovery.browse(timeout=timeout, interfaces=interfaces) as events:
        watcher = threading.Thread(target=_print_events, args=(events, as_json), daemon=True)
        watcher.start()
        # the main thread waits for a signal; the events are printed as they come
        while watcher.is_alive() and not stop.is_set():
            stop.wait(_tuning.CLI_STATUS_POLL_S)


def _print_events(events: Any, as_json: bool) -> None:
    for kind, peer in events:
        if as_json:
            emit_json({"event": kind, "peer": peer})
        else:
            _console.print(f"{kind}: {peer['name']} {_where(peer)} {peer['url']}")


@click.command("peers", short_help="List the peers on the local network.", epilog=EXIT_CODES_HELP)
@click.option("--watch", is_flag=True, help="Stream peers as they come and go, until SIGINT.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None,
              help=f"Seconds to browse  [default: {_tuning.CLI_DISCOVERY_TIMEOUT_S:g}; "
              "with --watch: until SIGINT]")  # fmt: skip
@click.option("--interface", "interfaces", multiple=True, metavar="NAME|ADDRESS",
              help="Browse on this interface only; repeatable.")  # fmt: skip
@json_option
@handles_errors
def peers(watch: bool, timeout: float | None, interfaces: tuple[str, ...], as_json: bool) -> None:
    """List the peers advertised on the local network (DNS-SD; the discovery extra).

    --watch streams additions, updates and removals. --json prints one JSON object per peer
    (per event with --watch).
    """
    chosen = list(interfaces) or None
    if watch:
        with stop_requested() as stop:
            _watch(timeout, chosen, as_json, stop)
        return
    found = _discovery.peers(
        timeout=timeout if timeout is not None else _tuning.CLI_DISCOVERY_TIMEOUT_S,
        interfaces=chosen,
    )
    if as_json:
        for peer in found:
            emit_json(peer)
    elif found:
        _console.print(_table(found))
    else:
        _console.print("no peers found")


COMMANDS = [peers]

__all__ = ["COMMANDS"]
