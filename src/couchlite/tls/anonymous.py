"""The anonymous listener identity, kept with its database.

Theory of operation
-------------------
A listener without a configured identity presents a self-signed one (notes §11.2). Peers that
pin it must see the same certificate after the listener restarts, so it is generated once and
stored in the database folder, ``<db.path>/listener-identity.json``: the certificate chain in
PEM, the private key in PKCS#8 PEM, and how the key is protected. That is, honestly:

* ``"keyring"`` or ``"passphrase"`` -- where the application has a key store secret, the key is
  encrypted exactly as :class:`~couchlite.tls.keystore.KeyStore` encrypts its keys
  (:mod:`couchlite.tls.keyprotection`): with a random password kept in the OS keyring (the
  optional ``keyring`` package, with a working backend), or with one derived (scrypt, random
  salt) from the key-store passphrase (:meth:`TLSIdentity.set_keystore_passphrase`,
  ``$COUCHLITE_KEYSTORE_PASSPHRASE``). Starting the listener later without that secret fails
  with a :class:`TLSError` rather than replacing the identity peers pinned.
* ``"file-permissions"`` -- otherwise the key is stored unencrypted, protected by the file
  system alone: the file is ``0o600`` in a ``0o700`` database folder, as an SSH server's host
  keys are. Encrypting it with a password kept next to it would protect nothing, so it is not
  pretended. Anyone who can read the database folder (its owner, root, a backup) can read the
  key -- and the documents. An identity stored this way is encrypted the next time the listener
  starts with a keyring or a passphrase available.

Earlier versions kept ``listener-identity.pem`` encrypted with a password derived from the
database's private UUID, which lives in the same folder. Such a file is read once with that
password (the ``legacy_secret``), rewritten as above, and removed, so existing peers keep their
pin.

Files are written atomically with mode ``0o600`` (:mod:`couchlite._private_files`). An identity
that has expired, or expires within :data:`RENEWAL_MARGIN`, is replaced by a new one; so is a
file that cannot be parsed (logged as a warning: peers that pinned the old certificate will have
to pin the new one). Two listeners starting at the same moment on one database may both
generate; the last write wins and the other listener serves its own identity until it restarts.

Loading takes milliseconds without a secret, plus one scrypt derivation (~0.1 s) with a
passphrase; generating adds an RSA-2048 key (~0.1 s). The listener calls this off the loop.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import stat
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from couchlite._private_files import FILE_MODE, write_atomically
from couchlite.errors import ConfigurationError, ErrorDomain, InvalidArgumentError, TLSError
from couchlite.tls import keyprotection
from couchlite.tls.identity import ANONYMOUS_LABEL, TLSIdentity

logger = logging.getLogger(__name__)

#: The file, inside the database folder.
IDENTITY_FILE_NAME = "listener-identity.json"
#: The file of earlier versions (UUID-derived password), migrated when found.
LEGACY_IDENTITY_FILE_NAME = "listener-identity.pem"
#: Renew an anonymous certificate this long before it expires, so that a listener started just
#: before the expiry does not hand out a certificate that dies while it runs.
RENEWAL_MARGIN = dt.timedelta(days=1)
#: Protection of a key readable by the file's owner alone, without any secret.
FILE_PERMISSIONS = "file-permissions"

_FORMAT = "couchlite-anonymous-identity/2"
_PROTECTIONS = ("keyring", "passphrase", FILE_PERMISSIONS)
#: HKDF ``info`` of the legacy UUID-derived password (kept to read old files).
_LEGACY_HKDF_INFO = b"couchlite listener identity key v1"


class _Unreadable(Exception):
    """The identity file is damaged: a new identity replaces it."""


def _legacy_password(secret: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LEGACY_HKDF_INFO).derive(
        secret.encode("utf-8")
    )
    return derived.hex().encode("ascii")


def _read_legacy(path: Path, secret: str | None) -> TLSIdentity | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not secret:
        logger.warning("%s needs the database's UUID to be read; a new identity replaces it", path)
        return None
    try:
        certificates = x509.load_pem_x509_certificates(data)
        key = serialization.load_pem_private_key(data, password=_legacy_password(secret))
        return TLSIdentity(certificates, key, label=ANONYMOUS_LABEL)
    except (ValueError, TypeError, InvalidArgumentError) as exc:
        logger.warning("%s is unreadable (%s); a new anonymous identity replaces it", path, exc)
        return None


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(data)
        if not isinstance(record, dict) or record.get("format") != _FORMAT:
            raise ValueError("not a couchlite anonymous identity")
        if record.get("protection") not in _PROTECTIONS:
            raise ValueError(f"unknown protection {record.get('protection')!r}")
        if not isinstance(record.get("certificates"), str) or not isinstance(
            record.get("private_key"), str
        ):
            raise ValueError("no certificate or no key")
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError included
        raise _Unreadable(str(exc)) from exc
    return record


def _keyring_user(record: dict[str, Any]) -> str:
    user = record.get("keyring_user")
    if not isinstance(user, str) or not user:
        raise _Unreadable("no keyring entry name")
    return user


def _unlock(path: Path, record: dict[str, Any], passphrase: bytes | None) -> TLSIdentity:
    """The identity in ``record``; :class:`TLSError` when its secret is missing or wrong."""
    protection = record["protection"]
    password: bytes | None = None
    if protection != FILE_PERMISSIONS:
        user = _keyring_user(record) if protection == "keyring" else ""
        try:
            password = keyprotection.key_password(
                ANONYMOUS_LABEL, record, passphrase=passphrase, keyring_user=user
            )
        except (ConfigurationError, InvalidArgumentError) as exc:
            raise TLSError(
                f"cannot unlock the anonymous TLS identity in {path} ({protection}): {exc}"
            ) from exc
    try:
        certificates = x509.load_pem_x509_certificates(record["certificates"].encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise _Unreadable(f"bad certificates: {exc}") from exc
    try:
        # Our own file, private to us: RSA's consistency check (~50 ms, most of a listener's
        # start) guards against keys from elsewhere, and OpenSSL still matches key and leaf.
        key = serialization.load_pem_private_key(
            record["private_key"].encode("ascii"),
            password=password,
            unsafe_skip_rsa_key_validation=True,
        )
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        if password is None:
            raise _Unreadable(f"bad private key: {exc}") from exc
        raise TLSError(
            f"cannot decrypt the anonymous TLS identity in {path}: wrong key-store passphrase?"
        ) from exc
    try:
        return TLSIdentity(certificates, key, label=ANONYMOUS_LABEL)
    except InvalidArgumentError as exc:
        raise _Unreadable(str(exc)) from exc


def _save(
    path: Path, identity: TLSIdentity, passphrase: bytes | None, use_keyring: bool | None
) -> str:
    """Write ``identity`` to ``path`` with the best protection available; returns which."""
    record: dict[str, Any] = {"format": _FORMAT, "label": ANONYMOUS_LABEL}
    user = f"anonymous/{secrets.token_hex(16)}"
    password = keyprotection.new_key_password(
        ANONYMOUS_LABEL,
        record,
        passphrase=passphrase,
        use_keyring=use_keyring,
        keyring_user=user,
        may_go_without=True,  # file permissions remain: a listener must start
    )
    if record.get("protection") == "keyring":
        record["keyring_user"] = user
    if password is None:
        record["protection"] = FILE_PERMISSIONS
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    else:
        encryption = serialization.BestAvailableEncryption(password)
    record["certificates"] = identity.certificates_pem().decode("ascii")
    record["private_key"] = identity.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode("ascii")
    try:
        write_atomically(path, json.dumps(record, indent=1).encode("utf-8"))
    except OSError:
        if record["protection"] == "keyring":
            keyprotection.forget_keyring_secret(user)
        raise
    return str(record["protection"])


def _tighten(path: Path) -> None:
    """An unencrypted key file others can read is made private again (as ssh insists)."""
    if sys.platform == "win32":
        return
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        logger.warning("%s was readable by others (mode %o); making it %o", path, mode, FILE_MODE)
        os.chmod(path, FILE_MODE)


def load_or_create_anonymous_identity(
    folder: Path,
    legacy_secret: str | None = None,
    *,
    now: dt.datetime | None = None,
    passphrase: str | bytes | None = None,
    use_keyring: bool | None = None,
) -> TLSIdentity:
    """The anonymous identity stored in ``folder`` (created, migrated or renewed if needed).

    ``legacy_secret``: the database's private UUID, only used to read a file written by an
    earlier version (see the module docstring). ``passphrase``/``use_keyring``: as for
    :class:`~couchlite.tls.keystore.KeyStore` (default: the process's key-store passphrase, and the
    OS keyring if one works). Blocking (file I/O, maybe scrypt or RSA key generation): call it
    off the event loop. Raises :class:`TLSError` if the identity cannot be unlocked (its
    passphrase or keyring entry is missing) or saved (POSIX domain).
    """
    path = folder / IDENTITY_FILE_NAME
    legacy = folder / LEGACY_IDENTITY_FILE_NAME
    secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    secret = keyprotection.resolve_passphrase(secret)
    identity: TLSIdentity | None = None
    protection: str | None = None
    try:
        record = _read_record(path)
        if record is not None:
            identity = _unlock(path, record, secret)
            protection = record["protection"]
    except _Unreadable as exc:
        logger.warning("%s is unreadable (%s); a new anonymous identity replaces it", path, exc)
    migrated = False
    if identity is None and protection is None:
        identity = _read_legacy(legacy, legacy_secret)
        migrated = identity is not None
    usable = identity is not None and not identity.is_expired(now, margin=RENEWAL_MARGIN)
    if identity is not None and not usable:
        logger.info("the anonymous listener certificate in %s expired; renewing it", folder)
    upgrade = protection == FILE_PERMISSIONS and keyprotection.protection_available(
        secret, use_keyring
    )
    if usable and not migrated and not upgrade:
        assert identity is not None
        with contextlib.suppress(OSError):
            if protection == FILE_PERMISSIONS:
                _tighten(path)
            # A leftover of an interrupted migration: an old key nobody should keep.
            legacy.unlink(missing_ok=True)
        return identity
    if not usable:
        identity = TLSIdentity.create_anonymous()
    assert identity is not None
    try:
        written = _save(path, identity, secret, use_keyring)
        legacy.unlink(missing_ok=True)
    except OSError as exc:
        raise TLSError(
            f"cannot save the anonymous TLS identity in {folder}: {exc.strerror or exc}",
            domain=ErrorDomain.POSIX,
            code=exc.errno or 5,
        ) from exc
    if migrated or (upgrade and written != FILE_PERMISSIONS):
        logger.info("the anonymous listener identity in %s is now protected by %s", folder, written)
    return identity


__all__ = [
    "FILE_PERMISSIONS",
    "IDENTITY_FILE_NAME",
    "LEGACY_IDENTITY_FILE_NAME",
    "RENEWAL_MARGIN",
    "load_or_create_anonymous_identity",
]
