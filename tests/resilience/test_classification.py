"""Every failure maps to a typed error, transient or permanent, by one table (issue 6, item 1)."""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import (
    ConnectionClosedError,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
)
from websockets.frames import Close
from websockets.http11 import Response

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
from couchlite.listener import handshake
from couchlite.transport.boundary import classify, os_error
from couchlite.transport.boundary import closed_error as _closed_error
from couchlite.transport.boundary import translate_connect_error as _translate_connect_error
from couchlite.transport.channel import TRANSIENT_WEBSOCKET_CODES, ChannelClosed
from couchlite.transport.failures import RULES, is_transient, pong_timeout, transient_codes
from couchlite.transport.websocket import HandshakeRefused

URL = "ws://127.0.0.1:1/db/_blipsync"

#: What the issue lists, verbatim: these must be transient...
ISSUE_TRANSIENT = [
    (ErrorDomain.NETWORK, NetworkCode.CONNECTION_REFUSED),
    (ErrorDomain.NETWORK, NetworkCode.CONNECTION_RESET),
    (ErrorDomain.NETWORK, NetworkCode.TIMEOUT),
    (ErrorDomain.NETWORK, NetworkCode.DNS_FAILURE),
    (ErrorDomain.WEBSOCKET, 408),
    (ErrorDomain.WEBSOCKET, 429),
    (ErrorDomain.WEBSOCKET, 502),
    (ErrorDomain.WEBSOCKET, 503),
    (ErrorDomain.WEBSOCKET, 504),
    (ErrorDomain.WEBSOCKET, 1001),
    (ErrorDomain.WEBSOCKET, 1006),
    (ErrorDomain.WEBSOCKET, 4001),
]
#: ... and these permanent.
ISSUE_PERMANENT = [
    (ErrorDomain.WEBSOCKET, 401),
    (ErrorDomain.WEBSOCKET, 403),
    (ErrorDomain.WEBSOCKET, 404),
    (ErrorDomain.WEBSOCKET, 1002),  # incompatible protocol
    (ErrorDomain.WEBSOCKET, 4002),
    (ErrorDomain.NETWORK, NetworkCode.TLS_HANDSHAKE_FAILED),
    (ErrorDomain.NETWORK, NetworkCode.TLS_CERT_EXPIRED),
    (ErrorDomain.NETWORK, NetworkCode.TLS_CERT_UNTRUSTED),
    (ErrorDomain.NETWORK, NetworkCode.TLS_CERT_UNKNOWN_ROOT),
    (ErrorDomain.NETWORK, NetworkCode.TLS_CERT_NAME_MISMATCH),
    (ErrorDomain.NETWORK, NetworkCode.TLS_CERT_REJECTED_BY_PEER),
]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.domain}-{r.code}")
def test_every_rule_is_what_is_transient_says(rule: Any) -> None:
    assert is_transient(rule.domain, rule.code) is rule.transient
    assert rule.meaning


@pytest.mark.parametrize("pair", ISSUE_TRANSIENT, ids=str)
def test_issue_transient_list(pair: tuple[ErrorDomain, int]) -> None:
    assert is_transient(*pair)


@pytest.mark.parametrize("pair", ISSUE_PERMANENT, ids=str)
def test_issue_permanent_list(pair: tuple[ErrorDomain, int]) -> None:
    assert not is_transient(*pair)


def test_every_network_code_and_close_code_is_classified() -> None:
    listed = {(r.domain, r.code) for r in RULES}
    codes = [v for k, v in vars(NetworkCode).items() if k.isupper()]
    assert {(ErrorDomain.NETWORK, c) for c in codes} <= listed
    close_codes = [1000, 1001, 1002, 1003, 1006, 1008, 1009, 1011, 1015, 4001, 4002]
    assert {(ErrorDomain.WEBSOCKET, c) for c in close_codes} <= listed


def test_unlisted_pairs_are_permanent() -> None:
    assert not is_transient(ErrorDomain.WEBSOCKET, 418)
    assert not is_transient(ErrorDomain.BLIP, 503)  # same number, other domain
    assert not is_transient(ErrorDomain.LITECORE, 10)


def test_channel_codes_come_from_the_table() -> None:
    assert transient_codes(ErrorDomain.WEBSOCKET) == TRANSIENT_WEBSOCKET_CODES
    for code in (1000, 1001, 1002, 1006, 1011, 4001, 4002, 503):
        assert ChannelClosed(code).is_transient is is_transient(ErrorDomain.WEBSOCKET, code)


def test_a_stopping_listener_is_transient_for_its_peers() -> None:
    # stop() closes connections with 1001 and refuses new upgrades with SHUTTING_DOWN
    assert ChannelClosed(1001, "listener stopped").is_transient
    assert HandshakeRefused(handshake.SHUTTING_DOWN.status).is_transient


# --- socket-level failures -------------------------------------------------------------------

OS_CASES = [
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), ErrorDomain.NETWORK,
     NetworkCode.CONNECTION_REFUSED, True),
    (ConnectionResetError(errno.ECONNRESET, "reset"), ErrorDomain.NETWORK,
     NetworkCode.CONNECTION_RESET, True),
    (ConnectionAbortedError(errno.ECONNABORTED, "aborted"), ErrorDomain.NETWORK,
     NetworkCode.CONNECTION_ABORTED, True),
    (OSError(errno.ENETRESET, "net reset"), ErrorDomain.NETWORK, NetworkCode.NETWORK_RESET, True),
    (OSError(errno.ETIMEDOUT, "timed out"), ErrorDomain.NETWORK, NetworkCode.TIMEOUT, True),
    (TimeoutError(), ErrorDomain.NETWORK, NetworkCode.TIMEOUT, True),
    (socket.gaierror(socket.EAI_AGAIN, "again"), ErrorDomain.NETWORK, NetworkCode.DNS_FAILURE,
     True),
    (socket.gaierror(socket.EAI_NONAME, "unknown"), ErrorDomain.NETWORK,
     NetworkCode.UNKNOWN_HOST, True),
    (OSError(errno.ENETUNREACH, "unreachable"), ErrorDomain.POSIX, errno.ENETUNREACH, True),
    (OSError(errno.EHOSTUNREACH, "unreachable"), ErrorDomain.POSIX, errno.EHOSTUNREACH, True),
    (OSError(errno.ENETDOWN, "down"), ErrorDomain.POSIX, errno.ENETDOWN, True),
    (BrokenPipeError(errno.EPIPE, "pipe"), ErrorDomain.POSIX, errno.EPIPE, True),
    (OSError(errno.EADDRINUSE, "in use"), ErrorDomain.POSIX, errno.EADDRINUSE, False),
    (OSError(errno.EACCES, "denied"), ErrorDomain.POSIX, errno.EACCES, False),
    (OSError(errno.EIO, "odd"), ErrorDomain.NETWORK, NetworkCode.UNKNOWN, True),
    (OSError("no errno"), ErrorDomain.NETWORK, NetworkCode.UNKNOWN, True),
]  # fmt: skip


@pytest.mark.parametrize("case", OS_CASES, ids=lambda c: repr(c[0]))
def test_os_errors(case: tuple[OSError, ErrorDomain, int, bool]) -> None:
    exc, domain, code, transient = case
    for error in (os_error(exc, URL), classify(exc, URL), _translate_connect_error(exc, URL)):
        assert isinstance(error, NetworkError)
        assert (error.domain, error.code, error.is_transient) == (domain, code, transient)
        assert error.is_transient is is_transient(error.domain, error.code)


def test_classify_passes_couchlite_errors_and_wraps_the_rest() -> None:
    error = AuthenticationError("no")
    assert classify(error) is error
    other = classify(RuntimeError("bug"))
    assert type(other) is CouchliteError and not other.is_transient


# --- what connect_channel raises ---------------------------------------------------------------


def _status(code: int, body: bytes = b"") -> InvalidStatus:
    return InvalidStatus(Response(code, "x", Headers(), body))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 429, 500, 502, 503, 504])
def test_refused_upgrades(status: int) -> None:
    error = _translate_connect_error(_status(status, b"why"), URL)
    assert error.domain is ErrorDomain.WEBSOCKET and error.code == status
    assert error.is_transient is is_transient(ErrorDomain.WEBSOCKET, status)
    assert isinstance(error, AuthenticationError if status == 401 else HandshakeRefused)


def test_handshake_failures() -> None:
    negotiation = _translate_connect_error(NegotiationError("no sub-protocol"), URL)
    assert isinstance(negotiation, ProtocolError) and not negotiation.is_transient
    hung_up = _translate_connect_error(InvalidMessage("server hung up"), URL)
    assert isinstance(hung_up, NetworkError) and hung_up.is_transient
    bad_url = _translate_connect_error(InvalidURI("nope", "bad"), URL)
    assert isinstance(bad_url, InvalidArgumentError) and not bad_url.is_transient


def test_tls_failures_are_permanent() -> None:
    verify = ssl.SSLCertVerificationError("certificate verify failed")
    verify.verify_code = 10
    verify.verify_message = "certificate has expired"
    expired = _translate_connect_error(verify, URL)
    assert isinstance(expired, TLSError) and expired.code == NetworkCode.TLS_CERT_EXPIRED
    handshake_error = _translate_connect_error(ssl.SSLError("handshake"), URL)
    assert isinstance(handshake_error, TLSError)
    for error in (expired, handshake_error):
        assert not error.is_transient
        assert error.is_transient is is_transient(error.domain, error.code)


# --- how an open connection ended ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rcvd", "sent", "code", "transient"),
    [
        (None, None, 1006, True),  # TCP died: reset, killed peer
        (Close(1001, "listener stopped"), None, 1001, True),
        (Close(1000, ""), Close(1000, ""), 1000, False),
        (Close(4001, "later"), None, 4001, True),
        (Close(4002, "never"), None, 4002, False),
        (Close(1002, "protocol"), None, 1002, False),
        (None, Close(1011, "keepalive ping timeout"), 1006, True),  # heartbeat: no pong
        (None, Close(1011, "something else"), 1011, False),
        (None, Close(1009, "too big"), 1009, False),
    ],
)
def test_closed_connections(
    rcvd: Close | None, sent: Close | None, code: int, transient: bool
) -> None:
    both = rcvd is not None and sent is not None
    error = _closed_error(ConnectionClosedError(rcvd, sent, True if both else None))
    assert isinstance(error, ChannelClosed)
    assert (error.code, error.is_transient) == (code, transient)


def test_pong_timeout() -> None:
    assert pong_timeout(300.0) == 20.0  # LiteCore: min(20 s, heartbeat - 1 s)
    assert pong_timeout(10.0) == 9.0
    assert pong_timeout(0.5) == 0.25  # sub-second test heartbeats still get a positive bound


# --- errors the peer answers with (BLIP ERR replies) ---------------------------------------------


@pytest.mark.parametrize(
    ("domain", "code"),
    [("HTTP", s) for s in (400, 401, 403, 404, 408, 409, 429, 500, 502, 503, 504)]
    + [("Network", NetworkCode.TIMEOUT), ("Network", NetworkCode.TLS_CERT_UNTRUSTED)]
    + [("LiteCore", 10), ("BLIP", 404), ("Elsewhere", 1)],
)
def test_remote_errors_follow_the_table(domain: str, code: int) -> None:
    from couchlite.blip import BlipErrorReply
    from couchlite.replicator.error_mapping import remote_error

    error = remote_error(BlipErrorReply(domain, code, "from the peer"))
    assert error.is_transient is is_transient(error.domain, error.code)
    if domain == "HTTP":
        assert error.domain is ErrorDomain.WEBSOCKET and error.code == code
