"""Fixtures of the TLS tests: a private key store per test, the listener's stub sessions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from couchlite import TLSIdentity
from couchlite.tls import keyfolder, keyprotection
from tests.listener.conftest import stub_sessions  # noqa: F401 - a fixture, re-exported

PASSPHRASE = "correct horse battery staple"
#: The real keyring probe (the fixture replaces it so that no test touches a real keyring).
REAL_WORKING_KEYRING = keyprotection._working_keyring


@pytest.fixture(autouse=True)
def keystore_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own default key store and passphrase; no real keyring is used."""
    folder = tmp_path / "keystore"
    monkeypatch.setenv(keyfolder.KEYSTORE_ENV, str(folder))
    monkeypatch.setenv(keyprotection.PASSPHRASE_ENV, PASSPHRASE)
    monkeypatch.setattr(keyprotection, "_working_keyring", lambda: None)
    yield folder
    TLSIdentity.set_keystore_passphrase(None)
