"""TLSIdentity creation, import/export and the labelled key store (files, encryption, keyring,
another process)."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from couchlite import (
    AsyncUrlEndpointListener,
    CertAttribute,
    ConfigurationError,
    ConflictError,
    Database,
    InvalidArgumentError,
    KeyStore,
    KeyUsage,
    NotFoundError,
    TLSError,
    TLSIdentity,
)
from couchlite.errors import NetworkCode
from couchlite.tls import keyprotection as store_module
from tests.listener.conftest import StubRegistry
from tests.listener.helpers import plain_config
from tests.replicator_api.helpers import run

from .conftest import PASSPHRASE, REAL_WORKING_KEYRING
from .helpers import ca, expired, replicate_to, server

pytestmark = pytest.mark.timeout(60)

CLEAR_KEY_MARKERS = (b"BEGIN PRIVATE KEY", b"BEGIN RSA PRIVATE KEY", b"BEGIN EC PRIVATE KEY")


def _fingerprint(identity: TLSIdentity) -> bytes:
    return identity.certificates[0].fingerprint(hashes.SHA256())


def _assert_no_clear_keys(folder: Path) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for marker in CLEAR_KEY_MARKERS:
            assert marker not in data, path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_create_identity_attributes_usages_and_default_expiry() -> None:
    identity = TLSIdentity.create_identity(
        [KeyUsage.SERVER_AUTH, KeyUsage.CLIENT_AUTH],
        {
            CertAttribute.COMMON_NAME: "Jane Doe",
            "O": "Example Corp.",
            "OU": "Sync",
            "C": "US",
            "ST": "Massachusetts",
            "L": "Boston",
            "email": "jane@example.com",
            "hostname": ["jane.example.com", "localhost"],
            "IP": "127.0.0.1",
        },
    )
    leaf = identity.certificates[0]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Jane Doe"
    assert leaf.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "US"
    assert leaf.issuer == leaf.subject
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["jane.example.com", "localhost"]
    assert san.get_values_for_type(x509.RFC822Name) == ["jane@example.com"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    lifetime = identity.expiration - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=364) < lifetime <= dt.timedelta(days=365)
    assert identity.label is None
    shorter = TLSIdentity.create_identity(
        KeyUsage.SERVER_AUTH, {"CN": "x"}, expiration=dt.timedelta(days=7)
    )
    assert shorter.expiration - dt.datetime.now(dt.UTC) <= dt.timedelta(days=7)


@pytest.mark.parametrize(
    "attributes",
    [
        {"O": "no common name"},
        {"CN": "x", "C": "USA"},
        {"CN": "x", "bogus": "y"},
        {"CN": "x", "IP": "nope"},
    ],
)
def test_create_identity_refuses_bad_attributes(attributes: dict[str, str]) -> None:
    with pytest.raises(InvalidArgumentError):
        TLSIdentity.create_identity(KeyUsage.SERVER_AUTH, attributes)


def test_create_identity_refuses_bad_usage_and_expiry() -> None:
    with pytest.raises(InvalidArgumentError):
        TLSIdentity.create_identity([], {"CN": "x"})
    with pytest.raises(InvalidArgumentError):
        TLSIdentity.create_identity(
            KeyUsage.SERVER_AUTH, {"CN": "x"}, expiration=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        )
    leaf = server()
    with pytest.raises(InvalidArgumentError, match="not a CA"):
        TLSIdentity.create_identity(KeyUsage.SERVER_AUTH, {"CN": "x"}, issuer=leaf)


def test_identity_signed_by_a_ca_the_caller_holds() -> None:
    root = ca()
    # the caller's CA may come from PEM files, as most do
    held = TLSIdentity.from_pem(
        root.certificates_pem(), root.private_key_pem(b"pw"), password=b"pw"
    )
    identity = TLSIdentity.create_identity(
        KeyUsage.CLIENT_AUTH, {"CN": "device"}, expiration=dt.timedelta(days=9999), issuer=held
    )
    leaf, issuer = identity.certificates
    assert issuer == root.certificates[0]
    leaf.verify_directly_issued_by(issuer)
    assert identity.expiration <= root.expiration  # capped at the issuer's


def test_pkcs12_and_pem_round_trips_and_errors() -> None:
    root = ca()
    identity = server(root)
    p12 = identity.to_pkcs12("export-pw")
    back = TLSIdentity.import_identity(p12, "export-pw")
    assert [c.fingerprint(hashes.SHA256()) for c in back.certificates] == [
        c.fingerprint(hashes.SHA256()) for c in identity.certificates
    ]
    with pytest.raises(InvalidArgumentError):
        TLSIdentity.import_identity(p12, "wrong")
    with pytest.raises(InvalidArgumentError):
        TLSIdentity.import_identity(b"not pkcs12", "pw")
    with pytest.raises(InvalidArgumentError):
        identity.to_pkcs12("")
    with pytest.raises(TLSError) as info:
        TLSIdentity.import_identity(expired(root).to_pkcs12("pw"), "pw")
    assert info.value.code == NetworkCode.TLS_CERT_EXPIRED
    pem = TLSIdentity.from_pem(
        identity.certificates_pem(), identity.private_key_pem(b"k"), password=b"k"
    )
    assert len(pem.certificates) == 2


def test_labelled_identities_persist_and_are_deleted(keystore_env: Path) -> None:
    created = TLSIdentity.create_identity(KeyUsage.SERVER_AUTH, {"CN": "a"}, label="server")
    assert created.label == "server"
    loaded = TLSIdentity.identity("server")
    assert _fingerprint(loaded) == _fingerprint(created) and loaded.label == "server"
    with pytest.raises(ConflictError):
        TLSIdentity.create_identity(KeyUsage.SERVER_AUTH, {"CN": "b"}, label="server")
    imported = TLSIdentity.import_identity(server().to_pkcs12("pw"), "pw", label="imported ✓")
    store = KeyStore()
    assert store.path == keystore_env
    assert store.labels() == ["imported ✓", "server"]
    assert store.protection("server") == "passphrase"
    assert store.certificates("imported ✓")[0] == imported.certificates[0]
    _assert_no_clear_keys(keystore_env)
    TLSIdentity.delete_identity("server")
    with pytest.raises(NotFoundError):
        TLSIdentity.identity("server")
    with pytest.raises(NotFoundError):
        TLSIdentity.delete_identity("server")
    assert store.labels() == ["imported ✓"]


def test_wrong_or_missing_passphrase(keystore_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    TLSIdentity.create_identity(KeyUsage.SERVER_AUTH, {"CN": "a"}, label="x")
    with pytest.raises(InvalidArgumentError, match="passphrase"):
        KeyStore(passphrase="not it").load("x")
    monkeypatch.delenv(store_module.PASSPHRASE_ENV)
    with pytest.raises(ConfigurationError):
        TLSIdentity.identity("x")
    with pytest.raises(ConfigurationError, match="keyring"):
        TLSIdentity.create_identity(KeyUsage.SERVER_AUTH, {"CN": "a"}, label="y")
    assert "y" not in KeyStore()
    TLSIdentity.set_keystore_passphrase(PASSPHRASE)
    assert TLSIdentity.identity("x").label == "x"


def test_expired_and_damaged_entries(keystore_env: Path) -> None:
    store = KeyStore()
    store.save(expired(ca()), "old")
    with pytest.raises(TLSError) as info:
        TLSIdentity.identity("old")
    assert info.value.code == NetworkCode.TLS_CERT_EXPIRED
    assert TLSIdentity.identity("old", allow_expired=True).is_expired()
    path = keystore_env / f"{b'old'.hex()}.json"
    path.write_text("{not json")
    with pytest.raises(InvalidArgumentError):
        TLSIdentity.identity("old")


class FakeKeyring(types.ModuleType):
    """Stands in for the ``keyring`` package (an OS keyring is not available in tests)."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__("keyring")
        self.secrets: dict[tuple[str, str], str] = {}
        self.fail = fail

    def get_keyring(self) -> Any:
        return types.SimpleNamespace(priority=5)

    def set_password(self, service: str, user: str, secret: str) -> None:
        if self.fail:
            raise RuntimeError("locked")
        self.secrets[(service, user)] = secret

    def get_password(self, service: str, user: str) -> str | None:
        return self.secrets.get((service, user))

    def delete_password(self, service: str, user: str) -> None:
        del self.secrets[(service, user)]


def test_keyring_protection_and_fallback(
    keystore_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = FakeKeyring()
    monkeypatch.setattr(store_module, "_working_keyring", lambda: keyring)
    monkeypatch.delenv(store_module.PASSPHRASE_ENV)
    created = TLSIdentity.create_identity(KeyUsage.CLIENT_AUTH, {"CN": "k"}, label="k")
    store = KeyStore()
    assert store.protection("k") == "keyring"
    assert len(keyring.secrets) == 1
    secret = next(iter(keyring.secrets.values()))
    assert secret.encode() not in (keystore_env / f"{b'k'.hex()}.json").read_bytes()
    assert _fingerprint(TLSIdentity.identity("k")) == _fingerprint(created)
    _assert_no_clear_keys(keystore_env)
    TLSIdentity.delete_identity("k")
    assert keyring.secrets == {}
    # a keyring that fails falls back to the passphrase, when there is one
    keyring.fail = True
    with pytest.raises(ConfigurationError):
        TLSIdentity.create_identity(KeyUsage.CLIENT_AUTH, {"CN": "k"}, label="k")
    KeyStore(passphrase="pp").save(created, "k")
    assert KeyStore().protection("k") == "passphrase"
    # and use_keyring=False never touches it
    keyring.fail = False
    KeyStore(passphrase="pp", use_keyring=False).save(created, "k2")
    assert keyring.secrets == {}


def test_the_keyring_package_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # "not installed"
    assert REAL_WORKING_KEYRING() is None
    # installed, but with only keyring's "fail" backend (a headless Linux box): unusable
    fail_backend = type("Keyring", (), {"__module__": "keyring.backends.fail", "priority": 0})
    fake = FakeKeyring()
    fake.get_keyring = lambda: fail_backend()  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "keyring", fake)
    assert REAL_WORKING_KEYRING() is None
    # a working backend is used
    monkeypatch.setitem(sys.modules, "keyring", FakeKeyring())
    assert REAL_WORKING_KEYRING() is sys.modules["keyring"]


def test_identity_created_by_another_process_serves_a_listener(
    keystore_env: Path, db: Database, stub_sessions: StubRegistry
) -> None:
    code = (
        "from couchlite import TLSIdentity, KeyUsage\n"
        "i = TLSIdentity.create_identity(KeyUsage.SERVER_AUTH,"
        " {'CN': '127.0.0.1', 'IP': '127.0.0.1'}, label='shared')\n"
        "print(i.certificates[0].fingerprint(__import__('cryptography.hazmat.primitives.hashes',"
        " fromlist=['SHA256']).SHA256()).hex())\n"
    )
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    identity = TLSIdentity.identity("shared")
    assert _fingerprint(identity).hex() == result.stdout.strip()
    _assert_no_clear_keys(keystore_env)

    async def main() -> None:
        config = plain_config(db, disable_tls=False, tls_identity=identity)
        async with AsyncUrlEndpointListener(config) as listener:
            repl = await replicate_to(
                db, listener.urls[0], trusted_root_certificates=identity.certificates
            )
            assert repl.status.error is None
            assert repl.server_certificate == identity.certificates[0]

    run(main())


def test_key_store_file_format_is_documented_json(keystore_env: Path) -> None:
    TLSIdentity.create_identity(KeyUsage.SERVER_AUTH, {"CN": "a"}, label="doc")
    record = json.loads((keystore_env / f"{b'doc'.hex()}.json").read_text())
    assert record["label"] == "doc" and record["protection"] == "passphrase"
    assert record["private_key"].startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert record["kdf"]["name"] == "scrypt"
