"""What the service's WebSocket routes share: reading frames into a transport-free session."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import WebSocket, WebSocketDisconnect

__all__ = ["pump_frames"]

log = logging.getLogger(__name__)


async def pump_frames(websocket: WebSocket, handle: Callable[[str | bytes], Awaitable[bool]]) -> None:
    """Hand each text or binary frame to ``handle`` until the peer goes or ``handle`` says stop (False)."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = message.get("text")
            if frame is None:
                frame = message.get("bytes") or b""
            if not await handle(frame):
                return
    except WebSocketDisconnect:
        pass
    except RuntimeError:
        log.debug("%s: the socket closed under us", websocket.url.path, exc_info=True)
