"""Advertising and browsing in one process, with real zeroconf on 127.0.0.1 and real listeners.

Other processes may advertise on loopback too: every test looks only for names it made up.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from zeroconf import ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

from couchlite import (
    AsyncUrlEndpointListener,
    ConfigurationError,
    Database,
    DatabaseConfiguration,
    ListenerPasswordAuthenticator,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
)
from couchlite.discovery import (
    CBL_SAMPLE_SERVICE_TYPE,
    SERVICE_TYPE,
    DiscoveredPeer,
    DiscoveryError,
    PeerEvent,
    browse,
    browse_async,
    find_peer,
    find_peer_async,
    peers,
)
from couchlite.discovery.txt import build_txt

from .conftest import FIND_TIMEOUT_S, LOOPBACK

pytestmark = pytest.mark.timeout(90)


def _open(tmp_path: Path, name: str = "laptop") -> Database:
    return Database(name, DatabaseConfiguration(directory=tmp_path))


def _config(db: Database, name: str | None, **options: object) -> UrlEndpointListenerConfiguration:
    return UrlEndpointListenerConfiguration(
        collections=[db.default_collection()],
        network_interface="127.0.0.1",
        advertise=True,
        service_name=name,
        **options,  # type: ignore[arg-type]
    )


def _next_for(events: object, name: str, kind: str) -> PeerEvent:
    """The next event of ``kind`` for ``name`` (the iterator is bounded by its timeout)."""
    for event in events:  # type: ignore[attr-defined]
        if event.peer.name == name and event.kind == kind:
            return event  # type: ignore[no-any-return]
    raise AssertionError(f"no {kind!r} event for {name!r}")


def test_advertising_is_off_by_default(tmp_path: Path) -> None:
    with _open(tmp_path) as db:
        config = UrlEndpointListenerConfiguration(
            collections=[db.default_collection()], network_interface="127.0.0.1"
        )
        assert config.advertise is False and config.service_name is None
        with UrlEndpointListener(config) as listener:
            assert listener.service_name is None
            port = listener.port
            seen = peers(interfaces=LOOPBACK, timeout=2.0)
            assert all(p.port != port for p in seen)


def test_a_started_listener_is_found_with_its_record(tmp_path: Path, service_name: str) -> None:
    with _open(tmp_path) as db:
        notes = db.create_collection("notes", scope="demo")
        config = UrlEndpointListenerConfiguration(
            collections=[db.default_collection(), notes],
            network_interface="127.0.0.1",
            advertise=True,
            service_name=service_name,
            authenticator=ListenerPasswordAuthenticator(lambda u, p: True),
        )
        with UrlEndpointListener(config) as listener:
            assert listener.service_name == service_name
            peer = find_peer(service_name, interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S)
            assert isinstance(peer, DiscoveredPeer)
            assert peer.addresses == ("127.0.0.1",) and peer.port == listener.port
            assert peer.database == "laptop"
            assert peer.collections == ("_default._default", "demo.notes")
            assert peer.tls and peer.auth == "password"
            assert listener.tls_identity is not None
            certificate = listener.tls_identity.certificates[0]
            assert peer.fingerprint == certificate.fingerprint(hashes.SHA256()).hex()
            assert peer.protocols == ("BLIP_3+CBMobile_3", "BLIP_3+CBMobile_2")
            assert peer.peer_id is not None and peer.txt["id"] == peer.peer_id
            assert peer.endpoint().url == listener.urls[0]
            # found by peer ID too, and the same ID after a restart
            assert find_peer(peer.peer_id, interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S) == peer
        with UrlEndpointListener(config) as listener:
            again = find_peer(service_name, interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S)
            assert again.peer_id == peer.peer_id


def test_stop_unregisters_and_the_browser_sees_it(tmp_path: Path, service_name: str) -> None:
    with _open(tmp_path) as db, browse(interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S) as events:
        listener = UrlEndpointListener(_config(db, service_name, disable_tls=True))
        listener.start()
        try:
            added = _next_for(events, service_name, "added")
            assert not added.peer.tls and added.peer.fingerprint is None
            assert added.peer.url.startswith("ws://127.0.0.1:")
            assert any(p.name == service_name for p in events.peers)
        finally:
            listener.stop()
        removed = _next_for(events, service_name, "removed")
        assert removed.peer == added.peer
        assert all(p.name != service_name for p in events.peers)


def test_closing_the_database_unregisters(tmp_path: Path, service_name: str) -> None:
    with browse(interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S) as events:
        db = _open(tmp_path)
        UrlEndpointListener(_config(db, service_name, disable_tls=True)).start()
        _next_for(events, service_name, "added")
        db.close()
        _next_for(events, service_name, "removed")


def test_a_taken_name_is_made_unique(tmp_path: Path, service_name: str) -> None:
    with (
        _open(tmp_path / "a") as a,
        _open(tmp_path / "b", "other") as b,
        UrlEndpointListener(_config(a, service_name, disable_tls=True)) as first,
        UrlEndpointListener(_config(b, service_name, disable_tls=True)) as second,
    ):
        assert first.service_name == service_name
        assert second.service_name is not None and second.service_name != service_name
        assert second.service_name.startswith(service_name)
        found = find_peer(second.service_name, interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S)
        assert found.database == "other" and found.port == second.port


def test_the_default_name_comes_from_the_database_and_host(tmp_path: Path) -> None:
    with (
        _open(tmp_path, "kitchen") as db,
        UrlEndpointListener(_config(db, None, disable_tls=True)) as listener,
    ):
        name = listener.service_name
        assert name is not None and name.startswith("kitchen on ")
        assert socket.gethostname().split(".")[0][:20] in name


def test_the_couchbase_sample_type_is_registered_when_asked(
    tmp_path: Path, service_name: str
) -> None:
    seen: list[str] = []

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added:
            seen.append(name)

    zc = Zeroconf(interfaces=LOOPBACK)
    try:
        browser = ServiceBrowser(zc, CBL_SAMPLE_SERVICE_TYPE, handlers=[on_change])
        with _open(tmp_path) as db:
            config = _config(db, service_name, disable_tls=True, advertise_cbl_sample=True)
            with UrlEndpointListener(config) as listener:
                wanted = f"{service_name}.{CBL_SAMPLE_SERVICE_TYPE}"
                deadline = time.monotonic() + FIND_TIMEOUT_S
                while wanted not in seen and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert wanted in seen
                info = zc.get_service_info(CBL_SAMPLE_SERVICE_TYPE, wanted, timeout=5000)
                assert info is not None and info.port == listener.port
                assert not info.properties  # no TXT record, as the sample expects
        browser.cancel()
    finally:
        zc.close()


def test_a_changed_record_is_an_update_and_a_goodbye_a_removal(service_name: str) -> None:
    # A service registered with zeroconf itself, to change its TXT record while it runs.
    def record(db: str) -> dict[str, str]:
        return build_txt(
            peer_id="ab" * 16,
            database=db,
            collections=["_default._default"],
            tls=False,
            fingerprint=None,
            auth="none",
            protocols=["BLIP_3+CBMobile_3"],
        )

    def info(db: str) -> ServiceInfo:
        return ServiceInfo(
            SERVICE_TYPE,
            f"{service_name}.{SERVICE_TYPE}",
            port=4984,
            properties=record(db),
            server=f"{service_name}.local.",
            addresses=[socket.inet_aton("127.0.0.1")],
        )

    zc = Zeroconf(interfaces=LOOPBACK)
    try:
        with browse(interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S) as events:
            zc.register_service(info("before"))
            assert _next_for(events, service_name, "added").peer.database == "before"
            zc.update_service(info("after"))
            assert _next_for(events, service_name, "updated").peer.database == "after"
            zc.unregister_service(info("after"))
            assert _next_for(events, service_name, "removed").peer.database == "after"
    finally:
        zc.close()


def test_bad_records_on_the_network_are_ignored(service_name: str) -> None:
    zc = Zeroconf(interfaces=LOOPBACK)
    bad = ServiceInfo(
        SERVICE_TYPE,
        f"{service_name}.{SERVICE_TYPE}",
        port=4984,
        properties={"v": "9", "db": "x", "tls": "0"},
        server=f"{service_name}.local.",
        addresses=[socket.inet_aton("127.0.0.1")],
    )
    try:
        zc.register_service(bad)
        with pytest.raises(DiscoveryError, match="no peer named"):
            find_peer(service_name, interfaces=LOOPBACK, timeout=2.0)
    finally:
        zc.close()


def test_find_peer_times_out_with_a_typed_error(service_name: str) -> None:
    started = time.monotonic()
    with pytest.raises(DiscoveryError, match=f"no peer named '{service_name}'"):
        find_peer(service_name, interfaces=LOOPBACK, timeout=0.5)
    assert time.monotonic() - started < FIND_TIMEOUT_S  # bounded, not a timing claim


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not an IP address"):
        browse(interfaces=["not-an-address"])
    with pytest.raises(ConfigurationError, match="not a string"):
        browse(interfaces="127.0.0.1")  # type: ignore[arg-type]
    with pytest.raises(DiscoveryError, match="timeout"):
        browse(interfaces=LOOPBACK, timeout=-1)
    from couchlite.listener.config import _check_service_name

    for bad in ("a.b", "", "x" * 64, "tab\there", 5):
        with pytest.raises(ConfigurationError, match="service_name"):
            _check_service_name(bad)
    assert _check_service_name("Café de Flore (2)") == "Café de Flore (2)"


def test_browse_async_sees_an_async_listener(tmp_path: Path, service_name: str) -> None:
    async def scenario() -> None:
        with _open(tmp_path) as db:
            listener = AsyncUrlEndpointListener(_config(db, service_name, disable_tls=True))
            async with browse_async(interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S) as events:
                await listener.start()
                try:
                    async for event in events:
                        if event.peer.name == service_name:
                            assert event.kind == "added"
                            assert event.peer.port == listener.port
                            break
                    else:
                        raise AssertionError("not found")
                finally:
                    await listener.stop()
                async for event in events:
                    if event.peer.name == service_name and event.kind == "removed":
                        break
                else:
                    raise AssertionError("removal not seen")

    asyncio.run(asyncio.wait_for(scenario(), FIND_TIMEOUT_S * 3))


def test_without_an_interface_the_environment_keeps_it_on_loopback(
    tmp_path: Path, service_name: str
) -> None:
    # The conftest sets $COUCHLITE_DISCOVERY_INTERFACES=127.0.0.1: a listener on every interface
    # is then announced on loopback, with the loopback address.
    with _open(tmp_path) as db:
        config = _config(db, service_name, disable_tls=True)
        config.network_interface = None
        with UrlEndpointListener(config) as listener:
            found = find_peer(service_name, timeout=FIND_TIMEOUT_S)  # interfaces from the env
            assert found.addresses == ("127.0.0.1",) and found.port == listener.port


def test_a_failure_to_advertise_fails_the_start_and_leaves_nothing_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUCHLITE_DISCOVERY_INTERFACES", "not-an-address")
    with _open(tmp_path) as db:
        config = _config(db, None, disable_tls=True)
        config.network_interface = None
        listener = UrlEndpointListener(config)
        with pytest.raises(ConfigurationError, match="not an IP address"):
            listener.start()
        assert not listener.is_listening and listener.port is None
        assert listener.service_name is None
        monkeypatch.setenv("COUCHLITE_DISCOVERY_INTERFACES", "127.0.0.1")
        with listener:  # and it can start once the problem is gone
            assert listener.service_name is not None


def test_a_flood_of_services_is_bounded(service_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lower bounds, so that a handful of real services stand for a flood.
    import couchlite.discovery.browser as browser_module

    monkeypatch.setattr(browser_module, "DISCOVERY_MAX_PEERS", 2)
    monkeypatch.setattr(browser_module, "DISCOVERY_MAX_QUEUED_EVENTS", 1)
    names = [f"{service_name}-{i}" for i in range(3)]
    zc = Zeroconf(interfaces=LOOPBACK)
    try:
        with browse(interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S) as events:
            for name in names:
                zc.register_service(
                    ServiceInfo(
                        SERVICE_TYPE,
                        f"{name}.{SERVICE_TYPE}",
                        port=4984,
                        properties={"v": "1", "db": "x", "tls": "0"},
                        server=f"{name}.local.",
                        addresses=[socket.inet_aton("127.0.0.1")],
                    )
                )
            deadline = time.monotonic() + 5.0
            while len(events.peers) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # room for a third, which must not come
            assert len(events.peers) == 2  # the table is full: more are ignored
            assert len(events._events._events) <= 1  # a consumer that never read: one kept
    finally:
        zc.close()


def test_find_peer_async_finds_and_times_out(tmp_path: Path, service_name: str) -> None:
    async def scenario() -> None:
        with _open(tmp_path) as db:
            config = _config(db, service_name, disable_tls=True)
            async with AsyncUrlEndpointListener(config) as listener:
                found = await find_peer_async(
                    service_name, interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S
                )
                assert found.port == listener.port
        with pytest.raises(DiscoveryError, match="no peer named"):
            await find_peer_async(f"{service_name}-absent", interfaces=LOOPBACK, timeout=0.5)

    asyncio.run(asyncio.wait_for(scenario(), FIND_TIMEOUT_S * 2))
