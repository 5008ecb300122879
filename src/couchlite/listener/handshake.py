"""The listener's HTTP decisions on an upgrade request: authentication, then routing.

Theory of operation
-------------------
Each incoming HTTP request passes through :func:`authenticate` and then :func:`route`, in that
order (LiteCore authenticates before routing, notes §3.5); the first one to object produces the
:class:`HandshakeRejection` sent back instead of ``101``. Requests that pass both go on to
``websockets``, which checks the WebSocket headers and negotiates the sub-protocol (refusing
with 400 a client that offers none we speak).

Refusals mirror Couchbase Lite's listener (notes §3.5, §11.3):

======================================================  ============================================
missing, malformed or rejected ``Authorization: Basic``  ``401``, ``WWW-Authenticate: Basic
                                                         charset="UTF-8"``, empty body
``/<other db>/_blipsync``                                ``404 No such database``
``/<db>/_blipsync`` without a WebSocket upgrade          ``403 No upgrade available``
any other path                                           ``404 Not found``
======================================================  ============================================

With a :class:`ListenerCertificateAuthenticator` the client's certificate chain is checked
instead (``certauth.py``): a refused one gets ``401 Client certificate rejected``.

Checks run in the listener's own bounded executor (:mod:`couchlite.listener.throttle`): when
all its slots are taken the answer is ``503 Authentication busy`` with ``Retry-After`` (as is a
check that takes longer than :data:`AUTH_TIMEOUT_S`), and an address whose credentials were
refused recently waits a growing delay before its next check. A request without credentials
is answered at once (the challenge above) and counts as no failure: that is how clients ask
which scheme to use.

Credentials never reach the logs: only the user name is logged, never the password or the
header.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import logging
from dataclasses import dataclass, field
from urllib.parse import unquote

from couchlite._tuning import AUTH_TIMEOUT_S, LISTENER_RETRY_AFTER_S
from couchlite.listener import certauth
from couchlite.listener.config import (
    ListenerAuthenticator,
    ListenerCertificateAuthenticator,
    ListenerPasswordAuthenticator,
)
from couchlite.listener.throttle import Busy, CheckRunner, FailureDelays, address_key
from couchlite.transport.failures import RateLimitedLog
from couchlite.transport.websocket import HandshakeRejection, HandshakeRequest

logger = logging.getLogger(__name__)

#: LiteCore's challenge (notes §3.5); the client retries once with credentials if it has any.
WWW_AUTHENTICATE = 'Basic charset="UTF-8"'
_RETRY_AFTER = (("Retry-After", str(LISTENER_RETRY_AFTER_S)),)

UNAUTHORIZED = HandshakeRejection(401, "", (("WWW-Authenticate", WWW_AUTHENTICATE),))
NO_SUCH_DATABASE = HandshakeRejection(404, "No such database")
NOT_FOUND = HandshakeRejection(404, "Not found")
NO_UPGRADE = HandshakeRejection(403, "No upgrade available")
AUTH_TIMED_OUT = HandshakeRejection(503, "Authentication timed out", _RETRY_AFTER)
AUTH_BUSY = HandshakeRejection(503, "Authentication busy", _RETRY_AFTER)
SHUTTING_DOWN = HandshakeRejection(503, "Listener is stopping")


@dataclass
class AuthGuard:
    """One listener's bounds on authentication work (see :mod:`couchlite.listener.throttle`),
    and its rate-limited logs of refusals: a flood of bad credentials logs a few lines."""

    runner: CheckRunner = field(default_factory=CheckRunner)
    delays: FailureDelays = field(default_factory=FailureDelays)
    refusals: RateLimitedLog = field(default_factory=lambda: RateLimitedLog(logger, logging.INFO))
    troubles: RateLimitedLog = field(default_factory=lambda: RateLimitedLog(logger))


def _values(request: HandshakeRequest, name: str) -> list[str]:
    wanted = name.lower()
    return [value for key, value in request.headers if key.lower() == wanted]


def _tokens(request: HandshakeRequest, name: str) -> set[str]:
    return {token.strip().lower() for value in _values(request, name) for token in value.split(",")}


def is_upgrade(request: HandshakeRequest) -> bool:
    """Whether the request asks for a WebSocket upgrade (``Connection: Upgrade`` and
    ``Upgrade: websocket``, case-insensitive; the finer checks are websockets')."""
    return "upgrade" in _tokens(request, "Connection") and "websocket" in _tokens(
        request, "Upgrade"
    )


def route(request: HandshakeRequest, database_name: str) -> HandshakeRejection | None:
    """``None`` when the request is an upgrade to ``/<database_name>/_blipsync``."""
    path = request.path.split("?", 1)[0]
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "" or parts[2] != "_blipsync" or not parts[1]:
        return NOT_FOUND
    # Clients percent-encode database names that are not URL-safe.
    if unquote(parts[1]) != database_name:
        return NO_SUCH_DATABASE
    if not is_upgrade(request):
        return NO_UPGRADE
    return None


def parse_basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(username, password)`` from an ``Authorization: Basic`` value, or ``None``."""
    if header is None:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        # RFC 7617 allows other charsets; Latin-1 is what pre-UTF-8 clients send.
        text = decoded.decode("latin-1")
    username, colon, password = text.partition(":")
    if not colon:
        return None
    return username, password


async def _call(
    authenticator: ListenerPasswordAuthenticator, runner: CheckRunner, username: str, password: str
) -> bool:
    fn = authenticator.fn
    if inspect.iscoroutinefunction(fn):
        result = await runner.run_async(fn(username, password))
    else:
        # A plain function may block (a password hash, a lookup): keep it off the event loop,
        # in the listener's own bounded executor. It may also hand back an awaitable, which
        # is awaited here, on the loop.
        result = await runner.run(fn, username, password)
        if inspect.isawaitable(result):
            result = await result
    return result is True


async def authenticate(
    authenticator: ListenerAuthenticator | None,
    request: HandshakeRequest,
    log_name: str,
    guard: AuthGuard,
) -> HandshakeRejection | None:
    """``None`` if the peer may proceed, else the 401 (or 503: busy, or a timed-out check).

    ``guard``: the listener's bounds on authentication work (one per running listener).
    """
    if authenticator is None:
        return None
    if isinstance(authenticator, ListenerCertificateAuthenticator):
        try:
            return await guard.runner.run_async(
                certauth.check_client(authenticator, request, log_name)
            )
        except Busy:
            guard.troubles.log("%s: certificate checks busy; refusing for now (503)", log_name)
            return AUTH_BUSY
    header = request.header("Authorization")
    credentials = parse_basic_credentials(header)
    address = address_key(request.remote_address)
    if credentials is None:
        guard.refusals.log(
            "%s: no usable Basic credentials from %s", log_name, request.remote_address
        )
        if header is not None:
            guard.delays.failed(address)  # a malformed header is a failed attempt
        return UNAUTHORIZED
    username, password = credentials
    delay = guard.delays.delay(address)
    if delay > 0:
        # Before the check, whatever the credentials: nothing to learn from its length.
        await asyncio.sleep(delay)
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            accepted = await _call(authenticator, guard.runner, username, password)
    except Busy:
        guard.troubles.log("%s: password checks busy; refusing for now (503)", log_name)
        return AUTH_BUSY
    except TimeoutError:
        guard.troubles.log("%s: password check for %r timed out", log_name, username)
        return AUTH_TIMED_OUT
    except Exception:
        # Fail closed: a broken check must not let anyone in.
        guard.troubles.log("%s: password check for %r raised", log_name, username, exc_info=True)
        guard.delays.failed(address)
        return UNAUTHORIZED
    if not accepted:
        guard.refusals.log(
            "%s: credentials of %r from %s refused", log_name, username, request.remote_address
        )
        guard.delays.failed(address)
        return UNAUTHORIZED
    return None


__all__ = [
    "AUTH_TIMEOUT_S",
    "WWW_AUTHENTICATE",
    "AuthGuard",
    "authenticate",
    "is_upgrade",
    "parse_basic_credentials",
    "route",
]
