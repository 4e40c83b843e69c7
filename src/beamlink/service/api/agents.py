"""``GET /v1/agents/connect``: the WebSocket every endpoint agent keeps open to the service."""

from __future__ import annotations

import logging

import anyio.to_thread
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from beamlink.protocol.agent import AGENT_HEADER, CLOSE_AUTH
from beamlink.service.compute import endpoints
from beamlink.service.compute.gateway import AgentSession
from beamlink.service.state import ServiceState

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["agents"])


def _authenticate(state: ServiceState, endpoint_id: str, secret: str) -> bool:
    with state.db.transaction() as session:
        return endpoints.authenticate_agent(session, endpoint_id, secret) is not None


@router.websocket("/v1/agents/connect")
async def connect(websocket: WebSocket) -> None:
    state: ServiceState = websocket.app.state.beamlink
    endpoint_id = websocket.headers.get(AGENT_HEADER, "")
    scheme, _, secret = websocket.headers.get("authorization", "").partition(" ")
    # Accept first, then close with a reason: a refused handshake would tell the agent nothing.
    await websocket.accept()
    if scheme.lower() != "bearer" or not endpoint_id or not secret:
        await websocket.close(CLOSE_AUTH, f"send {AGENT_HEADER} and Authorization: Bearer <agent secret>")
        return
    if not await anyio.to_thread.run_sync(_authenticate, state, endpoint_id, secret):
        await websocket.close(
            CLOSE_AUTH,
            "unknown endpoint or outdated secret (was it started again elsewhere, or deleted?)",
        )
        return

    async def send(text: str) -> None:
        await websocket.send_text(text)

    async def close(code: int, reason: str) -> None:
        await websocket.close(code, reason)

    session = AgentSession(state, endpoint_id, send, close)
    await state.hub.attach(session)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            frame = message.get("text")
            if frame is None:
                frame = message.get("bytes") or b""
            if not await session.receive(frame):
                break
    except WebSocketDisconnect:
        pass
    except RuntimeError:
        log.debug("endpoint %s: the socket closed under us", endpoint_id, exc_info=True)
    finally:
        await session.finish()
