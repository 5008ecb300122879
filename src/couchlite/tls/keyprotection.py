"""Key protection: the secret that encrypts a private key kept on disk (notes §11.2).

Used by :class:`~couchlite.tls.keystore.KeyStore` for its labelled identities and by the
listener's anonymous identity (:mod:`couchlite.tls.anonymous`), so both protect keys alike:

* ``"keyring"`` -- a random 256-bit password kept in the OS keyring through the optional
  ``keyring`` package (``pip install couchlite[keyring]``), when it is installed and has a
  working backend (not its "fail"/"null" ones), unless the caller says ``use_keyring=False``;
* ``"passphrase"`` -- the password is derived from the application's passphrase with scrypt
  (n=2**15, r=8, p=1) and a random per-file salt. The passphrase is, in order: the caller's,
  :meth:`TLSIdentity.set_keystore_passphrase`'s (:func:`set_default_passphrase`),
  ``$COUCHLITE_KEYSTORE_PASSPHRASE``.

Each file records its protection in its JSON record, so reading never guesses. Secrets never
reach the logs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import importlib
import logging
import os
import secrets
from types import ModuleType
from typing import Any

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from couchlite.errors import ConfigurationError, InvalidArgumentError

logger = logging.getLogger("couchlite.tls.keystore")

#: Environment variable holding the key-store passphrase (when there is no keyring).
PASSPHRASE_ENV = "COUCHLITE_KEYSTORE_PASSPHRASE"
#: The service name of keyring entries.
KEYRING_SERVICE = "couchlite-keystore"
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
    "PASSPHRASE_ENV",
    "forget_keyring_secret",
    "key_password",
    "new_key_password",
    "protection_available",
    "resolve_passphrase",
    "set_default_passphrase",
]
