"""Configuration: URL handling, authenticator redaction, validation at construction, copying."""

from __future__ import annotations

from pathlib import Path

import pytest

from couchlite import (
    BasicAuthenticator,
    CollectionConfiguration,
    ConfigurationError,
    Database,
    DatabaseConfiguration,
    InvalidArgumentError,
    Replicator,
    ReplicatorConfiguration,
    ReplicatorType,
    UrlEndpoint,
)
from couchlite.replicator.replicator import AsyncReplicator
from couchlite.replicator.supervisor import backoff_delay

from .helpers import der, make_certificate, pem


@pytest.mark.parametrize(
    ("url", "blipsync", "name"),
    [
        ("ws://127.0.0.1:4984/db", "ws://127.0.0.1:4984/db/_blipsync", "db"),
        ("wss://10.1.1.12:8092/otherDB/", "wss://10.1.1.12:8092/otherDB/_blipsync", "otherDB"),
        ("WS://host/prefix/db", "ws://host/prefix/db/_blipsync", "db"),
        ("ws://[::1]:80/db?x=1", "ws://[::1]:80/db/_blipsync?x=1", "db"),
    ],
)
def test_url_endpoint(url: str, blipsync: str, name: str) -> None:
    endpoint = UrlEndpoint(url)
    assert endpoint.url == url
    assert endpoint.blipsync_url == blipsync
    assert endpoint.database_name == name
    assert endpoint.is_tls == url.lower().startswith("wss")
    assert endpoint == UrlEndpoint(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://host/db",
        "ws://host",
        "ws://host/",
        "ws:///db",
        "ws://user:pw@host/db",
        "ws://host/_db",
        "ws://host:99999/db",
        "ws://host/db#frag",
        "",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        UrlEndpoint(url)


def test_bad_url_type() -> None:
    with pytest.raises(InvalidArgumentError):
        UrlEndpoint(42)  # type: ignore[arg-type]


def test_basic_authenticator_redacts_password() -> None:
    auth = BasicAuthenticator(username="valid.user", password="s3cret")
    assert "s3cret" not in repr(auth)
    assert "valid.user" in repr(auth)
    assert auth.authorization_header() == "Basic dmFsaWQudXNlcjpzM2NyZXQ="
    with pytest.raises(InvalidArgumentError):
        BasicAuthenticator("a:b", "x")


def test_defaults(db: Database) -> None:
    config = ReplicatorConfiguration(target=UrlEndpoint("ws://127.0.0.1:1/db"))
    assert config.replicator_type is ReplicatorType.PUSH_AND_PULL
    assert config.continuous is False
    assert config.authenticator is None
    assert config.accept_only_self_signed_server_certificate is False
    assert config.pinned_server_certificate is None
    assert config.headers == {}
    assert config.heartbeat == 300.0
    assert config.max_attempts == 0
    assert config.max_attempt_wait_time == 300.0
    assert config.enable_auto_purge is True
    assert config.enable_delta_sync is False
    assert config.collections == []


def test_collections(db: Database) -> None:
    config = ReplicatorConfiguration(UrlEndpoint("ws://127.0.0.1:1/db"))
    default = db.default_collection()
    orders = db.create_collection("orders", scope="sales")
    col_config = CollectionConfiguration(document_ids=["a", "b"])
    config.add_collection(default)
    config.add_collections([orders], col_config)
    col_config.document_ids = ["changed"]  # copied: no effect
    assert [c.full_name for c in config.collections] == ["_default._default", "sales.orders"]
    got = config.collection_config(orders)
    assert got is not None and list(got.document_ids or []) == ["a", "b"]
    assert config.collection_config(db.create_collection("other")) is None
    config.add_collection(default, CollectionConfiguration(document_ids=["x"]))  # replaces
    assert len(config.collections) == 2
    with pytest.raises(InvalidArgumentError):
        config.add_collection("orders")  # type: ignore[arg-type]


def _config(db: Database, url: str = "ws://127.0.0.1:1/db") -> ReplicatorConfiguration:
    config = ReplicatorConfiguration(UrlEndpoint(url))
    config.add_collection(db.default_collection())
    return config


def _bad(config: ReplicatorConfiguration) -> None:
    with pytest.raises(ConfigurationError):
        AsyncReplicator(config)
    with pytest.raises(ConfigurationError):
        Replicator(config)


def test_no_collections() -> None:
    _bad(ReplicatorConfiguration(UrlEndpoint("ws://127.0.0.1:1/db")))


def test_collections_of_two_databases(db: Database, tmp_path: Path) -> None:
    other = Database("other", DatabaseConfiguration(directory=tmp_path))
    try:
        config = _config(db)
        config.add_collection(other.default_collection())
        _bad(config)
    finally:
        other.close()


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("replicator_type", "push"),
        ("continuous", 1),
        ("heartbeat", 0),
        ("heartbeat", -1.0),
        ("heartbeat", "300"),
        ("max_attempts", -1),
        ("max_attempts", 1.5),
        ("max_attempt_wait_time", 0),
        ("enable_auto_purge", None),
        ("authenticator", "user:pw"),
        ("headers", [("X-A", "b")]),
        ("headers", {"Sec-WebSocket-Protocol": "x"}),
        ("headers", {"X-Bad": "a\r\nb"}),
        ("pinned_server_certificate", b"not a certificate"),
        ("pinned_server_certificate", 42),
        ("accept_only_self_signed_server_certificate", "yes"),
    ],
)
def test_bad_options(db: Database, attribute: str, value: object) -> None:
    config = _config(db, "wss://127.0.0.1:1/db")
    setattr(config, attribute, value)
    _bad(config)


def test_bad_collection_options(db: Database) -> None:
    for col_config in (
        CollectionConfiguration(document_ids="abc"),
        CollectionConfiguration(document_ids=[1]),  # type: ignore[list-item]
        CollectionConfiguration(push_filter=42),  # type: ignore[arg-type]
        CollectionConfiguration(conflict_resolver="x"),  # type: ignore[arg-type]
    ):
        config = ReplicatorConfiguration(UrlEndpoint("ws://127.0.0.1:1/db"))
        config.add_collection(db.default_collection(), col_config)
        _bad(config)


def test_certificate_options(db: Database) -> None:
    cert, _ = make_certificate()
    for form in (cert, pem(cert), der(cert), pem(cert).decode()):
        config = _config(db, "wss://127.0.0.1:1/db")
        config.pinned_server_certificate = form
        assert AsyncReplicator(config)._config.pinned_server_certificate == der(cert)
    both = _config(db, "wss://127.0.0.1:1/db")
    both.pinned_server_certificate = cert
    both.accept_only_self_signed_server_certificate = True
    _bad(both)
    plain = _config(db, "ws://127.0.0.1:1/db")
    plain.accept_only_self_signed_server_certificate = True
    _bad(plain)


def test_authorization_header_and_authenticator_conflict(db: Database) -> None:
    config = _config(db)
    config.authenticator = BasicAuthenticator("u", "p")
    config.headers = {"Authorization": "Bearer x"}
    _bad(config)


def test_configuration_is_copied(db: Database) -> None:
    config = _config(db)
    repl = AsyncReplicator(config)
    config.continuous = True
    config.max_attempts = 3
    assert repl._config.continuous is False
    assert repl._config.max_attempts == 10  # 0 -> 10 for one-shot
    assert repl.config is config
    config.continuous = True
    config.max_attempts = 0
    assert AsyncReplicator(config)._config.max_attempts == 0  # unlimited when continuous


def test_backoff_delays() -> None:
    delays = [backoff_delay(n, 300.0) for n in range(1, 11)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert backoff_delay(5000, 300.0) == 300.0
    assert backoff_delay(3, 2.5) == 2.5
