"""Interface names and advertised addresses (the kernel's answers replaced where needed)."""

from __future__ import annotations

import socket

import pytest

from couchlite import ConfigurationError
from couchlite.listener import interfaces


@pytest.fixture
def fake_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interfaces, "_IS_LINUX", True)
    monkeypatch.setattr(
        socket, "if_nameindex", lambda: [(1, "lo"), (2, "eth0"), (3, "wg0"), (4, "down0")]
    )
    ipv4 = {"lo": "127.0.0.1", "eth0": "192.0.2.7"}
    monkeypatch.setattr(interfaces, "_ipv4_of", ipv4.get)
    monkeypatch.setattr(
        interfaces,
        "_ipv6_table",
        lambda: [
            ("lo", "::1"),
            ("eth0", "fe80::1"),
            ("eth0", "2001:db8::7"),
            ("wg0", "fe80::2"),
            ("wg0", "fd00::9"),
        ],
    )
    monkeypatch.setattr(socket, "gethostname", lambda: "no-such-host.invalid")


def test_resolve_interface_names(fake_host: None) -> None:
    assert interfaces.resolve_interface("lo") == "127.0.0.1"
    assert interfaces.resolve_interface("eth0") == "192.0.2.7"
    # IPv6 only: the first address that is not link-local
    assert interfaces.resolve_interface("wg0") == "fd00::9"
    with pytest.raises(ConfigurationError, match="no usable address"):
        interfaces.resolve_interface("down0")
    with pytest.raises(ConfigurationError, match="unknown"):
        interfaces.resolve_interface("eth9")


def test_local_addresses_routable_first_no_link_local(fake_host: None) -> None:
    assert interfaces.local_addresses() == [
        "192.0.2.7",
        "2001:db8::7",
        "fd00::9",
        "127.0.0.1",
        "::1",
    ]
    assert interfaces.local_addresses(ipv6=False) == ["192.0.2.7", "127.0.0.1"]
    assert interfaces.local_addresses(ipv4=False) == ["2001:db8::7", "fd00::9", "::1"]


def test_other_platforms_cannot_resolve_names(
    fake_host: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(interfaces, "_IS_LINUX", False)
    with pytest.raises(ConfigurationError, match="IP address instead"):
        interfaces.resolve_interface("eth0")


def test_url_host() -> None:
    assert interfaces.url_host("10.0.0.1") == "10.0.0.1"
    assert interfaces.url_host("::1") == "[::1]"


def test_real_host_lists_loopback() -> None:
    addresses = interfaces.local_addresses()
    assert "127.0.0.1" in addresses
    assert not any(a.lower().startswith("fe80") for a in addresses)
