"""Which failures are worth retrying: the one table of transient and permanent errors.

A replicator that loses its peer must tell "try again later" from "stop, a human must act"
(issue "Network resilience", notes §3.6). Every failure the network stack can produce ends up
as a :class:`~couchlite.errors.CouchliteError` with a ``domain`` and a ``code``; whether it is
transient is decided *only* by :data:`RULES`, looked up by :func:`is_transient`:

* **transient** (retried with backoff): connection refused / reset / aborted, timeouts
  (including a heartbeat that got no pong), DNS failures, an unreachable network, HTTP 408, 429,
  502, 503 (also what a stopping listener answers), 504, WebSocket 1001 (going away: a listener
  shutting down, or a peer closing while we still wanted to talk), 1006 (the TCP connection died
  without a close frame), 4001 (application: transient);
* **permanent** (the replicator stops with the error): HTTP 400, 401, 403, 404 and the other
  statuses not listed as transient, WebSocket protocol errors (1002, 1003, 1008, 1009, 1011,
  1015), 4002 (application: permanent), an incompatible sub-protocol, every TLS verification
  failure, invalid URLs.

A (domain, code) pair missing from the table is permanent -- as in LiteCore, whose
``mayBeTransient`` lists the retryable errors and nothing else -- with one exception: a
``Network``-domain error of unknown kind (an ``OSError`` nobody classified) is transient, since
what fails below the WebSocket is the network.

Exceptions become these typed errors at one boundary, :mod:`couchlite.transport.boundary`,
which asks this table whether each is transient.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from couchlite._tuning import LOG_REPEAT_BURST, LOG_REPEAT_INTERVAL_S, WS_PONG_TIMEOUT_S
from couchlite.errors import ErrorDomain, NetworkCode


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: errors of ``domain``/``code`` are transient or not."""

    domain: ErrorDomain
    code: int
    transient: bool
    meaning: str


_N = ErrorDomain.NETWORK
_P = ErrorDomain.POSIX
_W = ErrorDomain.WEBSOCKET

#: The classification (see the module docstring). WebSocket-domain codes below 1000 are HTTP
#: statuses of a refused upgrade; 1000 and above are WebSocket close codes.
RULES: tuple[Rule, ...] = (
    # --- Network domain (what LiteCore's socket layer reports) ---
    Rule(_N, NetworkCode.DNS_FAILURE, True, "DNS lookup failed"),
    Rule(_N, NetworkCode.UNKNOWN_HOST, True, "host not found (the network may be down)"),
    Rule(_N, NetworkCode.TIMEOUT, True, "timed out (connecting, or no pong to a heartbeat)"),
    Rule(_N, NetworkCode.INVALID_URL, False, "invalid URL"),
    Rule(_N, NetworkCode.TLS_HANDSHAKE_FAILED, False, "TLS handshake failed"),
    Rule(_N, NetworkCode.TLS_CERT_EXPIRED, False, "TLS certificate expired"),
    Rule(_N, NetworkCode.TLS_CERT_UNTRUSTED, False, "TLS certificate untrusted"),
    Rule(_N, NetworkCode.TLS_CERT_REQUIRED_BY_PEER, False, "the peer requires a certificate"),
    Rule(_N, NetworkCode.TLS_CERT_REJECTED_BY_PEER, False, "the peer rejected our certificate"),
    Rule(_N, NetworkCode.TLS_CERT_UNKNOWN_ROOT, False, "TLS certificate of an unknown root"),
    Rule(_N, NetworkCode.UNKNOWN, True, "unclassified network failure"),
    Rule(_N, NetworkCode.TLS_CERT_NAME_MISMATCH, False, "TLS certificate for another name"),
    Rule(_N, NetworkCode.NETWORK_RESET, True, "network reset"),
    Rule(_N, NetworkCode.CONNECTION_ABORTED, True, "connection aborted"),
    Rule(_N, NetworkCode.CONNECTION_RESET, True, "connection reset"),
    Rule(_N, NetworkCode.CONNECTION_REFUSED, True, "connection refused"),
    # --- POSIX domain (errno values, as LiteCore reports them) ---
    Rule(_P, errno.ENETRESET, True, "network reset"),
    Rule(_P, errno.ECONNABORTED, True, "connection aborted"),
    Rule(_P, errno.ECONNRESET, True, "connection reset"),
    Rule(_P, errno.ETIMEDOUT, True, "timed out"),
    Rule(_P, errno.ECONNREFUSED, True, "connection refused"),
    Rule(_P, errno.EPIPE, True, "broken pipe (the peer went away)"),
    Rule(_P, errno.ENETDOWN, True, "network down"),
    Rule(_P, errno.ENETUNREACH, True, "network unreachable"),
    Rule(_P, errno.EHOSTDOWN, True, "host down"),
    Rule(_P, errno.EHOSTUNREACH, True, "host unreachable"),
    Rule(_P, errno.EADDRINUSE, False, "address in use (a listener cannot bind)"),
    Rule(_P, errno.EADDRNOTAVAIL, False, "not an address of this machine"),
    Rule(_P, errno.EACCES, False, "permission denied"),
    # --- WebSocket domain: HTTP statuses of a refused upgrade ---
    Rule(_W, 400, False, "bad request (e.g. no common sub-protocol)"),
    Rule(_W, 401, False, "credentials refused"),
    Rule(_W, 403, False, "forbidden"),
    Rule(_W, 404, False, "no such database"),
    Rule(_W, 405, False, "method not allowed"),
    Rule(_W, 408, True, "request timeout"),
    Rule(_W, 409, False, "conflict"),
    Rule(_W, 426, False, "upgrade required"),
    Rule(_W, 429, True, "too many requests"),
    Rule(_W, 500, False, "internal server error"),
    Rule(_W, 501, False, "not implemented"),
    Rule(_W, 502, True, "bad gateway"),
    Rule(_W, 503, True, "service unavailable (e.g. the listener is stopping)"),
    Rule(_W, 504, True, "gateway timeout"),
    # --- WebSocket domain: close codes (notes §3.6) ---
    Rule(_W, 1000, False, "normal closure (not an error for whoever asked for it)"),
    Rule(_W, 1001, True, "going away: the peer is shutting down, or closed under us"),
    Rule(_W, 1002, False, "protocol error"),
    Rule(_W, 1003, False, "unsupported data"),
    Rule(_W, 1006, True, "abnormal closure: the connection died without a close frame"),
    Rule(_W, 1008, False, "policy violation"),
    Rule(_W, 1009, False, "message too big"),
    Rule(_W, 1011, False, "unexpected condition in the peer"),
    Rule(_W, 1015, False, "TLS failure"),
    Rule(_W, 4001, True, "application: transient"),
    Rule(_W, 4002, False, "application: permanent"),
)

_TABLE: dict[tuple[ErrorDomain, int], bool] = {(r.domain, r.code): r.transient for r in RULES}
assert len(_TABLE) == len(RULES), "a (domain, code) pair is listed twice"


def is_transient(domain: ErrorDomain, code: int) -> bool:
    """Whether an error of ``domain``/``code`` may go away if the operation is retried later.

    Pairs missing from :data:`RULES` are permanent (see the module docstring).
    """
    return _TABLE.get((domain, code), False)


def has_rule(domain: ErrorDomain, code: int) -> bool:
    """Whether :data:`RULES` names (``domain``, ``code``), transient or not."""
    return (domain, code) in _TABLE


def transient_codes(domain: ErrorDomain) -> frozenset[int]:
    """The codes of ``domain`` that :data:`RULES` lists as transient."""
    return frozenset(r.code for r in RULES if r.domain is domain and r.transient)


def pong_timeout(heartbeat: float) -> float:
    """How long to wait for the pong of a heartbeat ping: LiteCore's min(20 s, heartbeat - 1 s),
    and never less than half the heartbeat (so a sub-second test heartbeat still works)."""
    return min(WS_PONG_TIMEOUT_S, max(heartbeat - 1.0, heartbeat / 2))


class RateLimitedLog:
    """One kind of repeated log message, rate-limited: what a peer can make us log, and how often.

    A peer may repeat whatever we warn about (a text WebSocket message, a refused request)
    thousands of times a second; logging each would fill disks and drown everything else. In
    each period of ``interval`` seconds the first ``burst`` messages are logged; the rest are
    only counted, and the first message of a later period (or :meth:`flush`, e.g. when the
    connection ends) logs one line saying how many were suppressed. No timer and no I/O of its
    own: usable from any layer, and nearly free when nothing is logged.
    """

    __slots__ = (
        "_burst",
        "_clock",
        "_count",
        "_interval",
        "_last",
        "_level",
        "_logger",
        "_start",
        "suppressed",
    )

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.WARNING,
        *,
        burst: int = LOG_REPEAT_BURST,
        interval: float = LOG_REPEAT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._level = level
        self._burst = burst
        self._interval = interval
        self._clock = clock
        self._start = clock()
        #: messages in the current period, logged or not
        self._count = 0
        #: the latest suppressed message, for the summary line
        self._last: tuple[str, tuple[object, ...]] = ("", ())
        #: messages not logged since the last summary
        self.suppressed = 0

    def log(self, message: str, *args: object, exc_info: bool = False) -> None:
        """Log ``message % args`` (with the current exception's traceback if ``exc_info``),
        unless this period's burst is spent: then only count it."""
        now = self._clock()
        if now - self._start >= self._interval:
            self.flush()
            self._start = now
            self._count = 0
        self._count += 1
        if self._count <= self._burst:
            self._logger.log(self._level, message, *args, exc_info=exc_info)
        elif self._count == self._burst + 1:
            # Say once that silence follows, so that nobody reads it as "it stopped".
            self._logger.log(
                self._level,
                message + " (repeated; more like it are counted, not logged, for %.0f s)",
                *args,
                self._interval - (now - self._start),
            )
        else:
            self.suppressed += 1
            self._last = (message, args)

    def flush(self) -> None:
        """Log the count of suppressed messages, if any; the count restarts from zero."""
        if self.suppressed:
            message, args = self._last
            self._logger.log(
                self._level, message + " (and %d more like it suppressed)", *args, self.suppressed
            )
            self.suppressed = 0


__all__ = [
    "RULES",
    "RateLimitedLog",
    "Rule",
    "has_rule",
    "is_transient",
    "pong_timeout",
    "transient_codes",
]
