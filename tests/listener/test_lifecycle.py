"""Listener lifecycle: start/stop (sync and async), ports, URLs, interfaces, configuration."""

from __future__ import annotations

import errno
import socket

import pytest

from couchlite import (
    AsyncUrlEndpointListener,
    ConfigurationError,
    ConnectionStatus,
    Database,
    DatabaseConfiguration,
    ListenerPasswordAuthenticator,
    NetworkError,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
)
from couchlite.errors import ErrorDomain
from couchlite.transport.websocket import connect_channel
from tests.listener.conftest import StubRegistry
from tests.listener.helpers import plain_config
from tests.transport.helpers import run

pytestmark = pytest.mark.timeout(30)


def test_sync_start_stop(db: Database, stub_sessions: StubRegistry) -> None:
    listener = UrlEndpointListener(plain_config(db))
    assert listener.port is None and listener.urls == [] and not listener.is_listening
    listener.start()
    try:
        port = listener.port
        assert port is not None and port > 0
        assert listener.urls == [f"ws://127.0.0.1:{port}/test"]
        assert listener.status == ConnectionStatus(0, 0)
        assert listener.tls_identity is None
        listener.start()  # idempotent
        assert listener.port == port
    finally:
        listener.stop()
    assert listener.port is None and listener.urls == []
    listener.stop()  # idempotent
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_sync_context_manager_and_restart(db: Database, stub_sessions: StubRegistry) -> None:
    listener = UrlEndpointListener(plain_config(db))
    with listener:
        assert listener.is_listening
    assert not listener.is_listening
    with listener:
        assert listener.port is not None
    assert "UrlEndpointListener" in repr(listener)


def test_async_start_stop_and_client(db: Database, stub_sessions: StubRegistry) -> None:
    async def main() -> None:
        async with AsyncUrlEndpointListener(plain_config(db)) as listener:
            assert listener.is_listening
            channel = await connect_channel(f"{listener.urls[0]}/_blipsync")
            assert channel.subprotocol == "BLIP_3+CBMobile_3"
            await channel.close()
        assert listener.port is None

    run(main())


def test_free_ports_differ_and_fixed_port_is_used(
    db: Database, stub_sessions: StubRegistry
) -> None:
    with (
        UrlEndpointListener(plain_config(db, port=0)) as a,
        UrlEndpointListener(plain_config(db, port=None)) as b,
    ):
        assert a.port and b.port and a.port != b.port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with UrlEndpointListener(plain_config(db, port=free)) as fixed:
        assert fixed.port == free
        assert fixed.urls == [f"ws://127.0.0.1:{free}/test"]


def test_port_in_use_is_a_clear_error(db: Database, stub_sessions: StubRegistry) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listener = UrlEndpointListener(plain_config(db, port=port))
        with pytest.raises(NetworkError) as info:
            listener.start()
        assert info.value.domain == ErrorDomain.POSIX
        assert info.value.code == errno.EADDRINUSE
        assert "already in use" in str(info.value)
        assert not listener.is_listening


def test_every_interface_one_port_for_all_addresses(
    db: Database, stub_sessions: StubRegistry
) -> None:
    async def main() -> None:
        config = plain_config(db, network_interface=None)
        async with AsyncUrlEndpointListener(config) as listener:
            port = listener.port
            urls = listener.urls
            assert f"ws://127.0.0.1:{port}/test" in urls
            assert all(u.startswith("ws://") and u.endswith(f":{port}/test") for u in urls)
            # loopback addresses come last: peers on other machines cannot use them
            hosts = [u.split("//")[1].rsplit(":", 1)[0] for u in urls]
            assert hosts[-1] in {"127.0.0.1", "[::1]"}
            assert not any(h.startswith("[fe80") for h in hosts)
            # reachable over IPv4 and, where the host has it, IPv6 loopback, on one port
            channel = await connect_channel(f"ws://127.0.0.1:{port}/test/_blipsync")
            await channel.close()
            if "[::1]" in hosts:
                channel = await connect_channel(f"ws://[::1]:{port}/test/_blipsync")
                await channel.close()

    run(main())


def test_bound_to_one_address_only(db: Database, stub_sessions: StubRegistry) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with UrlEndpointListener(plain_config(db, network_interface="127.0.0.1")) as listener:
        assert listener.port is not None
        with socket.socket(socket.AF_INET6) as probe:
            assert probe.connect_ex(("::1", listener.port)) != 0
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", listener.port)) == 0


def test_ipv6_loopback_address(db: Database, stub_sessions: StubRegistry) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with UrlEndpointListener(plain_config(db, network_interface="::1")) as listener:
        assert listener.urls == [f"ws://[::1]:{listener.port}/test"]


def test_interface_name(db: Database, stub_sessions: StubRegistry) -> None:
    names = [name for _i, name in socket.if_nameindex()]
    if "lo" not in names:
        pytest.skip("no interface named lo")
    with UrlEndpointListener(plain_config(db, network_interface="lo")) as listener:
        assert listener.urls == [f"ws://127.0.0.1:{listener.port}/test"]

        async def connect() -> None:
            channel = await connect_channel(f"{listener.urls[0]}/_blipsync")
            await channel.close()

        run(connect())


def test_unknown_interface_is_a_configuration_error(db: Database) -> None:
    with pytest.raises(ConfigurationError, match="no-such-if0"):
        UrlEndpointListener(plain_config(db, network_interface="no-such-if0"))


def test_configuration_is_validated_at_construction(tmp_path, db: Database) -> None:
    other = Database("other", DatabaseConfiguration(directory=tmp_path / "o"))
    try:
        bad = [
            UrlEndpointListenerConfiguration(collections=[]),
            UrlEndpointListenerConfiguration(
                collections=[db.default_collection(), other.default_collection()]
            ),
            UrlEndpointListenerConfiguration(
                collections=[db.default_collection(), db.default_collection()]
            ),
            UrlEndpointListenerConfiguration(collections=["_default"]),  # type: ignore[list-item]
            plain_config(db, port=70000),
            plain_config(db, port=True),
            plain_config(db, authenticator=lambda u, p: True),
            plain_config(db, tls_identity="cert.pem"),
            plain_config(db, read_only="yes"),
            plain_config(db, network_interface=""),
        ]
        for config in bad:
            with pytest.raises(ConfigurationError):
                AsyncUrlEndpointListener(config)
        with pytest.raises(ConfigurationError):
            ListenerPasswordAuthenticator("not callable")  # type: ignore[arg-type]
    finally:
        other.close()
    closed = Database("closed", DatabaseConfiguration(directory=tmp_path / "c"))
    config = UrlEndpointListenerConfiguration(collections=[closed.default_collection()])
    closed.close()
    with pytest.raises(ConfigurationError, match="closed"):
        UrlEndpointListener(config)


def test_configuration_is_copied(db: Database, stub_sessions: StubRegistry) -> None:
    named = db.create_collection("items", "store")
    config = plain_config(db)
    listener = UrlEndpointListener(config)
    config.read_only = True
    config.port = 1
    config.collections = [named]
    copied = listener.config
    assert copied.read_only is False and copied.port is None
    assert [c.full_name for c in copied.collections] == ["_default._default"]
    with listener:
        assert stub_sessions.settings[-1].read_only is False
        assert listener.port != 1


def test_named_collections_and_url_path(tmp_path, stub_sessions: StubRegistry) -> None:
    database = Database("my db", DatabaseConfiguration(directory=tmp_path))
    try:
        config = UrlEndpointListenerConfiguration(
            collections=[database.create_collection("items", "store")],
            network_interface="127.0.0.1",
            disable_tls=True,
        )
        with UrlEndpointListener(config) as listener:
            assert listener.urls == [f"ws://127.0.0.1:{listener.port}/my%20db"]

            async def connect() -> None:
                channel = await connect_channel(f"{listener.urls[0]}/_blipsync")
                await channel.close()

            run(connect())
    finally:
        database.close()
