"""The exceptions of the BLIP layer (notes §2.8).

Two families, kept apart on purpose:

* :class:`BlipError` is *fatal*: the byte stream can no longer be trusted (bad framing, bad
  checksum, corrupt deflate data, impossible message numbers) and the connection must be closed
  with :attr:`BlipError.close_code`. ``is_remote_fault`` tells a peer's violation from local misuse
  (h11/wsproto style), so the connection layer knows whether to blame the peer in its close frame.
* :class:`BlipErrorReply` is an ordinary application-level ``ERR`` message: one request failed,
  the connection is fine.
"""

from __future__ import annotations

from couchlite.errors import CouchliteError, ErrorDomain, ProtocolError

#: WebSocket close codes used for fatal BLIP errors. LiteCore answers framing garbage with 1002
#: (protocol error) but closes with 1011 (internal error) when a checksum, inflate or message
#: numbering check fails, and peers expect to see the same codes from us.
CLOSE_PROTOCOL_ERROR = 1002
#: A resource limit other than a message's size (too many messages in progress, a peer that
#: never reads or acknowledges what we send): RFC 6455's "policy violation".
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011


class BlipError(ProtocolError):
    """A fatal BLIP protocol violation; the connection must be closed with ``close_code``."""

    def __init__(
        self,
        message: str,
        *,
        close_code: int = CLOSE_PROTOCOL_ERROR,
        is_remote_fault: bool = True,
    ) -> None:
        super().__init__(message, domain=ErrorDomain.WEBSOCKET, code=close_code)
        self.close_code = close_code
        self.is_remote_fault = is_remote_fault


class BlipLimitExceeded(BlipError):
    """The peer went beyond one of this connection's limits; fatal, like any :class:`BlipError`.

    ``limit`` names the setting (``"max_message_size"``, ``"max_buffered_bytes"``,
    ``"max_incoming_messages"``, ``"max_size"`` of a streamed reply, ``"max_outbox_messages"``)
    and ``maximum`` is its value. Close code 1009 for sizes, 1008 for the others.
    """

    def __init__(
        self,
        message: str,
        *,
        limit: str,
        maximum: int | float,
        close_code: int = CLOSE_MESSAGE_TOO_BIG,
    ) -> None:
        super().__init__(message, close_code=close_code)
        self.limit = limit
        self.maximum = maximum


class BlipMessageError(ProtocolError):
    """A complete message has unusable content (e.g. a body that should be JSON but is not).

    Not fatal to the connection: only the message concerned is bad.
    """


def _domain_of(name: str) -> ErrorDomain:
    try:
        return ErrorDomain(name)
    except ValueError:
        return ErrorDomain.BLIP


class BlipErrorReply(CouchliteError):
    """An ``ERR`` message as an exception.

    Raised by request handlers to answer with an error, and by the connection layer when one of
    our requests is answered with ``ERR``. ``error_domain`` keeps the wire string verbatim (it may
    be a domain couchlite does not know, such as ``mbedTLS``); ``domain`` maps it onto
    :class:`~couchlite.errors.ErrorDomain`, falling back to ``BLIP``.
    """

    def __init__(self, domain: str, code: int, message: str = "") -> None:
        super().__init__(message, domain=_domain_of(domain), code=code)
        self.error_domain = domain

    def __str__(self) -> str:
        text = f"{self.error_domain} error {self.code}"
        return f"{text}: {self.message}" if self.message else text

    def __repr__(self) -> str:
        return f"BlipErrorReply({self.error_domain!r}, {self.code}, {self.message!r})"


__all__ = [
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_PROTOCOL_ERROR",
    "BlipError",
    "BlipErrorReply",
    "BlipLimitExceeded",
    "BlipMessageError",
]
