"""``couchlite sync PATH URL``: replicate a database with a peer, once or continuously.

The target is a URL (``ws://`` or ``wss://host:port/db``) or, with ``--discover NAME``, a peer
found over DNS-SD (the ``discovery`` extra; its advertised certificate fingerprint is pinned).
``--push`` or ``--pull`` replicate one way; neither or both, both ways. One-shot by default: it
stops once caught up; ``--continuous`` keeps replicating until SIGINT/SIGTERM (then exit code 0).
The database and the collections (``--collection``, repeatable; default the default
collection) are created when missing.

TLS: the server's certificate must verify against the system's CAs, unless ``--pin FILE`` (the
one certificate accepted, PEM or DER), ``--fingerprint HEX`` (the SHA-256 of the one leaf
certificate accepted, as ``serve`` prints it; needs the discovery feature) or ``--insecure``
(any self-signed certificate: for trusted networks only) says otherwise.
``--user NAME --password-env VAR`` logs in with HTTP Basic.

Progress on stderr (:mod:`couchlite.cli._progress`): a bar on a terminal (changes done out
of the total known, bytes, rate), plain lines otherwise, nothing with ``--quiet``. Then a
summary on stdout -- documents pushed and pulled, document errors, bytes, seconds -- or with
``--json`` one object: ``{"status": "ok"|"error"|"interrupted", "pushed", "pulled",
"errors", "bytes", "seconds", "url", "error"}``. Bytes are the JSON size of the replicated
documents' bodies.

Exit codes (:mod:`couchlite.cli._common`): 0 ok, 1 some documents failed, 3 not found
(``--discover`` found nothing, or the remote database does not exist), 4 network, TLS or
authentication failure, 130 a one-shot sync interrupted.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from couchlite import (
    BasicAuthenticator,
    Collection,
    CouchliteError,
    Database,
    DocumentReplication,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorChange,
    ReplicatorConfiguration,
    ReplicatorType,
    TLSError,
    _tuning,
)
from couchlite.cli import _discovery
from couchlite.cli._common import (
    DEFAULT_COLLECTION,
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    CommandError,
    database_argument,
    dumps,
    fail,
    find_collection,
    handles_errors,
    json_option,
    open_database,
)
from couchlite.cli._progress import ProgressDisplay, human_bytes
from couchlite.cli._signals import stop_requested
from couchlite.cli.serve import user_password

#: Connection attempts of a one-shot sync: it fails within seconds when the peer is away
#: (1 s, then 2 s of backoff) instead of the library's ten attempts over minutes.
ONE_SHOT_ATTEMPTS = 3

#: How long a stop may take (the replicator's own stop is bounded well below this).
STOP_TIMEOUT_S = 60.0


class _Tally:
    """Documents pushed, pulled and failed, counted from document-replication events (on
    the replicator's notifier thread, read by the main thread)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self.pushed = self.pulled = self.errors = self.bytes = 0
        self.first_errors: list[str] = []

    def _size(self, scope: str, collection: str, doc_id: str) -> int:
        try:
            found = self._db.collection(collection, scope)
            doc = found.get(doc_id) if found is not None else None
        except CouchliteError:  # the database closing under a late event
            return 0
        return len(doc.to_json()) if doc is not None else 0

    def on_documents(self, event: DocumentReplication) -> None:
        for doc in event.documents:
            size = 0 if doc.error else self._size(doc.scope, doc.collection, doc.id)
            with self._lock:
                if doc.error is not None:
                    self.errors += 1
                    if len(self.first_errors) < 5:
                        self.first_errors.append(f"{doc.id}: {doc.error}")
                elif event.is_push:
                    self.pushed += 1
                else:
                    self.pulled += 1
                self.bytes += size


def _replicator_type(push: bool, pull: bool) -> ReplicatorType:
    if push and not pull:
        return ReplicatorType.PUSH
    if pull and not push:
        return ReplicatorType.PULL
    return ReplicatorType.PUSH_AND_PULL


def _target(url: str | None, discover: str | None, timeout: float) -> tuple[str, str | None]:
    """``(url, fingerprint advertised or None)``."""
    if (url is None) == (discover is None):
        raise CommandError("give either URL or --discover NAME", 2)
    if url is not None:
        return url, None
    assert discover is not None
    peer = _discovery.find(discover, timeout=timeout)
    return str(peer["url"]), peer.get("fingerprint")


def _trust(
    pin: Path | None, fingerprint: str | None, insecure: bool, advertised: str | None
) -> dict[str, Any]:
    if (pin is not None) + (fingerprint is not None) + insecure > 1:
        raise CommandError("--pin, --fingerprint and --insecure exclude each other", 2)
    if pin is not None:
        return {"pinned_server_certificate": pin.read_bytes()}
    if fingerprint is not None:
        return _discovery.fingerprint_option(fingerprint)
    if insecure:
        return {"accept_only_self_signed_server_certificate": True}
    if advertised:
        return _discovery.fingerprint_option(advertised)
    return {}


@click.command(
    "sync", short_help="Replicate with a peer, once or continuously.", epilog=EXIT_CODES_HELP
)
@database_argument
@click.argument("url", required=False)
@click.option("--discover", metavar="NAME", help="Sync with the peer advertised as NAME.")
@click.option("--push", is_flag=True, help="Only push (with --pull too: both ways).")
@click.option("--pull", is_flag=True, help="Only pull (with --push too: both ways).")
@click.option("--continuous", is_flag=True, help="Keep replicating until SIGINT.")
@click.option(
    "--collection",
    "-c",
    "collections",
    multiple=True,
    metavar="[SCOPE.]NAME",
    help=f"A collection to replicate; repeatable  [default: {DEFAULT_COLLECTION}]",
)
@click.option("--user", metavar="NAME", help="Log in with HTTP Basic as NAME.")
@click.option("--password-env", metavar="VAR", help="Environment variable holding the password.")
@click.option("--pin", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Accept only this server certificate (PEM or DER file).")  # fmt: skip
@click.option("--fingerprint", metavar="HEX",
              help="Accept only a server leaf certificate with this SHA-256 (hex).")  # fmt: skip
@click.option("--insecure", is_flag=True, help="Accept any self-signed server certificate.")
@click.option("--timeout", type=click.FloatRange(min=0.1),
              default=_tuning.CLI_DISCOVERY_TIMEOUT_S, show_default=True,
              help="Seconds --discover looks for the peer.")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="No progress, only the summary.")
@json_option
@handles_errors
def sync(
    path: Path,
    url: str | None,
    discover: str | None,
    push: bool,
    pull: bool,
    continuous: bool,
    collections: tuple[str, ...],
    user: str | None,
    password_env: str | None,
    pin: Path | None,
    fingerprint: str | None,
    insecure: bool,
    timeout: float,
    quiet: bool,
    as_json: bool,
) -> None:
    """Replicate the database at PATH with the peer at URL (or --discover NAME).

    One-shot unless --continuous. Progress on stderr (a bar on a terminal), then a summary;
    --json prints the summary as one JSON object.

    \b
      couchlite serve data/hub --port 4984            # prints its URL and fingerprint
      couchlite sync data/phone wss://10.0.0.2:4984/hub --fingerprint 3f2a...
    """
    credentials = user_password(user, password_env)
    target, advertised = _target(url, discover, timeout)
    trust = _trust(pin, fingerprint, insecure, advertised)
    with open_database(path, write=True, create=True) as db:
        chosen = [find_collection(db, c, create=True) for c in collections or [DEFAULT_COLLECTION]]
        config = ReplicatorConfiguration(
            target,
            replicator_type=_replicator_type(push, pull),
            continuous=continuous,
            authenticator=BasicAuthenticator(*credentials) if credentials else None,
            max_attempts=0 if continuous else ONE_SHOT_ATTEMPTS,
            **trust,
        )
        config.add_collections(chosen)
        _replicate(db, config, chosen, target, trusted=bool(trust), quiet=quiet, as_json=as_json)


def _replicate(
    db: Database,
    config: ReplicatorConfiguration,
    chosen: list[Collection],
    target: str,
    *,
    trusted: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    tally = _Tally(db)
    stopped = threading.Event()
    replicator = Replicator(config)

    def on_change(change: ReplicatorChange) -> None:
        if change.status.activity is ReplicatorActivityLevel.STOPPED:
            stopped.set()

    replicator.add_change_listener(on_change)
    replicator.add_document_replication_listener(tally.on_documents)
    started = time.monotonic()
    interrupted = False
    what = "syncing" if config.continuous else "sync"
    with stop_requested() as stop, ProgressDisplay(what, quiet=quiet or as_json) as shown:
        replicator.start()
        while not stopped.is_set():
            if stop.is_set() and not interrupted:
                interrupted = True
                replicator.stop()
                break
            progress = replicator.status.progress
            shown.update(progress.completed, progress.total or None, tally.bytes)
            stopped.wait(_tuning.CLI_STATUS_POLL_S)
        try:
            status = replicator.wait_for(ReplicatorActivityLevel.STOPPED, timeout=STOP_TIMEOUT_S)
        except TimeoutError:
            raise CommandError(f"the replicator did not stop within {STOP_TIMEOUT_S:g} s") from None
        shown.update(status.progress.completed, status.progress.total or None, tally.bytes)
    error = status.error
    failed = error is not None or tally.errors
    state = "interrupted" if interrupted else ("error" if failed else "ok")
    summary = {
        "status": state,
        "url": target,
        "collections": [c.full_name for c in chosen],
        "pushed": tally.pushed,
        "pulled": tally.pulled,
        "errors": tally.errors,
        "bytes": tally.bytes,
        "seconds": round(time.monotonic() - started, 3),
        "error": None if error is None else str(error),
        "document_errors": tally.first_errors,
    }
    if as_json:
        sys.stdout.write(dumps(summary) + "\n")
    else:
        sys.stdout.write(
            f"{state}: pushed {tally.pushed:,}, pulled {tally.pulled:,} documents "
            f"({human_bytes(tally.bytes)}), {tally.errors} errors, "
            f"{summary['seconds']:.1f} s\n"
        )
        for line in tally.first_errors:
            sys.stderr.write(f"document error: {line}\n")
    sys.stdout.flush()
    if error is not None:
        if isinstance(error, TLSError) and not trusted:
            hint = "; a self-signed peer needs --fingerprint HEX, --pin FILE or --insecure"
            error = TLSError(error.message + hint, code=error.code)
        fail(error)
    if interrupted and not config.continuous:
        sys.exit(EXIT_INTERRUPTED)
    if tally.errors:
        sys.exit(EXIT_ERROR)


COMMANDS = [sync]

__all__ = ["COMMANDS"]
