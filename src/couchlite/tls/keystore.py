"""``KeyStore``: labelled TLS identities kept on disk, private keys always encrypted.

A :class:`KeyStore` is a :class:`~couchlite.tls.keyfolder.KeyFolder` (where and how the files
are kept, and how concurrent processes share them) that takes and hands out
:class:`~couchlite.tls.identity.TLSIdentity` objects; its keys are protected as
:mod:`couchlite.tls.keyprotection` says (the OS keyring, else a passphrase, never in the clear).

Errors: a missing label is :class:`NotFoundError`; a label already taken,
:class:`ConflictError`; a wrong passphrase (or a keyring that lost its entry) and a damaged file,
:class:`InvalidArgumentError`; no keyring and no passphrase when saving,
:class:`ConfigurationError`. Secrets never reach the logs.
"""

from __future__ import annotations

from couchlite.errors import InvalidArgumentError
from couchlite.tls.identity import TLSIdentity
from couchlite.tls.keyfolder import KEYSTORE_ENV, KeyFolder, _check_label, default_keystore_path
from couchlite.tls.keyprotection import KEYRING_SERVICE, PASSPHRASE_ENV, set_default_passphrase


class KeyStore(KeyFolder):
    """A folder of labelled identities (see the module docstring).

    ``path``: the folder (default :func:`default_keystore_path`). ``passphrase``: protects keys
    when no keyring is used. ``use_keyring``: ``None`` (default) uses the OS keyring when one
    works, ``False`` never does, ``True`` insists (saving fails without one).
    """

    def load(self, label: str) -> TLSIdentity:
        """The identity saved under ``label`` (see :meth:`TLSIdentity.identity`)."""
        chain, key = self._read(label)
        return TLSIdentity(chain, key, label=label)

    def save(self, identity: TLSIdentity, label: str) -> None:
        """Save ``identity`` under ``label``; :class:`ConflictError` if the label is taken."""
        label = _check_label(label)
        if not isinstance(identity, TLSIdentity):
            raise InvalidArgumentError("save() takes a TLSIdentity")
        self._write(identity, label)


__all__ = [
    "KEYRING_SERVICE",
    "KEYSTORE_ENV",
    "PASSPHRASE_ENV",
    "KeyStore",
    "default_keystore_path",
    "set_default_passphrase",
]
