"""Full replications over wss:// with client-certificate authentication, and the anonymous
listener identity pinned across a listener restart (real listener, real engine, 127.0.0.1)."""

from __future__ import annotations

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
    ListenerCertificateAuthenticator,
    MutableDocument,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
)
from tests.listener.helpers import plain_config
from tests.replicator_api.helpers import run

from .helpers import ca, client

pytest.importorskip("couchlite.replicator.active")
pytestmark = pytest.mark.timeout(60)


def _push_pull(server_db: Database, client_db: Database, listener_auth: Any, **options: Any):
    async def main() -> Any:
        config = plain_config(server_db, disable_tls=False, authenticator=listener_auth)
        async with AsyncUrlEndpointListener(config) as listener:
            assert listener.tls_identity is not None
            repl_config = ReplicatorConfiguration(
                listener.urls[0],
                pinned_server_certificate=listener.tls_identity.certificates[0],
                **options,
            )
            repl_config.add_collection(client_db.default_collection())
            repl = AsyncReplicator(repl_config)
            await repl.start()
            return await repl.wait_for(ReplicatorActivityLevel.STOPPED, timeout=30)

    return run(main(), timeout=45)


@pytest.fixture
def two_dbs(tmp_path: Path):
    server_db = Database("server", DatabaseConfiguration(directory=tmp_path / "s"))
    client_db = Database("client", DatabaseConfiguration(directory=tmp_path / "c"))
    yield server_db, client_db
    client_db.close()
    server_db.close()


def test_push_and_pull_with_a_client_certificate(two_dbs: tuple[Database, Database]) -> None:
    server_db, client_db = two_dbs
    for i in range(20):
        client_db.default_collection().save(MutableDocument(f"c{i}", {"n": i}))
        server_db.default_collection().save(MutableDocument(f"s{i}", {"n": i}))
    root = ca("Fleet")
    seen: list[str] = []

    def check(chain: list[x509.Certificate]) -> bool:
        seen.append(chain[0].subject.rfc4514_string())
        return True

    for authenticator in (
        ListenerCertificateAuthenticator.from_roots([root.certificates[0]]),
        ListenerCertificateAuthenticator(check),
    ):
        status = _push_pull(
            server_db,
            client_db,
            authenticator,
            authenticator=ClientCertificateAuthenticator(client(root, cn="truck-7")),
        )
        assert status.error is None, status.error
    assert seen == ["CN=truck-7"]
    assert server_db.default_collection().count == 40
    assert client_db.default_collection().count == 40
    assert server_db.default_collection().get("c7").to_dict() == {"n": 7}


def test_anonymous_identity_pinned_across_a_listener_restart(
    two_dbs: tuple[Database, Database],
) -> None:
    server_db, client_db = two_dbs
    server_db.default_collection().save(MutableDocument("a", {"v": 1}))
    pinned: list[x509.Certificate] = []

    async def once() -> Any:
        async with AsyncUrlEndpointListener(plain_config(server_db, disable_tls=False)) as listener:
            assert listener.tls_identity is not None
            if not pinned:
                pinned.append(listener.tls_identity.certificates[0])
            config = ReplicatorConfiguration(listener.urls[0], pinned_server_certificate=pinned[0])
            config.add_collection(client_db.default_collection())
            repl = AsyncReplicator(config)
            await repl.start()
            return await repl.wait_for(ReplicatorActivityLevel.STOPPED, timeout=30)

    assert run(once(), timeout=45).error is None
    server_db.default_collection().save(MutableDocument("b", {"v": 2}))
    assert run(once(), timeout=45).error is None  # a new listener, the same certificate
    assert client_db.default_collection().count == 2
