"""A browser's table against hostile or racing announcements, with real zeroconf on 127.0.0.1.

zeroconf's own service browser is cancelled once started, so that only the changes a test
reports (as zeroconf would) drive the table; the services those changes name are real ones,
registered on loopback, so that resolving them really succeeds.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from zeroconf import ServiceInfo, ServiceStateChange
from zeroconf.asyncio import AsyncZeroconf

from couchlite.discovery import SERVICE_TYPE, DiscoveryError, PeerEvent, browse_async
from couchlite.discovery.browser import _Browse

from .conftest import FIND_TIMEOUT_S, LOOPBACK

pytestmark = pytest.mark.timeout(90)


async def _quiet_browse(events: list[PeerEvent]) -> _Browse:
    browse = _Browse(LOOPBACK, events.append)
    await browse.start()
    assert browse._browser is not None and browse._zeroconf is not None
    browser, browse._browser = browse._browser, None  # close() must not cancel it twice
    await browser.async_cancel()
    return browse


def _report(browse: _Browse, name: str, change: ServiceStateChange) -> asyncio.Task[object]:
    """Report ``change`` as zeroconf would; the resolution it starts (the one new task)."""
    zc = browse._zeroconf
    assert zc is not None
    before = asyncio.all_tasks()
    browse._on_change(zc.zeroconf, SERVICE_TYPE, name, change)
    (task,) = asyncio.all_tasks() - before
    return task


def test_a_peer_removed_while_being_resolved_stays_removed(service_name: str) -> None:
    async def scenario() -> None:
        advertiser = AsyncZeroconf(interfaces=LOOPBACK)
        name = f"{service_name}.{SERVICE_TYPE}"
        info = ServiceInfo(
            SERVICE_TYPE,
            name,
            port=4984,
            properties={"v": "1", "db": "x", "tls": "0"},
            server=f"{service_name}.local.",
            addresses=[socket.inet_aton("127.0.0.1")],
        )
        await advertiser.async_register_service(info)
        events: list[PeerEvent] = []
        browse = await _quiet_browse(events)
        try:
            task = _report(browse, name, ServiceStateChange.Added)
            # The peer leaves before its answers arrive: the late answer must not add it.
            zc = browse._zeroconf
            assert zc is not None
            browse._on_change(zc.zeroconf, SERVICE_TYPE, name, ServiceStateChange.Removed)
            await asyncio.wait([task], timeout=FIND_TIMEOUT_S)
            assert task.done()
            assert browse.peers == [] and events == []
            # A peer that comes back is resolved again.
            task = _report(browse, name, ServiceStateChange.Added)
            await asyncio.wait([task], timeout=FIND_TIMEOUT_S)
            assert [p.name for p in browse.peers] == [service_name]
            assert [e.kind for e in events] == ["added"]
        finally:
            await browse.close()
            await advertiser.async_close()

    asyncio.run(asyncio.wait_for(scenario(), FIND_TIMEOUT_S * 2))


@pytest.mark.parametrize("instance", ["_sub", "bad\x00name"])
def test_a_name_zeroconf_refuses_is_ignored_without_a_failed_task(instance: str) -> None:
    async def scenario() -> None:
        events: list[PeerEvent] = []
        browse = await _quiet_browse(events)
        try:
            task = _report(browse, f"{instance}.{SERVICE_TYPE}", ServiceStateChange.Added)
            await asyncio.wait([task], timeout=FIND_TIMEOUT_S)
            assert task.done() and task.exception() is None  # ignored, not a failed task
            assert browse.peers == [] and events == []
        finally:
            await browse.close()

    asyncio.run(asyncio.wait_for(scenario(), FIND_TIMEOUT_S * 2))


def test_an_async_browser_closed_before_it_started_opens_nothing() -> None:
    async def scenario() -> None:
        browser = browse_async(interfaces=LOOPBACK, timeout=FIND_TIMEOUT_S)
        await browser.close()
        assert [event async for event in browser] == []
        assert browser._browse._zeroconf is None  # no sockets left open
        async with browser:
            assert browser._browse._zeroconf is None

    asyncio.run(asyncio.wait_for(scenario(), FIND_TIMEOUT_S * 2))


# zeroconf's constructor leaks the socket it opened before failing to join the group (its
# own, never handed to us to close): that warning is not what this test is about.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_an_async_browser_that_failed_to_start_ends_its_iteration() -> None:
    async def scenario() -> None:
        # 192.0.2.1 (TEST-NET-1) is no interface of this machine: zeroconf cannot bind it.
        browser = browse_async(interfaces=["192.0.2.1"], timeout=None)
        with pytest.raises(DiscoveryError, match="cannot browse"):
            await browser.start()
        async with asyncio.timeout(FIND_TIMEOUT_S):  # without a timeout of its own
            assert [event async for event in browser] == []
        await browser.close()

    asyncio.run(asyncio.wait_for(scenario(), FIND_TIMEOUT_S * 2))
