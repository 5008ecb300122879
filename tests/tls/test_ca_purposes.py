"""A CA identity issues server and client identities alike, made with the API or the CLI.

Each case is a real replication over wss:// on 127.0.0.1: the listener presents a server
identity issued by the CA and admits clients whose chain verifies to it
(``ListenerCertificateAuthenticator.from_roots``); the replicator trusts the CA
(``trusted_root_certificates``) and presents a client identity issued by the same CA.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from couchlite import (
    AsyncReplicator,
    AsyncUrlEndpointListener,
    ClientCertificateAuthenticator,
    Database,
    DatabaseConfiguration,
    KeyUsage,
    ListenerCertificateAuthenticator,
    MutableDocument,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    TLSIdentity,
)
from tests.listener.helpers import plain_config
from tests.replicator_api.helpers import run

from .helpers import LOCAL

pytest.importorskip("couchlite.replicator.active")
pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def two_dbs(tmp_path: Path):
    server_db = Database("server", DatabaseConfiguration(directory=tmp_path / "s"))
    client_db = Database("client", DatabaseConfiguration(directory=tmp_path / "c"))
    server_db.default_collection().save(MutableDocument("from-server", {"side": "server"}))
    client_db.default_collection().save(MutableDocument("from-client", {"side": "client"}))
    yield server_db, client_db
    client_db.close()
    server_db.close()


def _sync(
    server_db: Database,
    client_db: Database,
    ca: TLSIdentity,
    server_id: TLSIdentity,
    client_id: TLSIdentity,
) -> Any:
    root = ca.certificates[0]

    async def main() -> Any:
        config = plain_config(
            server_db,
            disable_tls=False,
            tls_identity=server_id,
            authenticator=ListenerCertificateAuthenticator.from_roots([root]),
        )
        async with AsyncUrlEndpointListener(config) as listener:
            repl_config = ReplicatorConfiguration(
                listener.urls[0],
                trusted_root_certificates=[root],
                authenticator=ClientCertificateAuthenticator(client_id),
            )
            repl_config.add_collection(client_db.default_collection())
            repl = AsyncReplicator(repl_config)
            await repl.start()
            return await repl.wait_for(ReplicatorActivityLevel.STOPPED, timeout=30)

    return run(main(), timeout=60)


def _assert_synced(status: Any, server_db: Database, client_db: Database) -> None:
    assert status.error is None, status.error
    for db in (server_db, client_db):
        collection = db.default_collection()
        assert collection.get("from-server") is not None
        assert collection.get("from-client") is not None


@pytest.mark.parametrize(
    "ca_usages",
    [KeyUsage(0), KeyUsage.CLIENT_AUTH, KeyUsage.SERVER_AUTH],
    ids=["no-usage", "client-usage", "server-usage"],
)
def test_a_ca_made_with_the_api_issues_server_and_client_identities(
    two_dbs: tuple[Database, Database], ca_usages: KeyUsage
) -> None:
    server_db, client_db = two_dbs
    ca = TLSIdentity.create_identity(ca_usages, {"CN": "Fleet CA"}, is_ca=True)
    server_id = TLSIdentity.create_identity(KeyUsage.SERVER_AUTH, LOCAL, issuer=ca)
    client_id = TLSIdentity.create_identity(KeyUsage.CLIENT_AUTH, {"CN": "truck-7"}, issuer=ca)
    _assert_synced(_sync(server_db, client_db, ca, server_id, client_id), server_db, client_db)


def _couchlite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "couchlite", "identity", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),  # the fixture's key store and passphrase
    )


def test_a_ca_made_with_the_cli_issues_server_and_client_identities(
    two_dbs: tuple[Database, Database], keystore_env: Path
) -> None:
    server_db, client_db = two_dbs
    for args in (
        ("create", "fleet-ca", "--cn", "Fleet CA", "--ca"),
        ("create", "laptop", "--cn", "127.0.0.1", "--ip", "127.0.0.1", "--issuer", "fleet-ca"),
        ("create", "truck", "--cn", "truck-7", "--client", "--no-server", "--issuer", "fleet-ca"),
    ):
        done = _couchlite(*args)
        assert done.returncode == 0, done.stderr
    ca = TLSIdentity.identity("fleet-ca")
    server_id = TLSIdentity.identity("laptop")
    client_id = TLSIdentity.identity("truck")
    _assert_synced(_sync(server_db, client_db, ca, server_id, client_id), server_db, client_db)


def test_a_ca_certificate_is_not_restricted_to_one_purpose() -> None:
    ca = TLSIdentity.create_identity(KeyUsage.CLIENT_AUTH, {"CN": "Fleet CA"}, is_ca=True)
    certificate = ca.certificates[0]
    with pytest.raises(x509.ExtensionNotFound):
        certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca


def test_the_cli_refuses_to_restrict_a_ca_to_one_purpose(keystore_env: Path) -> None:
    for flag in ("--server", "--client"):
        done = _couchlite("create", "ca", "--cn", "CA", "--ca", flag)
        assert done.returncode != 0
        assert "--ca" in done.stderr and "Traceback" not in done.stderr
    assert not (keystore_env.exists() and any(keystore_env.iterdir()))
