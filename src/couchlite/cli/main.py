"""``couchlite identity ...``: manage the TLS identities of a key store from the shell.

Theory of operation
-------------------
Each command opens a :class:`couchlite.KeyStore`: ``--keystore DIR`` (or ``$COUCHLITE_KEYSTORE``,
else the platform's default folder) and the passphrase from ``$COUCHLITE_KEYSTORE_PASSPHRASE``,
or typed at a hidden prompt with ``--ask-passphrase``; the OS keyring is used when the
``keyring`` package works, exactly as in the library. Passwords for PKCS#12 files are prompted
for (hidden, confirmed on export) unless given with ``--password-env NAME`` -- never as a
command-line argument, where other users could read them in the process list.

Errors of the library (``CouchliteError``) become one line on stderr and exit status 1.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys
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

F = TypeVar("F", bound=Callable[..., Any])

_console = Console()
_errors = Console(stderr=True)


def _fails_cleanly(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CouchliteError as exc:
            _errors.print(f"[red]error:[/red] {exc}", highlight=False)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _store(ctx: click.Context) -> KeyStore:
    options = ctx.obj or {}
    passphrase = None
    if options.get("ask_passphrase"):
        passphrase = click.prompt("Key-store passphrase", hide_input=True)
    return KeyStore(options.get("keystore"), passphrase=passphrase)


def _password(env_name: str | None, prompt: str, *, confirm: bool) -> str:
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise click.UsageError(f"${env_name} is not set")
        return value
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def _usages(certificate: x509.Certificate) -> str:
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


@click.group()
@click.version_option(package_name="couchlite")
def main() -> None:
    """couchlite: an embedded document database with Couchbase Lite's peer-to-peer sync."""


@main.group()
@click.option(
    "--keystore",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Key-store folder (default: $COUCHLITE_KEYSTORE or the user data folder).",
)
@click.option(
    "--ask-passphrase",
    is_flag=True,
    help="Prompt for the key-store passphrase (default: $COUCHLITE_KEYSTORE_PASSPHRASE).",
)
@click.pass_context
def identity(ctx: click.Context, keystore: Path | None, ask_passphrase: bool) -> None:
    """Manage TLS identities (certificate + private key) kept in a key store."""
    ctx.obj = {"keystore": keystore, "ask_passphrase": ask_passphrase}


@identity.command("create")
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
@click.option("--server/--no-server", default=True, show_default=True, help="Server auth.")
@click.option("--client/--no-client", default=False, show_default=True, help="Client auth.")
@click.option("--days", type=click.IntRange(min=1), default=365, show_default=True)
@click.option("--ca", "is_ca", is_flag=True, help="Make a CA certificate (to issue others).")
@click.option("--issuer", help="Label of a CA identity in the key store to sign with.")
@click.pass_context
@_fails_cleanly
def create(ctx: click.Context, /, label: str, **options: Any) -> None:
    """Create an identity and save it under LABEL."""
    store = _store(ctx)
    attributes: dict[str, Any] = {"CN": options["cn"]}
    for key in ("o", "ou", "c", "st", "l"):
        if options[key]:
            attributes[key.upper()] = options[key]
    for key, name in (("email", "email"), ("hostname", "hostname"), ("ip", "IP")):
        if options[key]:
            attributes[name] = list(options[key])
    usages = KeyUsage(0)
    if options["server"]:
        usages |= KeyUsage.SERVER_AUTH
    if options["client"]:
        usages |= KeyUsage.CLIENT_AUTH
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
    )


@identity.command("list")
@click.pass_context
@_fails_cleanly
def list_identities(ctx: click.Context) -> None:
    """List the identities of the key store."""
    store = _store(ctx)
    labels = store.labels()
    if not labels:
        _console.print(f"no identities in {store.path}", highlight=False)
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


@identity.command("show")
@click.argument("label")
@click.pass_context
@_fails_cleanly
def show(ctx: click.Context, label: str) -> None:
    """Show the certificate chain of LABEL (no secret needed)."""
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


@identity.command("delete")
@click.argument("label")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@_fails_cleanly
def delete(ctx: click.Context, label: str, yes: bool) -> None:
    """Delete LABEL from the key store."""
    store = _store(ctx)
    if not yes:
        click.confirm(f"Delete TLS identity {label!r}?", abort=True)
    TLSIdentity.delete_identity(label, keystore=store)
    _console.print(f"deleted [bold]{label}[/bold]", highlight=False)


@identity.command("import")
@click.argument("label")
@click.argument("pkcs12_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--password-env", help="Environment variable holding the PKCS#12 password.")
@click.pass_context
@_fails_cleanly
def import_identity(
    ctx: click.Context, label: str, pkcs12_file: Path, password_env: str | None
) -> None:
    """Import a PKCS#12 file (.p12/.pfx) under LABEL."""
    store = _store(ctx)
    password = _password(password_env, "PKCS#12 password", confirm=False)
    imported = TLSIdentity.import_identity(
        pkcs12_file.read_bytes(), password, label=label, keystore=store
    )
    _console.print(
        f"imported [bold]{label}[/bold]: {imported.certificates[0].subject.rfc4514_string()}",
        highlight=False,
    )


@identity.command("export")
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
@click.option("--password-env", help="Environment variable holding the export password.")
@click.pass_context
@_fails_cleanly
def export(
    ctx: click.Context, label: str, output: Path, fmt: str, password_env: str | None
) -> None:
    """Export LABEL to OUTPUT; the private key always leaves encrypted."""
    store = _store(ctx)
    if fmt == "cert":
        # Certificates are public: no passphrase needed.
        data = b"".join(c.public_bytes(Encoding.PEM) for c in store.certificates(label))
    else:
        found = TLSIdentity.identity(label, keystore=store, allow_expired=True)
        password = _password(password_env, "Export password", confirm=True)
        if fmt == "pkcs12":
            data = found.to_pkcs12(password)
        else:
            data = found.certificates_pem() + found.private_key_pem(password.encode("utf-8"))
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    _console.print(f"exported [bold]{label}[/bold] to {output} ({fmt})", highlight=False)


__all__ = ["main"]
