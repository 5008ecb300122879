"""What a failed WebSocket connect becomes: the couchlite error a replicator can act on.

The one place where the exceptions of ``websockets``, ``ssl`` and the socket layer met while
opening a connection are translated (:func:`translate_connect_error`). Two mistakes of
configuration get a message saying so, since the exceptions themselves do not:

* ``wss://`` to a plain ``ws://`` server: the server answers the ClientHello with plain HTTP
  (OpenSSL: "wrong version number") -> :class:`TLSError` ``TLS_HANDSHAKE_FAILED``, as LiteCore
  reports any failure of its TLS layer; or it just hangs up (asyncio: a bare
  ``ConnectionResetError()``) -> a transient :class:`NetworkError` ``CONNECTION_RESET``, since
  a busy listener refusing a socket before any TLS work looks the same.
* ``ws://`` to a ``wss://`` server: the server hangs up without an HTTP response ->
  ``NETWORK_RESET`` (transient, as any server hanging up mid-handshake), saying that it may
  be a TLS listener.

Every message names the URL and says something: :func:`couchlite.transport.failures.describe`
stands in for exceptions whose text is empty.
"""

from __future__ import annotations

import urllib.parse

from websockets.exceptions import (
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
)

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
from couchlite.transport._tlserrors import (
    TLS_FAILURE_TEXT,
    peer_is_not_tls,
    ssl_error_in,
    tls_error_code,
)
from couchlite.transport.errors import HandshakeRefused
from couchlite.transport.failures import describe, os_error

#: The WebSocket close code of a protocol error (RFC 6455).
_CLOSE_PROTOCOL_ERROR = 1002


def _server(url: str) -> str:
    """``host:port`` of ``url``, for messages."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "wss" else 80)
    except ValueError:
        return url
    host = parts.hostname or "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_tls_url(url: str) -> bool:
    return url.lower().startswith("wss:")


def _hung_up_during_tls_handshake(exc: BaseException) -> bool:
    # asyncio's TLS layer reports an EOF in the handshake as a ConnectionResetError with
    # neither errno nor text; a real reset from the kernel has ECONNRESET.
    return isinstance(exc, ConnectionResetError) and exc.errno is None and not str(exc)


def _hung_up_before_http_response(exc: InvalidMessage) -> bool:
    return isinstance(exc.__cause__, EOFError)


def translate_connect_error(exc: BaseException, url: str) -> CouchliteError:
    """Map whatever opening ``url`` raised to a couchlite error (see the module docstring)."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status == 401:
            return AuthenticationError(f"{url}: credentials refused (HTTP 401)")
        detail = exc.response.body.decode("utf-8", "replace").strip() if exc.response.body else ""
        return HandshakeRefused(status, detail[:200])
    tls_failure = ssl_error_in(exc)
    if tls_failure is not None:
        # Also when wrapped: in TLS 1.3 the server's verdict on our certificate arrives as an
        # alert after our side of the handshake is done, i.e. while reading the HTTP response.
        code = tls_error_code(tls_failure)
        detail = getattr(tls_failure, "verify_message", None) or describe(tls_failure)
        if code == NetworkCode.TLS_HANDSHAKE_FAILED and peer_is_not_tls(tls_failure):
            return TLSError(
                f"{url}: TLS handshake failed: the server at {_server(url)} does not speak TLS "
                f"(is it a ws:// listener? then use ws://) ({detail})",
                code=code,
            )
        return TLSError(f"{url}: {TLS_FAILURE_TEXT.get(code, 'TLS failure')}: {detail}", code=code)
    if _is_tls_url(url) and _hung_up_during_tls_handshake(exc):
        return NetworkError(
            f"{url}: the server at {_server(url)} closed the connection during the TLS "
            "handshake (is it a ws:// listener? then use ws://; a busy listener does this too)",
            code=NetworkCode.CONNECTION_RESET,
        )
    if isinstance(exc, NegotiationError):
        # The server chose a sub-protocol we never offered (LiteCore: WebSocket/403).
        return ProtocolError(f"{url}: {describe(exc)}", code=403)
    if isinstance(exc, InvalidMessage):
        # Typically the server hung up mid-handshake: a network failure, worth retrying.
        if not _is_tls_url(url) and _hung_up_before_http_response(exc):
            text = (
                f"the server at {_server(url)} closed the connection without answering the "
                "WebSocket upgrade (is it a wss:// listener? then use wss://)"
            )
        else:
            text = f"invalid handshake response: {describe(exc)}"
        return NetworkError(f"{url}: {text}", code=NetworkCode.NETWORK_RESET)
    if isinstance(exc, InvalidHandshake):
        return ProtocolError(
            f"{url}: WebSocket handshake failed: {describe(exc)}", code=_CLOSE_PROTOCOL_ERROR
        )
    if isinstance(exc, InvalidURI):
        return InvalidArgumentError(
            f"invalid URL {url!r}: {describe(exc)}",
            domain=ErrorDomain.NETWORK,
            code=NetworkCode.INVALID_URL,
        )
    if isinstance(exc, TimeoutError) and not exc.errno:
        return NetworkError(f"{url}: timed out opening the connection", code=NetworkCode.TIMEOUT)
    if isinstance(exc, OSError):
        # refused, reset, unreachable, DNS...: classified by the one table (transport.failures)
        return os_error(exc, url)
    return NetworkError(f"{url}: {type(exc).__name__}: {describe(exc)}")


__all__ = ["translate_connect_error"]
