"""Pieces of the client's own handling of HTTP redirects.

:func:`couchlite.transport.websocket.connect_channel` follows redirects itself, deciding per
hop what may go along; these are its building blocks: a websockets ``connect`` that reports a
redirect instead of following it, and the origin comparison.
"""

from __future__ import annotations

from websockets.asyncio.client import connect as ws_connect
from websockets.uri import parse_uri

#: HTTP statuses that redirect the upgrade (with a ``Location``), as websockets knows them.
REDIRECT_STATUSES = frozenset({300, 301, 302, 303, 307, 308})


class NoRedirects(ws_connect):
    """websockets' ``connect`` that reports a redirect instead of following it: it would keep
    the caller's headers (an API key, say) for another host; ``connect_channel`` decides."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


def origin(url: str) -> tuple[bool, str, int]:
    """``(secure, host, port)`` of a WebSocket URL: two URLs of one origin give equal ones."""
    uri = parse_uri(url)
    return uri.secure, uri.host.lower(), uri.port


def websocket_url(location: str) -> str:
    """A redirect's absolute ``Location`` as a WebSocket URL (servers may name http(s))."""
    scheme, sep, rest = location.partition("://")
    mapped = {"http": "ws", "https": "wss"}.get(scheme.lower())
    return f"{mapped}{sep}{rest}" if sep and mapped else location


class Redirect(tuple[int, str]):
    """``(status, absolute location)`` of a redirect answer."""

    __slots__ = ()


__all__ = ["REDIRECT_STATUSES", "NoRedirects", "Redirect", "origin", "websocket_url"]
