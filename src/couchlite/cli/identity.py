"""``couchlite identity ...``: manage the TLS identities of a key store from the shell.

Theory of operation
-------------------
Each command opens a :class:`couchlite.KeyStore`: ``--keystore DIR`` (or ``$COUCHLITE_KEYSTORE``,
else the platform's default folder) and the passphrase from ``$COUCHLITE_KEYSTORE_PASSPHRASE``,
or, with ``--ask-passphrase``, from a hidden prompt (on a terminal) or a line of stdin; the OS
keyring is used when the ``keyring`` package works, exactly as in the library. Passwords for
PKCS#12 files come from ``--password-env NAME``, a hidden prompt (confirmed on export) or a line
of stdin -- never from a command-line argument, where other users could read them in the
process list (:mod:`couchlite.cli._secrets`).

A CA identity (``create --ca``) issues server and client identities alike; ``--server`` and
``--client`` describe the identities it issues, so they are refused together with ``--ca``.

Errors of the library (``CouchliteError``) and missing secrets become one line on stderr and
exit status 1 (``couchlite --debug identity ...`` adds the traceback); misused options are
click's usage errors (exit status 2).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from rich.console import Console
from rich.table import Table

from couchlite import CouchliteError, KeyStore, KeyUsage, TLSIdentity
from couchlite.cli._common import debugging
from couchlite.cli._secrets import SecretUnavailable, read_secret, stdin_is_a_terminal

F = TypeVar("F", bound=Callable[..., Any])

_console = Console()
_errors = Console(stderr=True)

#: Commands and groups show their whole help text, however wide the terminal.
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fails_cleanly(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (CouchliteError, SecretUnavailable) as exc:
            if debugging():
                traceback.print_exception(exc, file=sys.stderr)
            message = exc.message if isinstance(exc, SecretUnavailable) else str(exc)
            # soft_wrap: one line, however long, so that scripts can grep it.
            _errors.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _store(ctx: click.Context) -> KeyStore:
    options = ctx.obj or {}
    passphrase = None
    if options.get("ask_passphrase"):
        passphrase = read_secret(
            "key-store passphrase",
            hint="set $COUCHLITE_KEYSTORE_PASSPHRASE instead of --ask-passphrase",
        )
    return KeyStore(options.get("keystore"), passphrase=passphrase)


def _password(env_name: str | None, what: str, *, confirm: bool) -> str:
    return read_secret(
        what,
        env_name=env_name,
        confirm=confirm,
        hint="give --password-env NAME, or pipe the password in",
    )


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def _usages(certificate: x509.Certificate) -> str:
    try:
        if certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "CA (issues server and client)"
    except x509.ExtensionNotFound:
        pass
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "-"
    names = {"serverAuth": "server", "clientAuth": "client"}
    return ", ".join(names.get(oid._name, oid.dotted_string) for oid in eku) or "-"


def _alt_names(certificate: x509.Certificate) -> str:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "-"
    return ", ".join(str(getattr(name, "value", name)) for name in san) or "-"


def _expiry(certificate: x509.Certificate) -> str:
    when = certificate.not_valid_after_utc
    text = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"[red]{text} (expired)[/red]" if when <= dt.datetime.now(dt.UTC) else text


@click.group(
    context_settings=_CONTEXT,
    short_help="Manage TLS identities (certificate + private key) in a key store.",
)
@click.option(
    "--keystore",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Key-store folder (default: $COUCHLITE_KEYSTORE or the user data folder).",
)
@click.option(
    "--ask-passphrase",
    is_flag=True,
    help="Ask for the key-store passphrase: a hidden prompt on a terminal, else one line of "
    "stdin (default: $COUCHLITE_KEYSTORE_PASSPHRASE, or the OS keyring).",
)
@click.pass_context
def identity(ctx: click.Context, keystore: Path | None, ask_passphrase: bool) -> None:
    """Manage TLS identities (certificate + private key) kept in a key store.

    Private keys are always encrypted at rest: with a secret kept in the OS keyring when the
    keyring package works, else with the key-store passphrase ($COUCHLITE_KEYSTORE_PASSPHRASE,
    or --ask-passphrase).

    Secrets are never command-line arguments. A PKCS#12 password comes from --password-env
    NAME, else a hidden prompt when stdin is a terminal, else one line of stdin; when two
    secrets are read from stdin, the key-store passphrase is the first line. Without any of
    these the command fails with a one-line error and exit status 1.

    \b
    A CA, a server identity and a client identity it issued:
      couchlite identity create fleet-ca --cn "Fleet CA" --ca
      couchlite identity create laptop --cn laptop --ip 127.0.0.1 --issuer fleet-ca
      couchlite identity create phone --cn phone --client --no-server --issuer fleet-ca
    """
    ctx.obj = {"keystore": keystore, "ask_passphrase": ask_passphrase}


@identity.command("create", short_help="Create an identity and save it under LABEL.")
@click.argument("label")
@click.option("--cn", required=True, help="Common name (CN).")
@click.option("--org", "o", help="Organization (O).")
@click.option("--unit", "ou", help="Organization unit (OU).")
@click.option("--country", "c", help="Two-letter country code (C).")
@click.option("--state", "st", help="State or province (ST).")
@click.option("--locality", "l", help="Locality (L).")
@click.option("--email", multiple=True, help="E-mail address (SAN); repeatable.")
@click.option("--hostname", multiple=True, help="Host name (SAN); repeatable.")
@click.option("--ip", multiple=True, help="IP address (SAN); repeatable.")
@click.option(
    "--server/--no-server",
    default=None,
    help="Server authentication  [default: server, unless --ca]",
)
@click.option(
    "--client/--no-client",
    default=None,
    help="Client authentication  [default: no-client]",
)
@click.option(
    "--days", type=click.IntRange(min=1), default=365, show_default=True, help="Validity."
)
@click.option(
    "--ca",
    "is_ca",
    is_flag=True,
    help="Make a CA certificate, which issues server and client identities alike.",
)
@click.option("--issuer", help="Label of a CA identity in the key store to sign with.")
@click.pass_context
@_fails_cleanly
def create(ctx: click.Context, /, label: str, **options: Any) -> None:
    """Create an identity and save it under LABEL.

    A new RSA-2048 key and a certificate for it: self-signed, or signed by the CA identity
    --issuer names. The identity authenticates a server (--server, the default), a client
    (--client), or both. With --ca it is a CA instead: it is not used for TLS itself, and the
    identities it issues may be servers or clients, so --server and --client are refused
    with --ca.
    """
    if options["is_ca"] and (options["server"] or options["client"]):
        raise click.UsageError(
            "--ca makes a CA, which issues server and client identities alike; give --server "
            "or --client to the identities it issues (with --issuer), not to the CA"
        )
    store = _store(ctx)
    attributes: dict[str, Any] = {"CN": options["cn"]}
    for key in ("o", "ou", "c", "st", "l"):
        if options[key]:
            attributes[key.upper()] = options[key]
    for key, name in (("email", "email"), ("hostname", "hostname"), ("ip", "IP")):
        if options[key]:
            attributes[name] = list(options[key])
    usages = KeyUsage(0)
    if not options["is_ca"]:
        if options["server"] is not False:  # on unless --no-server
            usages |= KeyUsage.SERVER_AUTH
        if options["client"]:
            usages |= KeyUsage.CLIENT_AUTH
    if not usages and not options["is_ca"]:
        raise click.UsageError("the identity needs --server and/or --client")
    issuer = TLSIdentity.identity(options["issuer"], keystore=store) if options["issuer"] else None
    created = TLSIdentity.create_identity(
        usages,
        attributes,
        expiration=dt.timedelta(days=options["days"]),
        label=label,
        issuer=issuer,
        is_ca=options["is_ca"],
        keystore=store,
    )
    _console.print(
        f"created [bold]{label}[/bold]: {created.certificates[0].subject.rfc4514_string()}, "
        f"expires {created.expiration:%Y-%m-%d} ({store.protection(label)}-protected key)",
        highlight=False,
        soft_wrap=True,
    )


@identity.command("list", short_help="List the identities of the key store.")
@click.pass_context
@_fails_cleanly
def list_identities(ctx: click.Context) -> None:
    """List the identities of the key store.

    One row per label: the subject, what the certificate authenticates, when it expires and
    how its key is protected. Certificates are public: no secret is needed.
    """
    store = _store(ctx)
    labels = store.labels()
    if not labels:
        _console.print(f"no identities in {store.path}", highlight=False, soft_wrap=True)
        return
    table = Table(title=str(store.path))
    for column in ("label", "subject", "usage", "expires", "key"):
        table.add_column(column)
    for label in labels:
        leaf = store.certificates(label)[0]
        table.add_row(
            label,
            leaf.subject.rfc4514_string(),
            _usages(leaf),
            _expiry(leaf),
            store.protection(label),
        )
    _console.print(table)


@identity.command("show", short_help="Show the certificate chain of LABEL.")
@click.argument("label")
@click.pass_context
@_fails_cleanly
def show(ctx: click.Context, label: str) -> None:
    """Show the certificate chain of LABEL (no secret needed).

    For each certificate, leaf first: subject, issuer, validity and SHA-256 fingerprint; for
    the leaf also its alternative names and what it authenticates.
    """
    store = _store(ctx)
    chain = store.certificates(label)
    table = Table(title=f"{label} ({store.protection(label)}-protected key)", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for depth, cert in enumerate(chain):
        prefix = "" if depth == 0 else f"[{depth}] "
        table.add_row(f"{prefix}subject", cert.subject.rfc4514_string())
        table.add_row(f"{prefix}issuer", cert.issuer.rfc4514_string())
        if depth == 0:
            table.add_row("alt names", _alt_names(cert))
            table.add_row("usage", _usages(cert))
        table.add_row(f"{prefix}valid from", f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M UTC}")
        table.add_row(f"{prefix}expires", _expiry(cert))
        table.add_row(f"{prefix}SHA-256", _fingerprint(cert))
    _console.print(table)


@identity.command("delete", short_help="Delete LABEL from the key store.")
@click.argument("label")
@click.option(
    "--yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal)."
)
@click.pass_context
@_fails_cleanly
def delete(ctx: click.Context, label: str, yes: bool) -> None:
    """Delete LABEL from the key store.

    Asks for confirmation on a terminal; without one, --yes is required.
    """
    store = _store(ctx)
    if not yes:
        if not stdin_is_a_terminal():
            raise SecretUnavailable(
                f"not deleting {label!r}: stdin is not a terminal to confirm on; give --yes"
            )
        click.confirm(f"Delete TLS identity {label!r}?", abort=True)
    TLSIdentity.delete_identity(label, keystore=store)
    _console.print(f"deleted [bold]{label}[/bold]", highlight=False, soft_wrap=True)


@identity.command("import", short_help="Import a PKCS#12 file (.p12/.pfx) under LABEL.")
@click.argument("label")
@click.argument("pkcs12_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--password-env",
    metavar="NAME",
    help="Environment variable holding the PKCS#12 password (default: a hidden prompt on a "
    "terminal, else one line of stdin).",
)
@click.pass_context
@_fails_cleanly
def import_identity(
    ctx: click.Context, label: str, pkcs12_file: Path, password_env: str | None
) -> None:
    """Import a PKCS#12 file (.p12/.pfx) under LABEL.

    The file's key, certificate and chain are saved in the key store; the key is encrypted
    there as every key of the store. An expired certificate is refused.
    """
    store = _store(ctx)
    password = _password(password_env, "PKCS#12 password", confirm=False)
    imported = TLSIdentity.import_identity(
        pkcs12_file.read_bytes(), password, label=label, keystore=store
    )
    _console.print(
        f"imported [bold]{label}[/bold]: {imported.certificates[0].subject.rfc4514_string()}",
        highlight=False,
        soft_wrap=True,
    )


@identity.command("export", short_help="Export LABEL to OUTPUT (the key leaves encrypted).")
@click.argument("label")
@click.argument("output", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["pkcs12", "pem", "cert"]),
    default="pkcs12",
    show_default=True,
    help="pkcs12: key and chain; pem: chain + encrypted key; cert: the chain only.",
)
@click.option(
    "--password-env",
    metavar="NAME",
    help="Environment variable holding the export password (default: a hidden prompt, "
    "confirmed, on a terminal, else one line of stdin).",
)
@click.pass_context
@_fails_cleanly
def export(
    ctx: click.Context, label: str, output: Path, fmt: str, password_env: str | None
) -> None:
    """Export LABEL to OUTPUT; the private key always leaves encrypted.

    pkcs12 and pem need an export password, which encrypts the key in OUTPUT; cert exports
    the certificate chain only and needs no secret. OUTPUT is created readable by its owner
    only.
    """
    store = _store(ctx)
    if fmt == "cert":
        # Certificates are public: no passphrase needed.
        data = b"".join(c.public_bytes(Encoding.PEM) for c in store.certificates(label))
    else:
        found = TLSIdentity.identity(label, keystore=store, allow_expired=True)
        password = _password(password_env, "export password", confirm=True)
        if fmt == "pkcs12":
            data = found.to_pkcs12(password)
        else:
            data = found.certificates_pem() + found.private_key_pem(password.encode("utf-8"))
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    _console.print(
        f"exported [bold]{label}[/bold] to {output} ({fmt})", highlight=False, soft_wrap=True
    )


__all__ = ["identity"]
