"""Message channels over real WebSockets, using the ``websockets`` library's asyncio API.

Every ``websockets``, ``OSError`` and ``ssl`` exception raised here leaves as a couchlite error
translated by :mod:`couchlite.transport.boundary` (``raise ... from exc``); nothing above the
transport sees a foreign exception.

What Couchbase Lite expects of the WebSocket layer (cbl-replication-notes.md §1, §3.3-3.6):

* binary messages only, one BLIP frame each; no permessage-deflate (BLIP compresses itself), so
  ``compression=None`` on both sides;
* incoming messages up to 1 MiB (LiteCore's limit), text messages ignored with a warning
  (rate-limited per connection: :class:`~couchlite.transport.failures.RateLimitedLog`);
* the server picks the first of the client's offered sub-protocols it supports (LiteCore's
  ``findMatchingSyncProtocol``) and refuses a client that offers none of them with HTTP 400;
* the client insists the server chose one of the sub-protocols it offered;
* pings are answered by ``websockets`` itself, whether or not anyone is calling ``recv``.

The channel itself (:class:`WebSocketChannel`, re-exported here) lives in
:mod:`couchlite.transport._wschannel`; this module opens connections, on both sides.

Server side, every accepted socket is counted and bounded before any TLS or HTTP work
(:mod:`couchlite.transport._admission`); closing a :class:`ChannelServer` aborts, after a short
grace period, whatever has not closed, so that a close never waits for a stalled peer.

Client side, redirects (3xx with ``Location``) are followed here, not by websockets (which
would send the caller's headers to any host): same-origin ones up to :data:`MAX_REDIRECTS`
times; cross-origin ones (scheme, host or port differ) only with
``allow_cross_origin_redirects``, and then without the caller's headers (credentials, API keys)
and with ``cross_origin_ssl`` (no client certificate); a refused one raises
:class:`RedirectRefused`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl as ssl_module
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import (
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
)
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from couchlite._tuning import (
    MAX_REDIRECTS,
    WS_CLOSE_TIMEOUT_S,
    WS_MAX_INCOMING_MESSAGE,
    WS_MAX_QUEUE,
    WS_OPEN_TIMEOUT_S,
    WS_PONG_TIMEOUT_S,
    WS_WRITE_LIMIT,
)
from couchlite.errors import (
    InvalidArgumentError,
    NetworkCode,
    NetworkError,
    ProtocolError,
)
from couchlite.transport._admission import (
    Abortable,
    ConnectionLimits,
    Gate,
    admitting_connection_class,
)
from couchlite.transport._redirects import (
    REDIRECT_STATUSES,
    NoRedirects,
    Redirect,
    origin,
    websocket_url,
)
from couchlite.transport._wschannel import HandshakeRequest, WebSocketChannel, _format_address
from couchlite.transport.boundary import listen_error, ssl_error_in, translate_connect_error
from couchlite.transport.channel import (
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNEXPECTED,
    DEFAULT_SUBPROTOCOLS,
    ChannelClosed,
)
from couchlite.transport.errors import HandshakeRefused, RedirectRefused

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HandshakeRejection:
    """What a ``process_request`` hook returns to refuse an upgrade (e.g. 401 + challenge)."""

    status: int
    body: str = ""
    headers: tuple[tuple[str, str], ...] = field(default=())


ProcessRequest = Callable[
    [HandshakeRequest], Awaitable[HandshakeRejection | None] | HandshakeRejection | None
]
ChannelHandler = Callable[["WebSocketChannel"], Awaitable[None]]


def _headers_list(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def _connection_options(close_timeout: float, max_queue: int, write_limit: int) -> dict[str, Any]:
    """What client and server connections share: no WebSocket compression (BLIP compresses),
    no websockets keepalive (our own heartbeat: ``WebSocketChannel.start_heartbeat``), and
    LiteCore's incoming message limit."""
    return {
        "compression": None,
        "ping_interval": None,
        "ping_timeout": None,
        "close_timeout": close_timeout,
        "max_size": WS_MAX_INCOMING_MESSAGE,
        "max_queue": max_queue,
        "write_limit": write_limit,
    }


async def connect_channel(
    url: str,
    *,
    subprotocols: Sequence[str] = DEFAULT_SUBPROTOCOLS,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    user_agent: str | None = None,
    open_timeout: float = WS_OPEN_TIMEOUT_S,
    ping_interval: float | None = None,
    ping_timeout: float | None = WS_PONG_TIMEOUT_S,
    close_timeout: float = WS_CLOSE_TIMEOUT_S,
    max_queue: int = WS_MAX_QUEUE,
    write_limit: int = WS_WRITE_LIMIT,
    allow_cross_origin_redirects: bool = False,
    cross_origin_ssl: ssl_module.SSLContext | None = None,
    max_redirects: int = MAX_REDIRECTS,
) -> WebSocketChannel:
    """Open a WebSocket to ``url`` (``ws://`` or ``wss://``) and negotiate a BLIP sub-protocol.

    Redirects: same-origin ones are followed (at most ``max_redirects``), with the same headers
    and TLS context; a redirect to another scheme, host or port raises :class:`RedirectRefused`
    unless ``allow_cross_origin_redirects``, and is then followed *without* ``headers`` and
    ``server_hostname``, with ``cross_origin_ssl`` (a context without client certificate; by
    default ``ssl``) -- and so is every later hop. ``wss://`` to ``ws://`` is always refused.
    ``open_timeout`` bounds all hops together.

    Raises :class:`AuthenticationError` on HTTP 401, :class:`HandshakeRefused` (a
    :class:`NetworkError` whose ``code`` is the HTTP status) on other refusals,
    :class:`ProtocolError` when the server picked none of ``subprotocols``, :class:`TLSError`
    for certificate problems and :class:`NetworkError` (``code`` from :class:`NetworkCode`, e.g.
    ``CONNECTION_REFUSED``, transient) when the network fails.
    """
    if not subprotocols:
        raise InvalidArgumentError("offer at least one sub-protocol")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + open_timeout
    try:
        home = origin(url)
    except InvalidURI as exc:
        raise translate_connect_error(exc, url) from exc
    current, hop_headers, hop_ssl, hop_hostname = url, _headers_list(headers), ssl, server_hostname
    crossed = False
    ws: ClientConnection | None = None
    for redirects in range(max_redirects + 1):
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise NetworkError(f"{url}: timed out opening the connection", code=NetworkCode.TIMEOUT)
        outcome = await _open_once(
            current,
            subprotocols=subprotocols,
            headers=hop_headers,
            ssl=hop_ssl,
            server_hostname=hop_hostname,
            user_agent=user_agent,
            open_timeout=remaining,
            options=_connection_options(close_timeout, max_queue, write_limit),
        )
        if not isinstance(outcome, Redirect):
            ws = outcome
            break
        status, location = outcome
        try:
            target = origin(location)
        except InvalidURI as exc:
            raise RedirectRefused(status, location, "not a WebSocket URL") from exc
        if origin(current)[0] and not target[0]:
            raise RedirectRefused(status, location, "it would drop TLS")
        if redirects == max_redirects:
            raise RedirectRefused(status, location, f"more than {max_redirects} redirects")
        if target != home and not crossed:
            if not allow_cross_origin_redirects:
                raise RedirectRefused(
                    status,
                    location,
                    "it leads to another origin (scheme, host or port); "
                    "allow_cross_origin_redirects would follow it, without credentials",
                )
            # Whatever the caller meant for `url` -- credentials, API keys, a client
            # certificate, a TLS host name -- is not for another origin.
            crossed = True
            hop_headers = []
            hop_hostname = None
            hop_ssl = cross_origin_ssl if cross_origin_ssl is not None else ssl
        logger.info("%s: redirected (HTTP %d) to %s", current, status, location)
        current = location
    assert ws is not None  # the last turn of the loop either broke out or raised
    if ws.subprotocol is None or ws.subprotocol not in subprotocols:
        # websockets accepts a server that names no sub-protocol; LiteCore does not (§3.3).
        await ws.close(CLOSE_PROTOCOL_ERROR, "no sub-protocol")
        raise ProtocolError(
            f"{current}: incompatible replication protocol (the server did not accept any of "
            f"{', '.join(subprotocols)})",
            code=CLOSE_PROTOCOL_ERROR,
        )
    channel = WebSocketChannel(ws)
    if ping_interval is not None:
        channel.start_heartbeat(ping_interval, ping_timeout)
    return channel


async def _open_once(
    url: str,
    *,
    subprotocols: Sequence[str],
    headers: list[tuple[str, str]],
    ssl: ssl_module.SSLContext | None,
    server_hostname: str | None,
    user_agent: str | None,
    open_timeout: float,
    options: dict[str, Any],
) -> ClientConnection | Redirect:
    """One opening handshake: the connection, or where the server redirected us."""
    kwargs: dict[str, Any] = {}
    if ssl is not None and url.lower().startswith("wss:"):
        kwargs["ssl"] = ssl
        if server_hostname is not None:
            kwargs["server_hostname"] = server_hostname
    # In TLS 1.3 the server's verdict on our client certificate is an alert that arrives after
    # the handshake, while websockets reads the HTTP response: asyncio hands the ssl.SSLError
    # to connection_lost(), and websockets then reports only "no valid HTTP response". Keep the
    # TLS error so that the translation can say what really happened.
    lost: list[BaseException] = []

    class _ClientConnection(ClientConnection):
        def connection_lost(self, exc: Exception | None) -> None:
            if exc is not None:
                lost.append(exc)
            super().connection_lost(exc)

    if "ssl" in kwargs:
        kwargs["create_connection"] = _ClientConnection
    try:
        return await NoRedirects(
            url,
            subprotocols=[Subprotocol(s) for s in subprotocols],
            additional_headers=headers,
            user_agent_header=user_agent if user_agent is not None else "couchlite",
            # A replicator connects where it is told; environment proxies would surprise it.
            proxy=None,
            open_timeout=open_timeout,
            **options,
            **kwargs,
        )
    except InvalidStatus as exc:
        response = exc.response
        location = response.headers.get("Location")
        if response.status_code in REDIRECT_STATUSES and location:
            absolute = websocket_url(urllib.parse.urljoin(url, location))
            return Redirect((response.status_code, absolute))
        raise translate_connect_error(exc, url) from exc
    except (InvalidHandshake, InvalidURI, OSError, TimeoutError) as exc:
        tls_failure = next((e for e in lost if isinstance(e, ssl_module.SSLError)), None)
        if tls_failure is not None and ssl_error_in(exc) is None:
            raise translate_connect_error(tls_failure, url) from exc
        raise translate_connect_error(exc, url) from exc


class ChannelServer:
    """A listening WebSocket server handing each accepted connection to a channel handler.

    Closing it closes the open connections (1001, going away), aborts after a grace period
    whatever has not closed, and waits (bounded) for their handlers.
    """

    def __init__(self, server: Server, gate: Gate) -> None:
        self._server = server
        self._gate = gate

    @property
    def port(self) -> int:
        """The TCP port listened on (useful after binding port 0)."""
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every ``(host, port)`` listened on."""
        return [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in self._server.sockets]

    @property
    def admission(self) -> dict[str, int]:
        """Counts of the admission gate: ``pending`` (in TLS, HTTP or authentication),
        ``established`` (WebSockets open or being opened), ``live`` (all sockets), and since
        the start ``refused`` (closed at accept: no pending slot), ``evicted`` (stalled pending
        ones dropped for a new one), ``full`` (upgrades refused: too many connections)."""
        gate = self._gate
        return {
            "pending": gate.pending_count,
            "established": gate.established_count,
            "live": gate.live_count,
            "refused": gate.refused,
            "evicted": gate.evicted,
            "full": gate.full,
        }

    def abort_connections(self) -> None:
        """Drop every connection at once (TCP abort), whatever state it is in."""
        self._gate.abort_all()

    async def close(
        self,
        timeout: float = WS_CLOSE_TIMEOUT_S * 2,
        *,
        grace: float = WS_CLOSE_TIMEOUT_S,
    ) -> None:
        """Stop listening and end every connection: those still opening at once, open ones
        with 1001 within ``grace`` seconds, after which whatever is left is aborted; then wait
        up to ``timeout`` more for the handlers to return."""
        self._gate.closing = True
        self._gate.abort_pending()
        self._server.close()
        try:
            async with asyncio.timeout(grace):
                await self._server.wait_closed()
            return
        except TimeoutError:
            pass
        # Peers that stopped reading, or never answer the close frame, cannot hold us.
        self._gate.abort_all()
        try:
            async with asyncio.timeout(timeout):
                await self._server.wait_closed()
        except TimeoutError:
            logger.warning("channel server: handlers still running after %.1f s", timeout)

    async def __aenter__(self) -> ChannelServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


#: The answer to an upgrade when ``max_connections`` are established.
_FULL_BODY = "Too many connections"


def _select_subprotocol(
    supported: Sequence[str],
) -> Callable[[ServerConnection, Sequence[Subprotocol]], Subprotocol | None]:
    def select(_connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol:
        # The client's order wins, as in LiteCore's listener (notes §3.4).
        for candidate in offered:
            if candidate in supported:
                return candidate
        raise NegotiationError(
            "no supported sub-protocol offered (supported: " + ", ".join(supported) + ")"
        )

    return select


async def serve_channels(
    handler: Callable[[WebSocketChannel], Awaitable[None]],
    host: str,
    port: int,
    *,
    subprotocols: Sequence[str] = DEFAULT_SUBPROTOCOLS,
    ssl: ssl_module.SSLContext | None = None,
    process_request: ProcessRequest | None = None,
    server_header: str | None = "couchlite",
    open_timeout: float = WS_OPEN_TIMEOUT_S,
    ping_interval: float | None = None,
    ping_timeout: float | None = WS_PONG_TIMEOUT_S,
    close_timeout: float = WS_CLOSE_TIMEOUT_S,
    max_queue: int = WS_MAX_QUEUE,
    write_limit: int = WS_WRITE_LIMIT,
    limits: ConnectionLimits | None = None,
) -> ChannelServer:
    """Listen on ``host:port`` and run ``await handler(channel)`` for each accepted WebSocket.

    ``process_request`` sees each upgrade request first and may refuse it (e.g. 401). The
    connection is closed (1000) when the handler returns; an exception escaping the handler is
    logged and closes the connection with 1011.

    ``limits`` (:mod:`couchlite.transport._admission`): connections established and pending at
    once, and the bound on the TLS handshake and on receiving the HTTP request (default: no
    count limits, ``open_timeout`` for both). ``open_timeout`` bounds the whole opening
    handshake, ``process_request`` included. A full server answers upgrades with 503 and
    ``Retry-After``.
    """
    if not subprotocols:
        raise InvalidArgumentError("support at least one sub-protocol")
    supported = tuple(subprotocols)
    gate = Gate(limits if limits is not None else ConnectionLimits(handshake_timeout=open_timeout))

    def full(connection: ServerConnection) -> Response:
        gate.answered(cast(Abortable, connection))
        response = connection.respond(503, _FULL_BODY)
        response.headers["Retry-After"] = str(gate.limits.retry_after)
        return response

    def describe(connection: ServerConnection, request: Request) -> HandshakeRequest:
        return HandshakeRequest(
            path=request.path,
            headers=tuple(request.headers.raw_items()),
            remote_address=_format_address(connection.remote_address),
            peer_certificates=_peer_certificates(connection),
        )

    async def on_request(connection: ServerConnection, request: Request) -> Response | None:
        # Refused before any work (authentication included) when full; checked again, and the
        # slot taken, once the upgrade is accepted (others may have taken the last one since).
        if not gate.has_room():
            gate.full += 1
            return full(connection)
        if process_request is not None:
            verdict = process_request(describe(connection, request))
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict is not None:
                gate.answered(cast(Abortable, connection))
                response = connection.respond(verdict.status, verdict.body)
                for name, value in verdict.headers:
                    response.headers[name] = value
                return response
        if not gate.reserve(cast(Abortable, connection)):
            return full(connection)
        return None

    async def on_connection(connection: ServerConnection) -> None:
        gate.opened(cast(Abortable, connection))
        request = connection.request
        channel = WebSocketChannel(
            connection, describe(connection, request) if request is not None else None
        )
        if ping_interval is not None:
            channel.start_heartbeat(ping_interval, ping_timeout)
        code, reason = CLOSE_NORMAL, ""
        try:
            await handler(channel)
        except ChannelClosed:
            pass
        except Exception:
            logger.exception("connection handler for %s failed", channel.remote_address)
            code, reason = CLOSE_UNEXPECTED, "unexpected exception"
        # Close here rather than leave it to websockets: our close() keeps draining incoming
        # messages, so the handshake completes even if the handler had stopped reading.
        await channel.close(code, reason)

    try:
        server = await ws_serve(
            on_connection,
            host,
            port,
            subprotocols=[Subprotocol(s) for s in supported],
            select_subprotocol=_select_subprotocol(supported),
            process_request=on_request,
            server_header=server_header,
            open_timeout=open_timeout,
            # Plain TCP from asyncio: each socket is admitted before its TLS handshake starts.
            create_connection=admitting_connection_class(gate, ssl, close_timeout),
            **_connection_options(close_timeout, max_queue, write_limit),
        )
    except OSError as exc:
        raise listen_error(exc, host, port) from exc
    return ChannelServer(server, gate)


def _peer_certificates(connection: ServerConnection) -> tuple[bytes, ...]:
    """The client's certificate chain (DER, leaf first) on a TLS connection, else ()."""
    ssl_object = connection.transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return ()
    # The listener's SSLObject class records whole chains (couchlite.listener.certauth);
    # plain ones only know the leaf.
    chain_getter = getattr(ssl_object, "peer_certificate_chain", None)
    if callable(chain_getter):
        return tuple(chain_getter())
    leaf = ssl_object.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


__all__ = [
    "ChannelHandler",
    "ChannelServer",
    "ConnectionLimits",
    "HandshakeRefused",
    "HandshakeRejection",
    "HandshakeRequest",
    "RedirectRefused",
    "WebSocketChannel",
    "connect_channel",
    "serve_channels",
]
