"""``couchlite serve PATH``: serve collections of a database to peers over WebSocket.

Starts a ``UrlEndpointListener`` on the database (created when missing), prints its URLs and
the SHA-256 fingerprint of its TLS certificate (lowercase hex: what ``sync --fingerprint``
takes), then shows the connections as they come and go until SIGINT or SIGTERM, which stop the
listener and close the database cleanly (exit code 0).

* ``--tls`` (default) serves ``wss://`` with the database's persistent anonymous self-signed
  identity, or ``--identity LABEL`` from the key store (``couchlite identity``); ``--no-tls``
  serves ``ws://``.
* ``--user NAME --password-env VAR``: peers must log in (HTTP Basic) with NAME and the password
  held by the environment variable VAR (a password is never a command-line argument: other
  users can read those).
* ``--read-only``: peers may pull but not push.
* ``--advertise [--name NAME]``: announce the listener over DNS-SD (the ``discovery`` extra).
* ``--certificate-out FILE``: write the certificate (PEM) for ``sync --pin FILE``.

Output: on a terminal a status line updated live; otherwise a line per change of the
connection counts. ``--json`` prints one JSON object per line: ``{"event": "started", "urls",
"port", "tls", "fingerprint", "database", "collections", "service_name"}``, then
``{"event": "connections", "connections": N, "active": M}`` on each change, and
``{"event": "stopped"}``. Exit codes: :mod:`couchlite.cli._common`.
"""

from __future__ import annotations

import hmac
import sys
import threading
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from rich.console import Console
from rich.live import Live
from rich.text import Text

from couchlite import (
    ConnectionStatus,
    ListenerPasswordAuthenticator,
    TLSIdentity,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
    _tuning,
)
from couchlite.cli import _discovery
from couchlite.cli._common import (
    DEFAULT_COLLECTION,
    EXIT_CODES_HELP,
    CommandError,
    database_argument,
    emit_json,
    find_collection,
    handles_errors,
    json_option,
    open_database,
)
from couchlite.cli._secrets import read_secret
from couchlite.cli._signals import stop_requested


def fingerprint_of(identity: TLSIdentity | None) -> str | None:
    """SHA-256 of the leaf certificate, lowercase hex without separators."""
    if identity is None:
        return None
    return identity.certificates[0].fingerprint(hashes.SHA256()).hex()


def password_authenticator(user: str, password: str) -> ListenerPasswordAuthenticator:
    expected = (user.encode(), password.encode())

    def check(username: str, given: str) -> bool:
        # constant-time comparisons: the time taken must not tell how much of it matched
        return hmac.compare_digest(username.encode(), expected[0]) & hmac.compare_digest(
            given.encode(), expected[1]
        )

    return ListenerPasswordAuthenticator(check)


def user_password(user: str | None, password_env: str | None) -> tuple[str, str] | None:
    """``(user, password)`` for ``--user``/``--password-env`` (``None`` without ``--user``)."""
    if user is None:
        if password_env is not None:
            raise CommandError("--password-env needs --user", 2)
        return None
    password = read_secret(
        f"password for {user}",
        env_name=password_env,
        hint="give --password-env VAR naming an environment variable that holds it",
    )
    return user, password


def _status_text(listener: UrlEndpointListener, status: ConnectionStatus) -> Text:
    return Text(
        f"listening on port {listener.port}: {status.connection_count} connection"
        f"{'s' if status.connection_count != 1 else ''} "
        f"({status.active_connection_count} replicating)  -- Ctrl-C stops"
    )


class _Reporter:
    """Prints the listener's progress: JSON lines, a live line, or plain lines."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console(highlight=False, soft_wrap=True, markup=False)
        self.live: Live | None = None

    def started(self, facts: dict[str, Any]) -> None:
        if self.as_json:
            emit_json({"event": "started", **facts})
            return
        self.console.print(f"serving {facts['database']} ({', '.join(facts['collections'])})")
        for url in facts["urls"]:
            self.console.print(f"  url: {url}")
        if facts["fingerprint"]:
            self.console.print(f"  fingerprint (SHA-256): {facts['fingerprint']}")
        if facts["service_name"]:
            self.console.print(f"  advertised as: {facts['service_name']}")
        sys.stdout.flush()

    def connections(self, listener: UrlEndpointListener, status: ConnectionStatus) -> None:
        if self.as_json:
            emit_json(
                {
                    "event": "connections",
                    "connections": status.connection_count,
                    "active": status.active_connection_count,
                }
            )
        elif self.console.is_terminal:
            if self.live is None:
                self.live = Live(console=self.console, auto_refresh=False, transient=False)
                self.live.start()
            self.live.update(_status_text(listener, status), refresh=True)
        else:
            self.console.print(
                f"connections: {status.connection_count} "
                f"({status.active_connection_count} replicating)"
            )
            sys.stdout.flush()

    def stopped(self) -> None:
        if self.live is not None:
            self.live.stop()
        if self.as_json:
            emit_json({"event": "stopped"})
        else:
            self.console.print("stopped")


@click.command(
    "serve", short_help="Serve collections to peers (a listener).", epilog=EXIT_CODES_HELP
)
@database_argument
@click.option(
    "--collection",
    "-c",
    "collections",
    multiple=True,
    metavar="[SCOPE.]NAME",
    help=f"A collection to serve (created if missing); repeatable  [default: {DEFAULT_COLLECTION}]",
)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="TCP port; 0 picks a free one (printed).")  # fmt: skip
@click.option("--interface", metavar="ADDRESS|NAME", help="Listen on one address or interface.")
@click.option("--tls/--no-tls", default=True, show_default=True, help="wss:// or ws://.")
@click.option("--identity", "identity_label", metavar="LABEL",
              help="TLS identity from the key store (default: an anonymous one).")  # fmt: skip
@click.option("--user", metavar="NAME", help="Require HTTP Basic login as NAME.")
@click.option("--password-env", metavar="VAR",
              help="Environment variable holding --user's password.")  # fmt: skip
@click.option("--read-only", is_flag=True, help="Peers may pull, not push.")
@click.option("--advertise", is_flag=True, help="Announce over DNS-SD (the discovery extra).")
@click.option("--name", "service", metavar="NAME", help="The name to advertise under.")
@click.option("--certificate-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the TLS certificate (PEM) here, for sync --pin.")  # fmt: skip
@json_option
@handles_errors
def serve(
    path: Path,
    collections: tuple[str, ...],
    port: int,
    interface: str | None,
    tls: bool,
    identity_label: str | None,
    user: str | None,
    password_env: str | None,
    read_only: bool,
    advertise: bool,
    service: str | None,
    certificate_out: Path | None,
    as_json: bool,
) -> None:
    """Serve collections of the database at PATH to peers, until SIGINT or SIGTERM.

    Prints the URLs to replicate with and the SHA-256 fingerprint of the TLS certificate
    (for "couchlite sync --fingerprint"), then the connections live. With --json, one JSON
    object per line: a "started" event (urls, port, fingerprint...), "connections" events,
    "stopped".
    """
    if identity_label and not tls:
        raise CommandError("--identity needs --tls", 2)
    if certificate_out is not None and not tls:
        raise CommandError("--certificate-out needs --tls", 2)
    if service is not None and not advertise:
        raise CommandError("--name needs --advertise", 2)
    if advertise:
        _discovery.require()
    credentials = user_password(user, password_env)
    identity = TLSIdentity.identity(identity_label) if identity_label else None
    with open_database(path, write=True, create=True) as db:
        served = [find_collection(db, c, create=True) for c in collections or [DEFAULT_COLLECTION]]
        config = UrlEndpointListenerConfiguration(
            served,
            port=port,
            network_interface=interface,
            disable_tls=not tls,
            tls_identity=identity,
            authenticator=password_authenticator(*credentials) if credentials else None,
            read_only=read_only,
        )
        if advertise:
            _discovery.advertise(config, service)
        listener = UrlEndpointListener(config)
        reporter = _Reporter(as_json)
        with stop_requested() as stop:
            listener.start()
            try:
                if certificate_out is not None:
                    _write_certificate(listener, certificate_out)
                _run(listener, reporter, stop, db.name, [c.full_name for c in served])
            finally:
                listener.stop()
                reporter.stopped()


def _write_certificate(listener: UrlEndpointListener, path: Path) -> None:
    assert listener.tls_identity is not None  # --tls, checked before the start
    path.write_bytes(listener.tls_identity.certificates[0].public_bytes(Encoding.PEM))


def _run(
    listener: UrlEndpointListener,
    reporter: _Reporter,
    stop: threading.Event,
    database: str,
    collections: list[str],
) -> None:
    reporter.started(
        {
            "urls": listener.urls,
            "port": listener.port,
            "tls": listener.tls_identity is not None,
            "fingerprint": fingerprint_of(listener.tls_identity),
            "database": database,
            "collections": collections,
            "service_name": _discovery.service_name(listener),
        }
    )
    shown: ConnectionStatus | None = None
    while not stop.is_set():
        if not listener.is_listening:
            raise CommandError("the listener stopped")
        status = listener.status
        if status != shown:
            reporter.connections(listener, status)
            shown = status
        stop.wait(_tuning.CLI_STATUS_POLL_S)


COMMANDS = [serve]

__all__ = ["COMMANDS", "fingerprint_of", "password_authenticator", "user_password"]
