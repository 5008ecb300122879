"""``Advertiser``: a listener's DNS-SD services, registered at start and withdrawn at stop.

It runs on the listener's event loop (``AsyncZeroconf`` attaches to the running loop): start
probes for the instance name (zeroconf appends ``-2``, ``-3``... when another service holds it)
and returns the name registered; the announcements that follow go on in the background. Stop
sends the goodbyes, bounded by :data:`~couchlite._tuning.DISCOVERY_UNREGISTER_TIMEOUT_S`.
Any failure to register is a :class:`DiscoveryError` from ``start``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Mapping, Sequence

from zeroconf import BadTypeInNameException, NonUniqueNameException, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from couchlite._tuning import DISCOVERY_REGISTER_TIMEOUT_S, DISCOVERY_UNREGISTER_TIMEOUT_S
from couchlite.discovery._zeroconf import (
    CBL_SAMPLE_SERVICE_TYPE,
    SERVICE_TYPE,
    zeroconf_options,
)
from couchlite.discovery.peer import MAX_NAME_BYTES
from couchlite.errors import DiscoveryError

logger = logging.getLogger(__name__)


def _truncate(text: str, limit: int) -> str:
    encoded = text.encode()[:limit]
    return encoded.decode("utf-8", "ignore")


def default_service_name(database: str) -> str:
    """``<database> on <host>``, cut to a DNS label's 63 bytes."""
    host = socket.gethostname().split(".", 1)[0] or "localhost"
    name = f"{database} on {host}".replace(".", "-")
    return "".join(c if c.isprintable() else "-" for c in _truncate(name, MAX_NAME_BYTES))


def _host_label(peer_id: str) -> str:
    host = socket.gethostname().split(".", 1)[0] or "host"
    safe = "".join(c if c.isalnum() or c == "-" else "-" for c in host)[:40].strip("-")
    # Our own host name, not the machine's: its address records must not clash with those of
    # the system's mDNS responder (or another listener's) for "<host>.local.".
    return f"{safe or 'host'}-couchlite-{peer_id[:8]}.local."


def _packed(addresses: Sequence[str]) -> list[bytes]:
    return [ipaddress.ip_address(a.split("%", 1)[0]).packed for a in addresses]


class Advertiser:
    """The services of one listener (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        port: int,
        addresses: Sequence[str],
        txt: Mapping[str, str],
        peer_id: str,
        interfaces: Sequence[str] | None,
        cbl_sample: bool,
    ) -> None:
        self._name = name
        self._port = port
        self._addresses = list(addresses)
        self._txt = dict(txt)
        self._server = _host_label(peer_id)
        self._interfaces = list(interfaces) if interfaces is not None else None
        self._cbl_sample = cbl_sample
        self._zeroconf: AsyncZeroconf | None = None
        self._infos: list[ServiceInfo] = []
        self._announcing: list[asyncio.Future[object]] = []
        self.registered_name: str | None = None

    async def start(self) -> str:
        """Register; returns the instance name registered. :class:`DiscoveryError` on failure."""
        try:
            async with asyncio.timeout(DISCOVERY_REGISTER_TIMEOUT_S):
                return await self._register()
        except TimeoutError:
            await self.stop()
            raise DiscoveryError(
                f"advertising {self._name!r} did not finish within "
                f"{DISCOVERY_REGISTER_TIMEOUT_S:.0f} s"
            ) from None
        except (OSError, RuntimeError, ValueError, BadTypeInNameException) as exc:
            await self.stop()
            raise DiscoveryError(f"cannot advertise {self._name!r}: {exc}") from exc
        except NonUniqueNameException as exc:
            await self.stop()
            raise DiscoveryError(f"cannot advertise {self._name!r}: the name is taken") from exc
        except BaseException:
            await self.stop()
            raise

    async def _register(self) -> str:
        interfaces, ip_version = zeroconf_options(self._interfaces)
        self._zeroconf = AsyncZeroconf(interfaces=interfaces, ip_version=ip_version)
        info = ServiceInfo(
            SERVICE_TYPE,
            f"{self._name}.{SERVICE_TYPE}",
            port=self._port,
            properties=self._txt,
            server=self._server,
            addresses=_packed(self._addresses),
        )
        await self._add(info)
        registered = info.name[: -len(SERVICE_TYPE) - 1]
        if self._cbl_sample:
            # The sample app reads the instance name only: no TXT record.
            sample = ServiceInfo(
                CBL_SAMPLE_SERVICE_TYPE,
                f"{registered}.{CBL_SAMPLE_SERVICE_TYPE}",
                port=self._port,
                server=self._server,
                addresses=_packed(self._addresses),
            )
            # "cblistservicesync" breaks RFC 6335's 15-character limit, as the sample does.
            await self._add(sample, strict=False)
        self.registered_name = registered
        logger.info("advertising %r (%s) on port %d", registered, SERVICE_TYPE, self._port)
        return registered

    async def _add(self, info: ServiceInfo, *, strict: bool = True) -> None:
        assert self._zeroconf is not None
        announced: Awaitable[object] = await self._zeroconf.async_register_service(
            info, allow_name_change=True, strict=strict
        )
        self._infos.append(info)
        # The name is ours once probing is over; the announcements need not hold up start.
        future = asyncio.ensure_future(announced)
        future.add_done_callback(_consume)
        self._announcing.append(future)

    async def stop(self) -> None:
        """Withdraw the services (goodbye packets) and close the sockets; idempotent."""
        zc, self._zeroconf = self._zeroconf, None
        announcing, self._announcing = self._announcing, []
        infos, self._infos = self._infos, []
        self.registered_name = None
        if zc is None:
            return
        for future in announcing:
            future.cancel()
        try:
            async with asyncio.timeout(DISCOVERY_UNREGISTER_TIMEOUT_S):
                if infos:
                    await zc.async_unregister_all_services()
        except Exception as exc:  # the listener's stop goes on whatever zeroconf raised
            logger.info("withdrawing the advertisement did not finish: %s", exc)
        finally:
            try:
                async with asyncio.timeout(DISCOVERY_UNREGISTER_TIMEOUT_S):
                    await zc.async_close()
            except Exception as exc:
                logger.info("closing the advertiser's sockets failed: %s", exc)


def _consume(future: asyncio.Future[object]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.debug("announcing a service failed: %s", future.exception())


__all__ = ["Advertiser", "default_service_name"]
