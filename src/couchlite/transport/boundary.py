"""The one boundary where foreign exceptions become couchlite errors.

Nothing above the transport sees a foreign exception: whatever the socket layer, ``ssl``,
``websockets`` or asyncio raise is translated here, once, into a
:class:`~couchlite.errors.CouchliteError` with a ``domain``, a ``code`` and, for network
failures, whether retrying may help (decided only by :data:`couchlite.transport.failures.RULES`).

* :func:`os_error`, :func:`classify` and :func:`listen_error`: ``OSError`` and its subclasses,
  ``TimeoutError``, ``socket.gaierror`` (DNS)... -> :class:`NetworkError`; anything else that
  is not a couchlite error -> a permanent unexpected :class:`CouchliteError`;
* :func:`translate_connect_error`: what opening a WebSocket raised (``websockets``' handshake
  exceptions, ``ssl`` verification failures and alerts, the socket layer) -> the error a
  replicator acts on. Two mistakes of configuration get a message saying so, since the
  exceptions themselves do not: ``wss://`` to a plain ``ws://`` server (OpenSSL: "wrong version
  number" -> :class:`TLSError` ``TLS_HANDSHAKE_FAILED``, as LiteCore reports any failure of its
  TLS layer; or a bare hang-up -> a transient ``CONNECTION_RESET``, since a busy listener
  refusing a socket before any TLS work looks the same), and ``ws://`` to a ``wss://`` server
  (a hang-up without an HTTP response -> ``NETWORK_RESET``, saying it may be a TLS listener);
* :func:`tls_error_code`: which TLS rule a failed handshake broke (notes §11.2);
* :func:`closed_error`: ``websockets``' ``ConnectionClosed`` -> :class:`ChannelClosed`;
* :func:`unexpected`: a bug in our own code, ending a connection.

Every message says something: :func:`describe` stands in for exceptions whose text is empty.
"""

from __future__ import annotations

import errno
import socket
import ssl as ssl_module
import urllib.parse

from websockets.exceptions import (
    ConnectionClosed,
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
from couchlite.transport.channel import CLOSE_ABNORMAL, CLOSE_UNEXPECTED
from couchlite.transport.errors import ChannelClosed, HandshakeRefused
from couchlite.transport.failures import has_rule, is_transient

_N = ErrorDomain.NETWORK
_P = ErrorDomain.POSIX

# --- the socket layer ---------------------------------------------------------------------------

#: ``errno`` values and the Network-domain code LiteCore reports them as.
_ERRNO_CODES: dict[int, int] = {
    errno.ECONNREFUSED: NetworkCode.CONNECTION_REFUSED,
    errno.ECONNRESET: NetworkCode.CONNECTION_RESET,
    errno.ECONNABORTED: NetworkCode.CONNECTION_ABORTED,
    errno.ENETRESET: NetworkCode.NETWORK_RESET,
    errno.ETIMEDOUT: NetworkCode.TIMEOUT,
}


def describe(exc: BaseException) -> str:
    """A non-empty description of ``exc`` for an error message.

    Some exceptions say nothing (asyncio raises a bare ``ConnectionResetError()`` when a peer
    hangs up during a TLS handshake): then the class name stands in, followed by the first
    cause or context that does say something, so that no couchlite error ends in ``": "``.
    """
    strerror = exc.strerror if isinstance(exc, OSError) else None
    text = (strerror if isinstance(strerror, str) else "").strip() or str(exc).strip()
    text = text.rstrip(":").strip()  # e.g. "x: " when the detail after the colon is missing
    if text:
        return text
    name = type(exc).__name__
    current = exc.__cause__ or exc.__context__
    for _ in range(8):  # bounded walk down the chain
        if current is None:
            break
        inner = str(current).strip()
        if inner:
            return f"{name} ({type(current).__name__}: {inner})"
        current = current.__cause__ or current.__context__
    return name


def os_error(exc: OSError | TimeoutError, where: str) -> NetworkError:
    """The typed error for a socket-level failure (``where``: the URL or peer, for the text).

    ``TimeoutError`` -> Network/Timeout; ``socket.gaierror`` -> Network/DNS failure (a
    temporary one, ``EAI_AGAIN``) or Network/Unknown host; the connection errnos LiteCore
    names -> their Network codes; any other errno with a rule -> POSIX/errno; the rest ->
    Network/Unknown. Transience comes from :data:`RULES`.
    """
    if isinstance(exc, socket.gaierror):
        code = (
            NetworkCode.DNS_FAILURE if exc.errno == socket.EAI_AGAIN else NetworkCode.UNKNOWN_HOST
        )
        return _network_error(f"{where}: {describe(exc)}", _N, code)
    if isinstance(exc, TimeoutError) and exc.errno in (None, 0, errno.ETIMEDOUT):
        return _network_error(f"{where}: timed out", _N, NetworkCode.TIMEOUT)
    number = exc.errno or 0
    text = f"{where}: {describe(exc)}"
    if number in _ERRNO_CODES:
        return _network_error(text, _N, _ERRNO_CODES[number])
    if has_rule(_P, number):
        return _network_error(text, _P, number)
    return _network_error(text, _N, NetworkCode.UNKNOWN)


def _network_error(text: str, domain: ErrorDomain, code: int) -> NetworkError:
    return NetworkError(text, domain=domain, code=code, transient=is_transient(domain, code))


def listen_error(exc: OSError, host: str, port: int) -> NetworkError:
    """The error for a server socket that cannot be bound (address in use, not ours...)."""
    return NetworkError(f"cannot listen on {host}:{port}: {describe(exc)}")


def classify(exc: BaseException, where: str = "connection") -> CouchliteError:
    """The typed couchlite error for any failure: couchlite errors as they are, socket
    failures by :func:`os_error`, anything else a permanent unexpected error."""
    if isinstance(exc, CouchliteError):
        return exc
    if isinstance(exc, OSError | TimeoutError):
        return os_error(exc, where)
    return CouchliteError(f"{where}: unexpected error: {type(exc).__name__}: {describe(exc)}")


# --- TLS ---------------------------------------------------------------------------------------

#: OpenSSL's X509_V_ERR_* codes (``SSLCertVerificationError.verify_code``) -> Network codes.
VERIFY_CODES = {
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
CERT_REQUIRED_ALERTS = frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED"})
CERT_REJECTED_ALERTS = frozenset(
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
#: OpenSSL's reasons when what came back is not TLS at all: typically a plain HTTP answer (a
#: ``ws://`` server replying ``400`` to our ClientHello). LiteCore reports every such failure of
#: its TLS layer as Network/TLSHandshakeFailed; so do we, saying what it most likely means.
NOT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "PACKET_LENGTH_TOO_LONG",
        "UNKNOWN_PROTOCOL",
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
    }
)
TLS_FAILURE_TEXT = {
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
        return VERIFY_CODES.get(verify_code or 0, NetworkCode.TLS_CERT_UNTRUSTED)
    reason = str(getattr(exc, "reason", None) or "").upper()
    text = str(exc).lower()
    if reason in CERT_REQUIRED_ALERTS or "alert certificate required" in text:
        return NetworkCode.TLS_CERT_REQUIRED_BY_PEER
    if reason in CERT_REJECTED_ALERTS or any(
        f"alert {name}" in text
        for name in ("bad certificate", "unknown ca", "certificate unknown", "access denied")
    ):
        return NetworkCode.TLS_CERT_REJECTED_BY_PEER
    return NetworkCode.TLS_HANDSHAKE_FAILED


def peer_is_not_tls(exc: ssl_module.SSLError) -> bool:
    """Whether ``exc`` says that the peer's bytes were not TLS records (see NOT_TLS_REASONS)."""
    reason = str(getattr(exc, "reason", None) or "").upper()
    return reason in NOT_TLS_REASONS or "wrong version number" in str(exc).lower()


def ssl_error_in(exc: BaseException) -> ssl_module.SSLError | None:
    """``exc`` itself or the first ``ssl.SSLError`` it was raised from (bounded walk)."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return None
        if isinstance(current, ssl_module.SSLError):
            return current
        current = current.__cause__ or current.__context__
    return None


# --- opening a WebSocket -------------------------------------------------------------------------

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


# --- an open WebSocket, our own failures -------------------------------------------------------

#: The reason websockets gives when it fails a connection whose ping got no pong in time.
_PING_TIMEOUT = "keepalive ping timeout"


def closed_error(exc: ConnectionClosed) -> ChannelClosed:
    """The :class:`ChannelClosed` for a ``websockets`` connection that ended with ``exc``."""
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


def unexpected(exc: Exception, name: str) -> CouchliteError:
    """The error a connection named ``name`` ends with when its own code raised ``exc``."""
    if isinstance(exc, CouchliteError):
        return exc
    error = CouchliteError(f"{name}: unexpected {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


__all__ = [
    "TLS_FAILURE_TEXT",
    "classify",
    "closed_error",
    "describe",
    "listen_error",
    "os_error",
    "peer_is_not_tls",
    "ssl_error_in",
    "tls_error_code",
    "translate_connect_error",
    "unexpected",
]
