"""Helpers of the listener tests: configurations, TLS client contexts, raw HTTP, polling."""

from __future__ import annotations

import asyncio
import http.client
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from couchlite import Database, UrlEndpointListenerConfiguration
from couchlite.tls import TLSIdentity

#: Bound on polling for a condition the listener reaches asynchronously.
POLL_TIMEOUT_S = 10.0


def plain_config(db: Database, **kwargs: object) -> UrlEndpointListenerConfiguration:
    """A ws:// configuration on 127.0.0.1 (tests never listen on other addresses)."""
    options: dict[str, object] = {"network_interface": "127.0.0.1", "disable_tls": True}
    options.update(kwargs)
    return UrlEndpointListenerConfiguration(collections=[db.default_collection()], **options)  # type: ignore[arg-type]


def pinned_context(identity: TLSIdentity) -> ssl.SSLContext:
    """A client context trusting only ``identity``'s certificate (no host name check)."""
    context = ssl.create_default_context(cadata=identity.certificates_pem().decode("ascii"))
    context.check_hostname = False
    return context


@dataclass
class HttpResult:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def http_get(
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    host: str = "127.0.0.1",
    context: ssl.SSLContext | None = None,
) -> HttpResult:
    """A blocking HTTP GET (for listeners running on the library's loop thread)."""
    connection: http.client.HTTPConnection
    if context is None:
        connection = http.client.HTTPConnection(host, port, timeout=POLL_TIMEOUT_S)
    else:
        connection = http.client.HTTPSConnection(
            host, port, timeout=POLL_TIMEOUT_S, context=context
        )
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read() if response.status != 101 else b""
        return HttpResult(response.status, response.reason, response.getheaders(), body)
    finally:
        connection.close()


UPGRADE_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Protocol": "BLIP_3+CBMobile_3,BLIP_3+CBMobile_2",
}


async def wait_until(condition: Callable[[], bool], timeout: float = POLL_TIMEOUT_S) -> None:
    """Poll ``condition`` (bounded) until it holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
