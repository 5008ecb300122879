"""Message channels over real WebSockets, using the ``websockets`` library's asyncio API.

This module is the one place where ``websockets``, ``OSError`` and ``ssl`` exceptions become
couchlite errors (``raise ... from exc``); nothing above the transport sees a foreign exception.

What Couchbase Lite expects of the WebSocket layer (cbl-replication-notes.md §1, §3.3-3.6):

* binary messages only, one BLIP frame each; no permessage-deflate (BLIP compresses itself), so
  ``compression=None`` on both sides;
* incoming messages up to 1 MiB (LiteCore's limit), text messages ignored with a warning;
* the server picks the first of the client's offered sub-protocols it supports (LiteCore's
  ``findMatchingSyncProtocol``) and refuses a client that offers none of them with HTTP 400;
* the client insists the server chose one of the sub-protocols it offered;
* pings are answered by ``websockets`` itself, whether or not anyone is calling ``recv``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
)
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from couchlite.errors import (
    AuthenticationError,
    CouchliteError,
    ErrorDomain,
    InvalidArgumentError,
    NetworkCode,
    NetworkError,
    ProtocolError,
    TLSError,
)
from couchlite.transport.channel import (
    CLOSE_ABNORMAL,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNEXPECTED,
    DEFAULT_SUBPROTOCOLS,
    ChannelClosed,
    MessageChannel,
    is_transient_close,
    truncate_close_reason,
)
from couchlite.transport.failures import os_error

logger = logging.getLogger(__name__)

#: LiteCore refuses incoming WebSocket messages over 1 MiB (notes §1). BLIP frames are at most
#: 16 KiB, so anything near this is a broken or hostile peer; the margin tolerates a peer whose
#: own limit counts only the payload it considers "the message".
MAX_INCOMING_MESSAGE = (1 << 20) + 16 * 1024
#: LiteCore's connect timeout (``kConnectTimeoutSecs``, notes §3.2).
DEFAULT_OPEN_TIMEOUT_S = 15.0
#: LiteCore's pong timeout (``kPongTimeout``, notes §3.6).
DEFAULT_PING_TIMEOUT_S = 20.0
#: LiteCore's close-handshake timeout (notes §3.6).
DEFAULT_CLOSE_TIMEOUT_S = 5.0
#: Incoming messages websockets buffers before it stops reading the socket: 16 BLIP frames
#: (at most 256 KiB), enough to keep a 128 KB ACK window busy in both directions.
DEFAULT_MAX_QUEUE = 16
#: Outgoing bytes buffered before ``send`` waits; a few big frames, so the writer never idles
#: while the kernel drains the socket, and memory stays flat when the peer stops reading.
DEFAULT_WRITE_LIMIT = 64 * 1024


class HandshakeRefused(NetworkError):
    """The server answered the WebSocket upgrade with an HTTP error status (``code``)."""

    default_domain = ErrorDomain.WEBSOCKET
    default_code = 400
    default_transient = False

    def __init__(self, status: int, detail: str = "") -> None:
        text = f"WebSocket upgrade refused with HTTP {status}"
        super().__init__(
            f"{text}: {detail}" if detail else text,
            code=status,
            transient=is_transient_close(status),
        )
        self.status = status


@dataclass(frozen=True, slots=True)
class HandshakeRequest:
    """The HTTP upgrade request, as a server-side ``process_request`` hook sees it."""

    path: str
    headers: tuple[tuple[str, str], ...]
    remote_address: str | None
    #: The client's TLS certificate chain (DER, leaf first); () without TLS or certificate.
    peer_certificates: tuple[bytes, ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


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


def _format_address(address: Any) -> str | None:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) if address else None


#: The reason websockets gives when it fails a connection whose ping got no pong in time.
_PING_TIMEOUT = "keepalive ping timeout"


def _closed_error(exc: ConnectionClosed) -> ChannelClosed:
    # The peer's close frame is the interesting one; if none arrived, the one we sent says why
    # we closed; neither means the TCP connection died (1006, "abnormal closure").
    frame = exc.rcvd if exc.rcvd is not None else exc.sent
    if frame is None:
        return ChannelClosed(CLOSE_ABNORMAL, "connection lost")
    if exc.rcvd is None and frame.code == CLOSE_UNEXPECTED and frame.reason == _PING_TIMEOUT:
        # Our heartbeat got no pong: websockets failed the connection with 1011, but for us it
        # is a network timeout -- the peer vanished -- so transient, as in LiteCore (§3.6).
        return ChannelClosed(CLOSE_ABNORMAL, "no answer to the heartbeat (ping timeout)")
    return ChannelClosed(int(frame.code), frame.reason)


class WebSocketChannel:
    """A :class:`MessageChannel` over a ``websockets`` asyncio connection (client or server)."""

    def __init__(
        self,
        connection: ClientConnection | ServerConnection,
        request: HandshakeRequest | None = None,
    ) -> None:
        self._ws = connection
        self._remote = _format_address(connection.remote_address)
        #: The upgrade request (server side only): the listener routes on its path.
        self.request = request
        self._heartbeat: asyncio.Task[None] | None = None

    def start_heartbeat(self, interval: float, pong_timeout: float | None) -> None:
        """Ping the peer every ``interval`` seconds; if a pong (or the connection's end) does
        not come within ``pong_timeout``, drop the TCP connection at once: ``recv``/``send``
        then raise :class:`ChannelClosed` 1006, a transient error (notes §3.6).

        Ours rather than websockets' keepalive, which fails the connection with a close frame
        and then waits ``close_timeout`` more for a peer that is, by then, known to be gone.
        """
        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._beat(interval, pong_timeout), name=f"heartbeat {self._remote}"
            )

    async def _beat(self, interval: float, pong_timeout: float | None) -> None:
        ws = self._ws
        with contextlib.suppress(ConnectionClosed, ConcurrencyError):
            while True:
                try:
                    async with asyncio.timeout(interval):
                        await ws.wait_closed()
                    return  # the connection ended: no more heartbeats
                except TimeoutError:
                    pass
                pong = await ws.ping()
                try:
                    async with asyncio.timeout(pong_timeout):
                        await pong
                except TimeoutError:
                    logger.info(
                        "%s: no answer to the heartbeat within %s s; dropping the connection",
                        self._remote,
                        pong_timeout,
                    )
                    ws.transport.abort()
                    return

    @property
    def subprotocol(self) -> str | None:
        return self._ws.subprotocol

    @property
    def remote_address(self) -> str | None:
        return self._remote

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise _closed_error(exc) from exc

    async def recv(self) -> bytes:
        while True:
            try:
                message = await self._ws.recv()
            except ConnectionClosed as exc:
                raise _closed_error(exc) from exc
            if isinstance(message, bytes):
                return message
            # LiteCore ignores text messages with a warning rather than failing (notes §2.6).
            logger.warning("ignoring a text WebSocket message from %s", self._remote)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        # The peer's closing frame can only be seen if we keep reading: once nobody calls
        # recv(), websockets' receive buffer fills, it stops reading the socket, and the
        # handshake would wait for close_timeout. So discard whatever still arrives meanwhile.
        drain = asyncio.get_running_loop().create_task(self._discard_incoming())
        try:
            # websockets bounds the handshake with close_timeout, then drops the TCP link.
            await self._ws.close(code, truncate_close_reason(reason))
        finally:
            drain.cancel()
            tasks = [drain]
            if self._heartbeat is not None:
                self._heartbeat.cancel()
                tasks.append(self._heartbeat)
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _discard_incoming(self) -> None:
        # ConcurrencyError: someone else is still reading, and that read drains the buffer.
        with contextlib.suppress(ConnectionClosed, ConcurrencyError):
            while True:
                await self._ws.recv()

    def __repr__(self) -> str:
        return f"<WebSocketChannel {self._remote} {self.subprotocol}>"


def _headers_list(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


#: OpenSSL's X509_V_ERR_* codes (``SSLCertVerificationError.verify_code``) -> Network codes.
_VERIFY_CODES = {
    2: NetworkCode.TLS_CERT_UNKNOWN_ROOT,  # unable to get issuer certificate
    9: NetworkCode.TLS_CERT_EXPIRED,  # certificate is not yet valid
    10: NetworkCode.TLS_CERT_EXPIRED,  # certificate has expired
    18: NetworkCode.TLS_CERT_UNTRUSTED,  # self-signed certificate (not pinned)
    19: NetworkCode.TLS_CERT_UNKNOWN_ROOT,  # self-signed certificate in chain
    20: NetworkCode.TLS_CERT_UNKNOWN_ROOT,  # unable to get local issuer certificate
    62: NetworkCode.TLS_CERT_NAME_MISMATCH,  # host name mismatch
    64: NetworkCode.TLS_CERT_NAME_MISMATCH,  # IP address mismatch
}
#: Alerts the server sends about *our* certificate (``SSLError.reason``, OpenSSL's names).
_CERT_REQUIRED_ALERTS = frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED"})
_CERT_REJECTED_ALERTS = frozenset(
    {
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)
_TLS_FAILURE_TEXT = {
    NetworkCode.TLS_CERT_EXPIRED: "the server certificate has expired or is not yet valid",
    NetworkCode.TLS_CERT_UNTRUSTED: "the server certificate is not trusted",
    NetworkCode.TLS_CERT_UNKNOWN_ROOT: "the server certificate chains to an unknown root",
    NetworkCode.TLS_CERT_NAME_MISMATCH: "the server certificate does not match the host name",
    NetworkCode.TLS_CERT_REQUIRED_BY_PEER: "the server requires a client certificate",
    NetworkCode.TLS_CERT_REJECTED_BY_PEER: "the server rejected the client certificate",
    NetworkCode.TLS_HANDSHAKE_FAILED: "TLS handshake failed",
}


def tls_error_code(exc: ssl_module.SSLError) -> int:
    """The Network-domain code (notes §11.2) saying which TLS rule ``exc`` broke."""
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        # Our own refusals (pinned, self-signed-only) may lack verify_code on some Pythons.
        verify_code = getattr(exc, "verify_code", None)
        return _VERIFY_CODES.get(verify_code or 0, NetworkCode.TLS_CERT_UNTRUSTED)
    reason = str(getattr(exc, "reason", None) or "").upper()
    text = str(exc).lower()
    if reason in _CERT_REQUIRED_ALERTS or "alert certificate required" in text:
        return NetworkCode.TLS_CERT_REQUIRED_BY_PEER
    if reason in _CERT_REJECTED_ALERTS or any(
        f"alert {name}" in text
        for name in ("bad certificate", "unknown ca", "certificate unknown", "access denied")
    ):
        return NetworkCode.TLS_CERT_REJECTED_BY_PEER
    return NetworkCode.TLS_HANDSHAKE_FAILED


def _ssl_error_in(exc: BaseException) -> ssl_module.SSLError | None:
    """``exc`` itself or the first ``ssl.SSLError`` it was raised from (bounded walk)."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return None
        if isinstance(current, ssl_module.SSLError):
            return current
        current = current.__cause__ or current.__context__
    return None


def _translate_connect_error(exc: BaseException, url: str) -> CouchliteError:
    """Map whatever ``connect`` raised to the couchlite error a replicator can act on."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status == 401:
            return AuthenticationError(f"{url}: credentials refused (HTTP 401)")
        detail = exc.response.body.decode("utf-8", "replace").strip() if exc.response.body else ""
        return HandshakeRefused(status, detail[:200])
    tls_failure = _ssl_error_in(exc)
    if tls_failure is not None:
        # Also when wrapped: in TLS 1.3 the server's verdict on our certificate arrives as an
        # alert after our side of the handshake is done, i.e. while reading the HTTP response.
        code = tls_error_code(tls_failure)
        detail = getattr(tls_failure, "verify_message", None) or str(tls_failure)
        return TLSError(f"{url}: {_TLS_FAILURE_TEXT.get(code, 'TLS failure')}: {detail}", code=code)
    if isinstance(exc, NegotiationError):
        # The server chose a sub-protocol we never offered (LiteCore: WebSocket/403).
        return ProtocolError(f"{url}: {exc}", code=403)
    if isinstance(exc, InvalidMessage):
        # Typically the server hung up mid-handshake: a network failure, worth retrying.
        return NetworkError(
            f"{url}: invalid handshake response: {exc}", code=NetworkCode.NETWORK_RESET
        )
    if isinstance(exc, InvalidHandshake):
        return ProtocolError(f"{url}: WebSocket handshake failed: {exc}", code=CLOSE_PROTOCOL_ERROR)
    if isinstance(exc, InvalidURI):
        return InvalidArgumentError(
            f"invalid URL {url!r}: {exc}", domain=ErrorDomain.NETWORK, code=NetworkCode.INVALID_URL
        )
    if isinstance(exc, TimeoutError) and not exc.errno:
        return NetworkError(f"{url}: timed out opening the connection", code=NetworkCode.TIMEOUT)
    if isinstance(exc, OSError):
        # refused, reset, unreachable, DNS...: classified by the one table (transport.failures)
        return os_error(exc, url)
    return NetworkError(f"{url}: {exc}")


def _connection_options(close_timeout: float, max_queue: int, write_limit: int) -> dict[str, Any]:
    """What client and server connections share: no WebSocket compression (BLIP compresses),
    no websockets keepalive (our own heartbeat: ``WebSocketChannel.start_heartbeat``), and
    LiteCore's incoming message limit."""
    return {
        "compression": None,
        "ping_interval": None,
        "ping_timeout": None,
        "close_timeout": close_timeout,
        "max_size": MAX_INCOMING_MESSAGE,
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
    open_timeout: float = DEFAULT_OPEN_TIMEOUT_S,
    ping_interval: float | None = None,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT_S,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT_S,
    max_queue: int = DEFAULT_MAX_QUEUE,
    write_limit: int = DEFAULT_WRITE_LIMIT,
) -> WebSocketChannel:
    """Open a WebSocket to ``url`` (``ws://`` or ``wss://``) and negotiate a BLIP sub-protocol.

    Raises :class:`AuthenticationError` on HTTP 401, :class:`HandshakeRefused` (a
    :class:`NetworkError` whose ``code`` is the HTTP status) on other refusals,
    :class:`ProtocolError` when the server picked none of ``subprotocols``, :class:`TLSError`
    for certificate problems and :class:`NetworkError` (``code`` from :class:`NetworkCode`, e.g.
    ``CONNECTION_REFUSED``, transient) when the network fails.
    """
    if not subprotocols:
        raise InvalidArgumentError("offer at least one sub-protocol")
    kwargs: dict[str, Any] = {}
    if ssl is not None:
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

    if ssl is not None:
        kwargs["create_connection"] = _ClientConnection
    try:
        ws = await ws_connect(
            url,
            subprotocols=[Subprotocol(s) for s in subprotocols],
            additional_headers=_headers_list(headers),
            user_agent_header=user_agent if user_agent is not None else "couchlite",
            # A replicator connects where it is told; environment proxies would surprise it.
            proxy=None,
            open_timeout=open_timeout,
            **_connection_options(close_timeout, max_queue, write_limit),
            **kwargs,
        )
    except (InvalidHandshake, InvalidURI, OSError, TimeoutError) as exc:
        tls_failure = next((e for e in lost if isinstance(e, ssl_module.SSLError)), None)
        if tls_failure is not None and _ssl_error_in(exc) is None:
            raise _translate_connect_error(tls_failure, url) from exc
        raise _translate_connect_error(exc, url) from exc
    if ws.subprotocol is None or ws.subprotocol not in subprotocols:
        # websockets accepts a server that names no sub-protocol; LiteCore does not (§3.3).
        await ws.close(CLOSE_PROTOCOL_ERROR, "no sub-protocol")
        raise ProtocolError(
            f"{url}: incompatible replication protocol (the server did not accept any of "
            f"{', '.join(subprotocols)})",
            code=CLOSE_PROTOCOL_ERROR,
        )
    channel = WebSocketChannel(ws)
    if ping_interval is not None:
        channel.start_heartbeat(ping_interval, ping_timeout)
    return channel


class ChannelServer:
    """A listening WebSocket server handing each accepted connection to a channel handler.

    Closing it closes the open connections (1001, going away) and waits for their handlers.
    """

    def __init__(self, server: Server) -> None:
        self._server = server

    @property
    def port(self) -> int:
        """The TCP port listened on (useful after binding port 0)."""
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every ``(host, port)`` listened on."""
        return [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in self._server.sockets]

    async def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT_S * 2) -> None:
        """Stop listening, close every connection, wait (bounded) for the handlers to return."""
        self._server.close()
        try:
            async with asyncio.timeout(timeout):
                await self._server.wait_closed()
        except TimeoutError:
            logger.warning("channel server: handlers still running after %.1f s", timeout)

    async def __aenter__(self) -> ChannelServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


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
    open_timeout: float = DEFAULT_OPEN_TIMEOUT_S,
    ping_interval: float | None = None,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT_S,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT_S,
    max_queue: int = DEFAULT_MAX_QUEUE,
    write_limit: int = DEFAULT_WRITE_LIMIT,
) -> ChannelServer:
    """Listen on ``host:port`` and run ``await handler(channel)`` for each accepted WebSocket.

    ``process_request`` sees each upgrade request first and may refuse it (e.g. 401). The
    connection is closed (1000) when the handler returns; an exception escaping the handler is
    logged and closes the connection with 1011.
    """
    if not subprotocols:
        raise InvalidArgumentError("support at least one sub-protocol")
    supported = tuple(subprotocols)

    def describe(connection: ServerConnection, request: Request) -> HandshakeRequest:
        return HandshakeRequest(
            path=request.path,
            headers=tuple(request.headers.raw_items()),
            remote_address=_format_address(connection.remote_address),
            peer_certificates=_peer_certificates(connection),
        )

    async def on_request(connection: ServerConnection, request: Request) -> Response | None:
        if process_request is None:
            return None
        verdict = process_request(describe(connection, request))
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict is None:
            return None
        response = connection.respond(verdict.status, verdict.body)
        for name, value in verdict.headers:
            response.headers[name] = value
        return response

    async def on_connection(connection: ServerConnection) -> None:
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

    kwargs: dict[str, Any] = {}
    if ssl is not None:
        kwargs["ssl"] = ssl
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
            **_connection_options(close_timeout, max_queue, write_limit),
            **kwargs,
        )
    except OSError as exc:
        raise NetworkError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return ChannelServer(server)


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


def _conforms(channel: WebSocketChannel) -> MessageChannel:
    # MessageChannel is structural: this fails type checking if WebSocketChannel drifts from it.
    return channel


__all__ = [
    "DEFAULT_CLOSE_TIMEOUT_S",
    "DEFAULT_OPEN_TIMEOUT_S",
    "MAX_INCOMING_MESSAGE",
    "ChannelHandler",
    "ChannelServer",
    "HandshakeRefused",
    "HandshakeRejection",
    "HandshakeRequest",
    "WebSocketChannel",
    "connect_channel",
    "serve_channels",
    "tls_error_code",
]
