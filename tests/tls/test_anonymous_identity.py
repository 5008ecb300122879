"""The anonymous listener identity at rest: protected by the key store's secret where there is
one, by file permissions alone where there is none, and migrated from the old UUID-derived
encryption."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from couchlite import TLSError, TLSIdentity
from couchlite.tls import keyprotection as store_module
from couchlite.tls.anonymous import (
    IDENTITY_FILE_NAME,
    LEGACY_IDENTITY_FILE_NAME,
    load_or_create_anonymous_identity,
)
from tests.tls.conftest import PASSPHRASE
from tests.tls.test_identity import FakeKeyring

pytestmark = pytest.mark.timeout(60)

UUID = "6f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture
def no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(store_module.PASSPHRASE_ENV, raising=False)


def _fingerprint(identity: TLSIdentity) -> bytes:
    return identity.certificates[0].fingerprint(hashes.SHA256())


def _record(folder: Path) -> dict[str, object]:
    return dict(json.loads((folder / IDENTITY_FILE_NAME).read_bytes()))


def _write_old_format(folder: Path, identity: TLSIdentity, private_uuid: str) -> Path:
    """A file as earlier versions wrote it: the chain, then the key encrypted with a password
    derived (HKDF-SHA256, no salt, this info) from the database's private UUID."""
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"couchlite listener identity key v1",
    ).derive(private_uuid.encode("utf-8"))
    password = derived.hex().encode("ascii")
    path = folder / LEGACY_IDENTITY_FILE_NAME
    path.write_bytes(identity.certificates_pem() + identity.private_key_pem(password))
    return path


def test_without_a_secret_the_key_is_kept_by_file_permissions(
    tmp_path: Path, no_secret: None
) -> None:
    identity = load_or_create_anonymous_identity(tmp_path, UUID)
    path = tmp_path / IDENTITY_FILE_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    record = _record(tmp_path)
    assert record["protection"] == "file-permissions"
    # readable without any password: nothing pretends otherwise
    key = serialization.load_pem_private_key(str(record["private_key"]).encode(), password=None)
    assert key.public_key() == identity.private_key.public_key()
    assert _fingerprint(load_or_create_anonymous_identity(tmp_path, UUID)) == _fingerprint(identity)
    # the legacy secret plays no part any more: another one reads the same file
    assert _fingerprint(load_or_create_anonymous_identity(tmp_path, "other")) == _fingerprint(
        identity
    )


def test_a_key_file_others_can_read_is_made_private_again(
    tmp_path: Path, no_secret: None, caplog: pytest.LogCaptureFixture
) -> None:
    identity = load_or_create_anonymous_identity(tmp_path)
    path = tmp_path / IDENTITY_FILE_NAME
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING):
        again = load_or_create_anonymous_identity(tmp_path)
    assert _fingerprint(again) == _fingerprint(identity)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "readable by others" in caplog.text


def test_with_a_passphrase_the_key_is_encrypted_and_needs_it(tmp_path: Path) -> None:
    identity = load_or_create_anonymous_identity(tmp_path, UUID)  # conftest sets the passphrase
    record = _record(tmp_path)
    assert record["protection"] == "passphrase"
    assert "ENCRYPTED PRIVATE KEY" in str(record["private_key"])
    with pytest.raises((TypeError, ValueError)):
        serialization.load_pem_private_key(str(record["private_key"]).encode(), password=None)
    assert _fingerprint(load_or_create_anonymous_identity(tmp_path, UUID)) == _fingerprint(identity)
    before = (tmp_path / IDENTITY_FILE_NAME).read_bytes()
    # a wrong or missing passphrase fails loudly, and does not replace what peers pinned
    with pytest.raises(TLSError, match="passphrase"):
        load_or_create_anonymous_identity(tmp_path, UUID, passphrase="wrong")
    os.environ.pop(store_module.PASSPHRASE_ENV)
    with pytest.raises(TLSError, match="passphrase"):
        load_or_create_anonymous_identity(tmp_path, UUID)
    assert (tmp_path / IDENTITY_FILE_NAME).read_bytes() == before
    # the process-wide passphrase works as well as the environment's
    TLSIdentity.set_keystore_passphrase(PASSPHRASE)
    assert _fingerprint(load_or_create_anonymous_identity(tmp_path, UUID)) == _fingerprint(identity)


def test_with_a_keyring_the_key_is_encrypted_with_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = FakeKeyring()
    monkeypatch.setattr(store_module, "_working_keyring", lambda: keyring)
    identity = load_or_create_anonymous_identity(tmp_path)
    record = _record(tmp_path)
    assert record["protection"] == "keyring"
    assert len(keyring.secrets) == 1
    assert (store_module.KEYRING_SERVICE, record["keyring_user"]) in keyring.secrets
    # the entry is named in the file: a moved database folder still finds it
    moved = tmp_path / "moved"
    moved.mkdir()
    (tmp_path / IDENTITY_FILE_NAME).rename(moved / IDENTITY_FILE_NAME)
    assert _fingerprint(load_or_create_anonymous_identity(moved)) == _fingerprint(identity)
    keyring.secrets.clear()
    with pytest.raises(TLSError, match="keyring"):
        load_or_create_anonymous_identity(moved)


def test_a_permission_protected_key_is_encrypted_once_a_passphrase_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(store_module.PASSPHRASE_ENV)
    identity = load_or_create_anonymous_identity(tmp_path)
    assert _record(tmp_path)["protection"] == "file-permissions"
    monkeypatch.setenv(store_module.PASSPHRASE_ENV, PASSPHRASE)
    upgraded = load_or_create_anonymous_identity(tmp_path)
    assert _fingerprint(upgraded) == _fingerprint(identity)  # the same certificate, pins hold
    assert _record(tmp_path)["protection"] == "passphrase"


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE])
def test_old_uuid_encrypted_files_are_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, passphrase: str | None
) -> None:
    if passphrase is None:
        monkeypatch.delenv(store_module.PASSPHRASE_ENV)
    old = TLSIdentity.create_anonymous()
    legacy = _write_old_format(tmp_path, old, UUID)
    migrated = load_or_create_anonymous_identity(tmp_path, UUID)
    assert _fingerprint(migrated) == _fingerprint(old)  # peers that pinned it still connect
    assert migrated.private_key.public_key() == old.private_key.public_key()
    assert not legacy.exists()
    record = _record(tmp_path)
    assert record["protection"] == ("passphrase" if passphrase else "file-permissions")
    assert stat.S_IMODE(os.stat(tmp_path / IDENTITY_FILE_NAME).st_mode) == 0o600
    # and from then on the new file is what is read
    assert _fingerprint(load_or_create_anonymous_identity(tmp_path, UUID)) == _fingerprint(old)


def test_an_old_file_that_cannot_be_read_is_replaced(
    tmp_path: Path, no_secret: None, caplog: pytest.LogCaptureFixture
) -> None:
    old = TLSIdentity.create_anonymous()
    legacy = _write_old_format(tmp_path, old, UUID)
    fresh = load_or_create_anonymous_identity(tmp_path, "not the uuid")
    assert _fingerprint(fresh) != _fingerprint(old)
    assert "unreadable" in caplog.text
    assert not legacy.exists()


def test_an_expired_old_file_is_renewed(tmp_path: Path, no_secret: None) -> None:
    old = TLSIdentity.create_anonymous()
    _write_old_format(tmp_path, old, UUID)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    renewed = load_or_create_anonymous_identity(tmp_path, UUID, now=later)
    assert _fingerprint(renewed) != _fingerprint(old)
    assert not (tmp_path / LEGACY_IDENTITY_FILE_NAME).exists()
    assert x509.load_pem_x509_certificates(str(_record(tmp_path)["certificates"]).encode())


def test_a_failing_keyring_without_a_passphrase_leaves_file_permissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_secret: None
) -> None:
    keyring = FakeKeyring(fail=True)
    monkeypatch.setattr(store_module, "_working_keyring", lambda: keyring)
    load_or_create_anonymous_identity(tmp_path)  # the listener still starts
    assert _record(tmp_path)["protection"] == "file-permissions"
    assert keyring.secrets == {}
