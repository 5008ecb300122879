"""The one place where errors cross the wire, both ways (notes §2.8).

An ``ERR`` answer from the peer becomes a :class:`CouchliteError` whose domain follows
LiteCore's receiving rule -- ``HTTP`` becomes ``WebSocket`` with the same code, a LiteCore domain
name stays itself; a local error becomes the ``ERR`` we answer with by LiteCore's sending rule.
Invalid input from the peer that the store refused (a body or history) is ``HTTP``/400, as
LiteCore answers a bad ``rev``.
"""

from __future__ import annotations

from couchlite.blip import BlipErrorReply
from couchlite.errors import (
    AuthenticationError,
    ConflictError,
    CouchliteError,
    ErrorDomain,
    InvalidArgumentError,
    LiteCoreCode,
    NotFoundError,
)
from couchlite.replicator.protocol.wire import http_reply
from couchlite.transport.failures import is_transient


def remote_error(exc: BlipErrorReply, context: str = "") -> CouchliteError:
    """LiteCore's mapping of a received ERR onto the couchlite exception tree."""
    text = f"{context}: {exc.message}" if context and exc.message else (exc.message or context)
    if exc.error_domain == "HTTP":
        return http_error(exc.code, text)
    if exc.error_domain in {d.value for d in ErrorDomain}:
        domain = ErrorDomain(exc.error_domain)
        return CouchliteError(
            text, domain=domain, code=exc.code, transient=is_transient(domain, exc.code)
        )
    return CouchliteError(text, domain=ErrorDomain.LITECORE, code=LiteCoreCode.REMOTE_ERROR)


def http_error(code: int, text: str) -> CouchliteError:
    """An HTTP status from the peer, as Couchbase Lite reports it: WebSocket domain, same code."""
    domain = ErrorDomain.WEBSOCKET
    transient = is_transient(domain, code)
    if code == 401:
        return AuthenticationError(text, domain=domain, code=code)
    if code == 404:
        return NotFoundError(text, domain=domain, code=code, transient=transient)
    if code == 409:
        return ConflictError(text, domain=domain, code=code, transient=transient)
    return CouchliteError(text, domain=domain, code=code, transient=transient)


def error_reply_for(error: CouchliteError) -> BlipErrorReply:
    """The ERR we answer with for a local error (LiteCore's sending rule)."""
    if error.domain is ErrorDomain.WEBSOCKET and error.code < 1000:
        return BlipErrorReply("HTTP", error.code, error.message)
    if isinstance(error, ConflictError):
        return BlipErrorReply("HTTP", 409, error.message)
    return BlipErrorReply(str(error.domain), error.code, error.message)


def reply_error_for(exc: CouchliteError) -> BlipErrorReply:
    """How a receiver answers a ``rev`` it could not store (see the module docstring)."""
    if isinstance(exc, BlipErrorReply):
        return exc
    if isinstance(exc, InvalidArgumentError):
        return http_reply(400, exc.message)
    return error_reply_for(exc)


def conflict_error() -> ConflictError:
    """A document refused because the peer holds a conflicting revision."""
    return ConflictError(
        "conflict with the remote revision", domain=ErrorDomain.WEBSOCKET, code=409
    )


__all__ = ["conflict_error", "error_reply_for", "http_error", "remote_error", "reply_error_for"]
