"""What a connection keeps for a request sent with ``request_later``, in place of a future."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from couchlite.blip import Message
from couchlite.errors import CouchliteError
from couchlite.transport.blip_types import ReplyCallback, error_reply

# The connection's logger: these records belong to it.
logger = logging.getLogger("couchlite.transport.blip_connection")


class CallbackReply:
    """Stands in for a reply's future: the connection settles it through the methods it uses
    on futures (``done``, ``set_result``, ``set_exception``), which hand the outcome to the
    caller's callback, once, after ``forget`` took it off the connection's books."""

    __slots__ = ("_forget", "_on_reply", "number", "timeout")

    def __init__(
        self,
        number: int,
        on_reply: ReplyCallback,
        timeout: float | None,
        forget: Callable[[CallbackReply], None],
    ) -> None:
        self.number = number
        self.timeout = timeout
        self._on_reply: ReplyCallback | None = on_reply
        self._forget = forget

    def done(self) -> bool:
        return self._on_reply is None

    def set_result(self, reply: Message) -> None:
        if reply.is_error:
            self._settle(None, error_reply(reply))
        else:
            self._settle(reply, None)

    def set_exception(self, error: BaseException) -> None:
        # Errors come from timers and from the connection's end, which go on with their own
        # bookkeeping after this call: the callback runs on its own loop turn, as a future's.
        exc = error if isinstance(error, Exception) else CouchliteError(str(error))
        self._settle(None, exc, soon=True)

    def _settle(self, reply: Message | None, error: Exception | None, soon: bool = False) -> None:
        on_reply, self._on_reply = self._on_reply, None
        if on_reply is None:
            return
        self._forget(self)
        if soon:
            asyncio.get_running_loop().call_soon(self._call, on_reply, None, error)
        else:
            self._call(on_reply, reply, error)

    def _call(
        self, on_reply: ReplyCallback, reply: Message | None, error: Exception | None
    ) -> None:
        try:
            on_reply(reply, error)
        except Exception:  # the caller's bug must not take the reader down with it
            logger.exception("reply callback for request #%d failed", self.number)


__all__ = ["CallbackReply"]
