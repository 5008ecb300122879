"""transport: message channels (WebSocket, in-memory) and the asyncio BLIP connection over them.

The WebSocket adapters live in :mod:`couchlite.transport.websocket` (``connect_channel``,
``serve_channels``); they are not re-exported here so that importing the interface does not
import ``websockets``.
"""

from __future__ import annotations

from couchlite.transport.blip_connection import (
    BlipConnection,
    ConnectionClosedError,
    Handler,
    Reply,
    RequestTimeout,
)
from couchlite.transport.channel import (
    DEFAULT_SUBPROTOCOLS,
    SUBPROTOCOL_CBMOBILE_2,
    SUBPROTOCOL_CBMOBILE_3,
    ChannelClosed,
    MessageChannel,
)
from couchlite.transport.loopback import LoopbackChannel, loopback_pair

__all__ = [
    "DEFAULT_SUBPROTOCOLS",
    "SUBPROTOCOL_CBMOBILE_2",
    "SUBPROTOCOL_CBMOBILE_3",
    "BlipConnection",
    "ChannelClosed",
    "ConnectionClosedError",
    "Handler",
    "LoopbackChannel",
    "MessageChannel",
    "Reply",
    "RequestTimeout",
    "loopback_pair",
]
