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

Credentials never reach the logs: only the user name is logged, never the password or the
header.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import logging
from urllib.parse import unquote

from couchlite.listener import certauth
from couchlite.listener.config import (
    ListenerAuthenticator,
    ListenerCertificateAuthenticator,
    ListenerPasswordAuthenticator,
)
from couchlite.transport.websocket import HandshakeRejection, HandshakeRequest

logger = logging.getLogger(__name__)

#: LiteCore's challenge (notes §3.5); the client retries once with credentials if it has any.
WWW_AUTHENTICATE = 'Basic charset="UTF-8"'
#: How long a password check may take before the peer is told to come back later (503,
#: transient for Couchbase Lite clients) rather than being kept waiting indefinitely.
AUTH_TIMEOUT_S = 10.0

UNAUTHORIZED = HandshakeRejection(401, "", (("WWW-Authenticate", WWW_AUTHENTICATE),))
NO_SUCH_DATABASE = HandshakeRejection(404, "No such database")
NOT_FOUND = HandshakeRejection(404, "Not found")
NO_UPGRADE = HandshakeRejection(403, "No upgrade available")
AUTH_TIMED_OUT = HandshakeRejection(503, "Authentication timed out")
SHUTTING_DOWN = HandshakeRejection(503, "Listener is stopping")


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


async def _call(authenticator: ListenerPasswordAuthenticator, username: str, password: str) -> bool:
    fn = authenticator.fn
    if inspect.iscoroutinefunction(fn):
        result = await fn(username, password)
    else:
        # A plain function may block (a password hash, a lookup): keep it off the event loop.
        # It may also hand back an awaitable, which is awaited here, on the loop.
        result = await asyncio.to_thread(fn, username, password)
        if inspect.isawaitable(result):
            result = await result
    return result is True


async def authenticate(
    authenticator: ListenerAuthenticator | None,
    request: HandshakeRequest,
    log_name: str,
) -> HandshakeRejection | None:
    """``None`` if the peer may proceed, else the 401 (or 503 on a timed-out check)."""
    if authenticator is None:
        return None
    if isinstance(authenticator, ListenerCertificateAuthenticator):
        return await certauth.check_client(authenticator, request, log_name)
    credentials = parse_basic_credentials(request.header("Authorization"))
    if credentials is None:
        logger.info("%s: no usable Basic credentials from %s", log_name, request.remote_address)
        return UNAUTHORIZED
    username, password = credentials
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            accepted = await _call(authenticator, username, password)
    except TimeoutError:
        logger.warning("%s: password check for %r timed out", log_name, username)
        return AUTH_TIMED_OUT
    except Exception:
        # Fail closed: a broken check must not let anyone in.
        logger.exception("%s: password check for %r raised", log_name, username)
        return UNAUTHORIZED
    if not accepted:
        logger.info(
            "%s: credentials of %r from %s refused", log_name, username, request.remote_address
        )
        return UNAUTHORIZED
    return None


__all__ = [
    "AUTH_TIMEOUT_S",
    "WWW_AUTHENTICATE",
    "authenticate",
    "is_upgrade",
    "parse_basic_credentials",
    "route",
]
