"""``GET /v1/agents/connect``: the WebSocket every agent (endpoint or collection) keeps open to the service.

The agent's id says which kind it is; each kind has its own session class and messages.
"""

from __future__ import annotations

import logging

import anyio.to_thread
from fastapi import APIRouter, WebSocket

from beamlink.protocol.agent import AGENT_HEADER, CLOSE_AUTH
from beamlink.service import agent_rows
from beamlink.service.api.sockets import pump_frames
from beamlink.service.compute.gateway import AgentSession
from beamlink.service.compute.models import Endpoint
from beamlink.service.state import ServiceState
from beamlink.service.transfer.gateway import CollectionSession
from beamlink.service.transfer.models import Collection

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["agents"])


def _authenticate(state: ServiceState, agent_id: str, secret: str) -> str | None:
    """The kind of agent ``agent_id`` is ("endpoint" or "collection") if the secret is its own."""
    with state.db.transaction() as session:
        if agent_rows.authenticate(session, Endpoint, agent_id, secret) is not None:
            return "endpoint"
        if agent_rows.authenticate(session, Collection, agent_id, secret) is not None:
            return "collection"
        return None


@router.websocket("/v1/agents/connect")
async def connect(websocket: WebSocket) -> None:
    state: ServiceState = websocket.app.state.beamlink
    agent_id = websocket.headers.get(AGENT_HEADER, "")
    scheme, _, secret = websocket.headers.get("authorization", "").partition(" ")
    # Accept first, then close with a reason: a refused handshake would tell the agent nothing.
    await websocket.accept()
    if scheme.lower() != "bearer" or not agent_id or not secret:
        await websocket.close(CLOSE_AUTH, f"send {AGENT_HEADER} and Authorization: Bearer <agent secret>")
        return
    kind = await anyio.to_thread.run_sync(_authenticate, state, agent_id, secret)
    if kind is None:
        await websocket.close(
            CLOSE_AUTH,
            "unknown agent or outdated secret (was it started again elsewhere, or deleted?)",
        )
        return

    async def send(text: str) -> None:
        await websocket.send_text(text)

    async def close(code: int, reason: str) -> None:
        await websocket.close(code, reason)

    session: AgentSession | CollectionSession
    if kind == "endpoint":
        session = AgentSession(state, agent_id, send, close)
        await state.hub.attach(session)
    else:
        session = CollectionSession(state, agent_id, send, close)  # attaches at its hello
    try:
        await pump_frames(websocket, session.receive)
    finally:
        await session.finish()
