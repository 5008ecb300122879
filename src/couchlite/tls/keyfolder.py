"""``KeyFolder``: labelled TLS key material kept on disk, private keys always encrypted.

The storage under :class:`~couchlite.tls.keystore.KeyStore` (which adds identity objects) and
under the label-based methods of :class:`~couchlite.tls.identity.TLSIdentity`.

Theory of operation
-------------------
Couchbase Lite keeps labelled identities in the platform's key store (Keychain, CNG) and cannot
keep them at all on Linux or Android. couchlite keeps them in a folder that works everywhere:

* **where** -- ``KeyStore(path)``, else ``$COUCHLITE_KEYSTORE``, else the user's data folder:
  ``$XDG_DATA_HOME`` (``~/.local/share``) on Linux, ``~/Library/Application Support`` on macOS,
  ``%LOCALAPPDATA%`` on Windows, each followed by ``couchlite/keystore``. The folder is created
  0o700.
* **what** -- one JSON file per identity, ``<hex of the UTF-8 label>.json`` (hex, because a
  case-insensitive file system -- macOS, Windows -- must not merge two labels): the label, the
  certificate chain in PEM (public, so ``labels()``/``certificates()`` need no secret), and the
  private key as encrypted PKCS#8 (``ENCRYPTED PRIVATE KEY``, AES-256-CBC). The file is written
  atomically and readable by its owner only (:mod:`couchlite._private_files`). No private key is
  ever written in the clear, not even to a temporary file.
* **how the key is protected** -- :mod:`couchlite.tls.keyprotection`: the OS keyring, else a
  passphrase (``KeyStore(passphrase=...)``, :meth:`TLSIdentity.set_keystore_passphrase`,
  ``$COUCHLITE_KEYSTORE_PASSPHRASE``). With neither a keyring nor a passphrase, saving raises
  :class:`ConfigurationError`: we refuse to store a key unprotected. A keyring that fails while
  saving falls back to the passphrase when there is one.

Errors: a missing label is :class:`NotFoundError`; a label already taken,
:class:`ConflictError`; a wrong passphrase (or a keyring that lost its entry) and a damaged file,
:class:`InvalidArgumentError`. Secrets never reach the logs.

Two processes may use one store: every file is complete or absent, and a save with a taken
label fails rather than overwriting (the check and the rename are not one atomic step; the last
of two racing saves wins).
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from couchlite._private_files import make_private_folder, write_atomically
from couchlite.errors import (
    ConfigurationError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
)
from couchlite.tls.keyprotection import (
    PASSPHRASE_ENV,
    forget_keyring_secret,
    key_password,
    new_key_password,
    resolve_passphrase,
)

logger = logging.getLogger("couchlite.tls.keystore")

#: Environment variable naming the key-store folder.
KEYSTORE_ENV = "COUCHLITE_KEYSTORE"
#: Labels are file names (hex-encoded): keep them well under every file system's 255 bytes.
MAX_LABEL_BYTES = 100
_FORMAT = "couchlite-tls-identity/1"


class Exportable(Protocol):
    """What a folder needs of an identity to save it."""

    def certificates_pem(self) -> bytes: ...

    def private_key_pem(self, password: bytes) -> bytes: ...


def default_keystore_path() -> Path:
    """``$COUCHLITE_KEYSTORE``, else the platform's per-user data folder + couchlite/keystore."""
    configured = os.environ.get(KEYSTORE_ENV)
    if configured:
        return Path(configured).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "couchlite" / "keystore"


def _check_label(label: object) -> str:
    if not isinstance(label, str) or not label:
        raise InvalidArgumentError("a label must be a non-empty string")
    if len(label.encode("utf-8")) > MAX_LABEL_BYTES:
        raise InvalidArgumentError(f"a label is at most {MAX_LABEL_BYTES} bytes of UTF-8")
    return label


class KeyFolder:
    """A folder of labelled key material: certificate chains and encrypted private keys.

    ``path``: the folder (default :func:`default_keystore_path`). ``passphrase``: protects keys
    when no keyring is used. ``use_keyring``: ``None`` (default) uses the OS keyring when one
    works, ``False`` never does, ``True`` insists (saving fails without one).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        passphrase: str | bytes | None = None,
        use_keyring: bool | None = None,
    ) -> None:
        self._path = Path(path).expanduser() if path is not None else default_keystore_path()
        if passphrase is not None and not isinstance(passphrase, (str, bytes)):
            raise InvalidArgumentError("the passphrase must be a string or bytes")
        self._passphrase = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
        if self._passphrase is not None and not self._passphrase:
            raise InvalidArgumentError("the key-store passphrase must not be empty")
        self._use_keyring = use_keyring

    @property
    def path(self) -> Path:
        """The key store's folder (created when the first identity is saved)."""
        return self._path

    # --- queries ------------------------------------------------------------------------------

    def labels(self) -> list[str]:
        """The labels of the stored identities, sorted."""
        if not self._path.is_dir():
            return []
        labels = []
        for file in self._path.glob("*.json"):
            with contextlib.suppress(ValueError, binascii.Error):
                labels.append(bytes.fromhex(file.stem).decode("utf-8"))
        return sorted(labels)

    def __contains__(self, label: object) -> bool:
        return isinstance(label, str) and self._file(_check_label(label)).exists()

    def protection(self, label: str) -> str:
        """How the key of ``label`` is protected: ``"keyring"`` or ``"passphrase"``."""
        return str(self._record(label)["protection"])

    def certificates(self, label: str) -> list[x509.Certificate]:
        """The certificate chain of ``label`` (no secret needed: certificates are public)."""
        return x509.load_pem_x509_certificates(self._record(label)["certificates"].encode())

    # --- load, save, delete -------------------------------------------------------------------

    def _read(self, label: str) -> tuple[list[x509.Certificate], PrivateKeyTypes]:
        """The chain and decrypted private key saved under ``label``."""
        record = self._record(label)
        password = self._password_for(label, record)
        try:
            key = serialization.load_pem_private_key(record["private_key"].encode(), password)
            chain = x509.load_pem_x509_certificates(record["certificates"].encode())
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(
                f"cannot decrypt the key of TLS identity {label!r}: wrong key-store passphrase?"
            ) from exc
        return chain, key

    def _write(self, identity: Exportable, label: str) -> None:
        """Save ``identity``'s chain and key under ``label``; :class:`ConflictError` if taken."""
        label = _check_label(label)
        path = self._file(label)
        if path.exists():
            raise ConflictError(f"a TLS identity labelled {label!r} exists already")
        record: dict[str, Any] = {"format": _FORMAT, "label": label}
        password = self._new_password(label, record)
        record["certificates"] = identity.certificates_pem().decode("ascii")
        record["private_key"] = identity.private_key_pem(password).decode("ascii")
        data = json.dumps(record, indent=1).encode("utf-8")
        try:
            make_private_folder(self._path)
            write_atomically(path, data)
        except OSError:
            if record["protection"] == "keyring":
                self._forget_keyring_secret(label)
            raise
        logger.info("saved TLS identity %r in %s (%s)", label, self._path, record["protection"])

    def delete(self, label: str) -> None:
        """Delete ``label`` (its file and keyring entry); :class:`NotFoundError` if absent."""
        record = self._record(label)
        self._file(label).unlink(missing_ok=True)
        if record.get("protection") == "keyring":
            self._forget_keyring_secret(label)
        logger.info("deleted TLS identity %r from %s", label, self._path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._path)!r})"

    # --- internals ----------------------------------------------------------------------------

    def _file(self, label: str) -> Path:
        return self._path / f"{label.encode('utf-8').hex()}.json"

    def _record(self, label: str) -> dict[str, Any]:
        path = self._file(_check_label(label))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"no TLS identity labelled {label!r} in {self._path}") from None
        try:
            record = json.loads(data)
            if record.get("format") != _FORMAT or record.get("protection") not in (
                "keyring",
                "passphrase",
            ):
                raise ValueError("unknown format")
        except (ValueError, AttributeError) as exc:
            raise InvalidArgumentError(f"{path} is not a couchlite TLS identity: {exc}") from exc
        return dict(record)

    def _keyring_user(self, label: str) -> str:
        # One keyring serves every store: tell entries apart by the store's folder.
        folder = hashlib.sha256(str(self._path.resolve()).encode("utf-8")).hexdigest()[:16]
        return f"{folder}/{label.encode('utf-8').hex()}"

    def _new_password(self, label: str, record: dict[str, Any]) -> bytes:
        password = new_key_password(
            label,
            record,
            passphrase=resolve_passphrase(self._passphrase),
            use_keyring=self._use_keyring,
            keyring_user=self._keyring_user(label),
        )
        if password is None:
            raise ConfigurationError(
                "cannot protect the private key: no OS keyring (pip install couchlite[keyring]) "
                f"and no key-store passphrase (TLSIdentity.set_keystore_passphrase() or "
                f"${PASSPHRASE_ENV})"
            )
        return password

    def _password_for(self, label: str, record: dict[str, Any]) -> bytes:
        return key_password(
            label,
            record,
            passphrase=resolve_passphrase(self._passphrase),
            keyring_user=self._keyring_user(label),
        )

    def _forget_keyring_secret(self, label: str) -> None:
        forget_keyring_secret(self._keyring_user(label))


__all__ = ["KEYSTORE_ENV", "MAX_LABEL_BYTES", "Exportable", "KeyFolder", "default_keystore_path"]
