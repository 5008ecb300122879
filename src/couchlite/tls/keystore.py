"""``KeyStore``: labelled TLS identities kept on disk, private keys always encrypted.

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
* **how the key is protected** -- ``"keyring"``: a random 256-bit password kept in the OS
  keyring through the optional ``keyring`` package (``pip install couchlite[keyring]``), used
  when it is installed and has a working backend (not its "fail"/"null" ones), unless the store
  was made with ``use_keyring=False``. Otherwise ``"passphrase"``: the password is derived from
  the application's passphrase with scrypt (n=2**15, r=8, p=1) and a random per-file salt. The
  passphrase is, in order: ``KeyStore(passphrase=...)``,
  :meth:`TLSIdentity.set_keystore_passphrase`, ``$COUCHLITE_KEYSTORE_PASSPHRASE``. With neither
  a keyring nor a passphrase, saving raises :class:`ConfigurationError`: we refuse to store a key
  unprotected. Each file records its protection, so reading never guesses; a keyring that fails
  while saving falls back to the passphrase when there is one.

Errors: a missing label is :class:`NotFoundError`; a label already taken,
:class:`ConflictError`; a wrong passphrase (or a keyring that lost its entry) and a damaged file,
:class:`InvalidArgumentError`. Secrets never reach the logs.

Two processes may use one store: every file is complete or absent, and a save with a taken
label fails rather than overwriting (the check and the rename are not one atomic step; the last
of two racing saves wins).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import importlib
import json
import logging
import os
import secrets
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from couchlite._private_files import make_private_folder, write_atomically
from couchlite.errors import (
    ConfigurationError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
)
from couchlite.tls.identity import TLSIdentity

logger = logging.getLogger(__name__)

#: Environment variable naming the key-store folder.
KEYSTORE_ENV = "COUCHLITE_KEYSTORE"
#: Environment variable holding the key-store passphrase (when there is no keyring).
PASSPHRASE_ENV = "COUCHLITE_KEYSTORE_PASSPHRASE"
#: The service name of keyring entries.
KEYRING_SERVICE = "couchlite-keystore"
#: Labels are file names (hex-encoded): keep them well under every file system's 255 bytes.
MAX_LABEL_BYTES = 100
_FORMAT = "couchlite-tls-identity/1"
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}

_default_passphrase: bytes | None = None


def set_default_passphrase(passphrase: str | bytes | None) -> None:
    """The process-wide passphrase (see :meth:`TLSIdentity.set_keystore_passphrase`)."""
    global _default_passphrase
    if passphrase is not None and not isinstance(passphrase, (str, bytes)):
        raise InvalidArgumentError("the passphrase must be a string or bytes")
    secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    if secret is not None and not secret:
        raise InvalidArgumentError("the key-store passphrase must not be empty")
    _default_passphrase = secret


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


def _working_keyring() -> ModuleType | None:
    """The ``keyring`` module if it is installed and has a usable backend, else ``None``."""
    try:
        # Optional (couchlite[keyring]); imported by name: it has no type stubs.
        keyring = importlib.import_module("keyring")
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
        module = type(backend).__module__
        # keyring's placeholders when no real backend exists: they fail (or drop) every call.
        if module.startswith(("keyring.backends.fail", "keyring.backends.null")):
            return None
        if float(getattr(backend, "priority", 1)) <= 0:
            return None
    except Exception as exc:  # a broken backend must degrade, not crash the application
        logger.debug("keyring unusable: %s", type(exc).__name__)
        return None
    return keyring


def _check_label(label: object) -> str:
    if not isinstance(label, str) or not label:
        raise InvalidArgumentError("a label must be a non-empty string")
    if len(label.encode("utf-8")) > MAX_LABEL_BYTES:
        raise InvalidArgumentError(f"a label is at most {MAX_LABEL_BYTES} bytes of UTF-8")
    return label


class KeyStore:
    """A folder of labelled identities (see the module docstring).

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

    def load(self, label: str) -> TLSIdentity:
        """The identity saved under ``label`` (see :meth:`TLSIdentity.identity`)."""
        record = self._record(label)
        password = self._password_for(label, record)
        try:
            key = serialization.load_pem_private_key(record["private_key"].encode(), password)
            chain = x509.load_pem_x509_certificates(record["certificates"].encode())
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(
                f"cannot decrypt the key of TLS identity {label!r}: wrong key-store passphrase?"
            ) from exc
        return TLSIdentity(chain, key, label=label)

    def save(self, identity: TLSIdentity, label: str) -> None:
        """Save ``identity`` under ``label``; :class:`ConflictError` if the label is taken."""
        label = _check_label(label)
        if not isinstance(identity, TLSIdentity):
            raise InvalidArgumentError("save() takes a TLSIdentity")
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
        return f"KeyStore({str(self._path)!r})"

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


# --- key protection, shared with the anonymous listener identity (couchlite.tls.anonymous) -----


def resolve_passphrase(explicit: bytes | None) -> bytes | None:
    """``explicit``, else :meth:`TLSIdentity.set_keystore_passphrase`'s, else the environment's."""
    if explicit is not None:
        return explicit
    if _default_passphrase is not None:
        return _default_passphrase
    env = os.environ.get(PASSPHRASE_ENV)
    return env.encode("utf-8") if env else None


def protection_available(passphrase: bytes | None, use_keyring: bool | None) -> bool:
    """Whether :func:`new_key_password` would find a keyring or a passphrase."""
    if passphrase is not None:
        return True
    return use_keyring is not False and _working_keyring() is not None


def new_key_password(
    label: str,
    record: dict[str, Any],
    *,
    passphrase: bytes | None,
    use_keyring: bool | None,
    keyring_user: str,
    may_go_without: bool = False,
) -> bytes | None:
    """A password for a new key file, its protection written into ``record``.

    The keyring (a random secret kept under ``keyring_user``) when one works and ``use_keyring``
    allows, else ``passphrase`` (scrypt, random salt); ``None`` when there is neither.
    :class:`ConfigurationError` when ``use_keyring=True`` and the keyring cannot be used, or
    when the keyring fails with no passphrase to fall back on (unless ``may_go_without``: then
    ``None``, the caller having a protection of its own).
    """
    keyring = _working_keyring() if use_keyring is not False else None
    if keyring is not None:
        secret = secrets.token_bytes(32).hex()
        try:
            keyring.set_password(KEYRING_SERVICE, keyring_user, secret)
        except Exception as exc:
            if passphrase is None and may_go_without and not use_keyring:
                logger.warning("the OS keyring failed (%s); no passphrase either", exc)
                return None
            if use_keyring or passphrase is None:
                raise ConfigurationError(
                    f"the OS keyring refused to keep the key of {label!r}: {type(exc).__name__}"
                ) from exc
            logger.warning("the OS keyring failed (%s); using the passphrase", exc)
        else:
            record["protection"] = "keyring"
            return secret.encode("ascii")
    elif use_keyring:
        raise ConfigurationError("use_keyring=True, but no working OS keyring is available")
    if passphrase is None:
        return None
    salt = secrets.token_bytes(16)
    record["protection"] = "passphrase"
    record["kdf"] = {"name": "scrypt", "salt": base64.b64encode(salt).decode(), **_SCRYPT}
    return _derive(passphrase, salt, _SCRYPT)


def key_password(
    label: str, record: dict[str, Any], *, passphrase: bytes | None, keyring_user: str
) -> bytes:
    """The password of a key file whose ``record`` says ``"keyring"`` or ``"passphrase"``.

    :class:`ConfigurationError` if the passphrase is not set, :class:`InvalidArgumentError` if
    the keyring is unavailable or lost the entry, or the record is damaged.
    """
    if record["protection"] == "keyring":
        keyring = _working_keyring()
        if keyring is None:
            raise InvalidArgumentError(
                f"the key of TLS identity {label!r} is in the OS keyring, which is unavailable"
            )
        try:
            secret = keyring.get_password(KEYRING_SERVICE, keyring_user)
        except Exception as exc:
            raise InvalidArgumentError(f"the OS keyring failed: {type(exc).__name__}") from exc
        if not secret:
            raise InvalidArgumentError(f"the OS keyring has no key for TLS identity {label!r}")
        return str(secret).encode("ascii")
    if passphrase is None:
        raise ConfigurationError(
            f"TLS identity {label!r} is protected by a passphrase: set it with "
            f"TLSIdentity.set_keystore_passphrase() or ${PASSPHRASE_ENV}"
        )
    kdf = record.get("kdf") or {}
    try:
        salt = base64.b64decode(kdf["salt"])
        params = {"n": int(kdf["n"]), "r": int(kdf["r"]), "p": int(kdf["p"])}
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise InvalidArgumentError(f"damaged key-store entry for {label!r}") from exc
    return _derive(passphrase, salt, params)


def forget_keyring_secret(keyring_user: str) -> None:
    """Delete a keyring entry made by :func:`new_key_password` (best effort)."""
    keyring = _working_keyring()
    if keyring is None:
        return
    with contextlib.suppress(Exception):
        keyring.delete_password(KEYRING_SERVICE, keyring_user)


def _derive(passphrase: bytes, salt: bytes, params: dict[str, int]) -> bytes:
    key = Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(
        passphrase
    )
    return key.hex().encode("ascii")


__all__ = [
    "KEYRING_SERVICE",
    "KEYSTORE_ENV",
    "PASSPHRASE_ENV",
    "KeyStore",
    "default_keystore_path",
    "set_default_passphrase",
]
