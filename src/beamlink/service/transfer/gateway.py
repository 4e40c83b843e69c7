"""One connected collection agent: its hello, heartbeats and answers in; operation requests out.

Transport-free like :class:`beamlink.service.compute.gateway.AgentSession`: the WebSocket route hands in
frames and a send/close pair.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import anyio.to_thread
from sqlalchemy.orm import Session

from beamlink.errors import InvalidInput
from beamlink.protocol.agent import CLOSE_INVALID, CLOSE_REPLACED, Heartbeat, encode
from beamlink.protocol.collections import (
    CollectionHello,
    CollectionWelcome,
    OpRequest,
    OpResult,
    decode_collection_agent_message,
)
from beamlink.protocol.transfers import (
    TOKEN_ASK_LATER,
    CancelTransfer,
    TransferDone,
    TransferDoneAck,
    TransferEvents,
    TransferProgress,
    TransferTokenRequest,
)
from beamlink.service import agent_rows
from beamlink.service.connection import Close, Send
from beamlink.service.state import ServiceState
from beamlink.service.transfer import collections, transfers
from beamlink.service.transfer.models import Collection

__all__ = ["CollectionSession"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class CollectionSession:
    def __init__(self, state: ServiceState, collection_id: str, send: Send, close: Close) -> None:
        self.state = state
        self.collection_id = collection_id
        self._send = send
        self._close = close
        self._send_lock = asyncio.Lock()
        self._closed = False
        self.hello: CollectionHello | None = None
        self.connected_at: datetime | None = None
        self._held: set[str] = set()  # transfer tasks this agent has (from its hello, then sent here)
        self._jobs_lock = asyncio.Lock()

    async def _db(self, fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.state.db.transaction() as session:
                return fn(session)

        return await anyio.to_thread.run_sync(run)

    async def _send_text(self, text: str) -> bool:
        if self._closed:
            return False
        try:
            async with self._send_lock:
                await self._send(text)
            return True
        except Exception:
            log.info("collection %s: send failed; the connection is gone", self.collection_id)
            return False

    async def send_request(self, request: OpRequest) -> bool:
        return await self._send_text(encode(request))

    async def send_jobs(self) -> None:
        """Send the ACTIVE tasks this agent should run and does not have yet."""
        if self.hello is None:
            return
        async with self._jobs_lock:  # two wake-ups at once must not send a task twice
            held = set(self._held)
            ttl = self.state.settings.transfer_token_ttl_seconds
            jobs = await self._db(
                lambda s: transfers.jobs_to_send(s, self.collection_id, held, token_ttl=ttl)
            )
            for job in jobs:
                if not await self._send_text(encode(job)):
                    return
                self._held.add(job.transfer_id)
            if jobs:
                ids = [j.transfer_id for j in jobs]
                await self._db(lambda s: transfers.mark_held(s, self.collection_id, ids))

    async def cancel(self, transfer_id: str, reason: str) -> None:
        await self._send_text(encode(CancelTransfer(transfer_id=transfer_id, reason=reason)))

    async def replace(self) -> None:
        await self.close(CLOSE_REPLACED, "a newer connection of this collection took over")

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._close(code, reason[:120])
        except Exception:
            log.debug("closing collection connection failed", exc_info=True)

    async def receive(self, frame: str | bytes) -> bool:
        """Handle one frame; False when the connection was closed because of it."""
        try:
            message = decode_collection_agent_message(frame)
            if self.hello is None and not isinstance(message, CollectionHello):
                raise InvalidInput(f"the first message must be 'collection_hello', got {message.type!r}")
        except InvalidInput as exc:
            log.warning("collection %s sent an invalid frame: %s", self.collection_id, exc.message)
            await self.close(CLOSE_INVALID, exc.message)
            return False
        if isinstance(message, CollectionHello):
            await self._on_hello(message)
        elif isinstance(message, Heartbeat):
            await self._db(
                lambda s: agent_rows.record_heartbeat(s, Collection, self.collection_id, message.stats)
            )
        elif isinstance(message, OpResult):
            self.state.collections.resolve(message)
        elif isinstance(message, TransferProgress):
            await self._db(
                lambda s: transfers.record_progress(
                    s, self.collection_id, message.transfer_id, message.counts
                )
            )
        elif isinstance(message, TransferEvents):
            await self._db(
                lambda s: transfers.add_events(s, self.collection_id, message.transfer_id, message.events)
            )
        elif isinstance(message, TransferDone):
            await self._db(lambda s: transfers.finish(s, self.collection_id, message))
            self._held.discard(message.transfer_id)
            self.state.collections.changed([message.transfer_id])
            # After the commit: the agent forgets its copy of the outcome only then.
            await self._send_text(encode(TransferDoneAck(transfer_id=message.transfer_id)))
        elif isinstance(message, TransferTokenRequest):
            await self._renew_token(message.transfer_id)
        return True

    async def _renew_token(self, transfer_id: str) -> None:
        ttl = self.state.settings.transfer_token_ttl_seconds
        answer = await self._db(
            lambda s: transfers.renew_token(s, self.collection_id, transfer_id, token_ttl=ttl)
        )
        if answer.error is None:
            log.info("collection %s: renewed the data token of transfer %s", self.collection_id, transfer_id)
        else:
            # "Ask later" repeats every few seconds while a collection is away.
            level = logging.DEBUG if answer.error.code == TOKEN_ASK_LATER else logging.INFO
            log.log(
                level,
                "collection %s: no data token for transfer %s: %s",
                self.collection_id,
                transfer_id,
                answer.error.message,
            )
        await self._send_text(encode(answer))

    async def _on_hello(self, hello: CollectionHello) -> None:
        self.hello = hello

        def connect(session: Session) -> datetime | None:
            collection = session.get(Collection, self.collection_id)
            if collection is None:
                return None
            return collections.mark_connected(session, collection, hello)

        self._held = set(hello.held_transfer_ids)
        self.connected_at = await self._db(connect)
        await self.state.collections.attach(self)
        welcome = CollectionWelcome(collection_id=self.collection_id, heartbeat_period=hello.heartbeat_period)
        await self._send_text(encode(welcome))
        log.info(
            "collection %s connected from %s (data server %s)", self.collection_id, hello.host, hello.data_url
        )
        await self._refresh()

    async def _refresh(self) -> None:
        """This agent came or went: tasks that need it change state; the agents of ACTIVE ones get them."""
        links = self.state.collections
        ids = await self._db(lambda s: transfers.refresh_states(s, [self.collection_id], links.online))
        if ids:
            links.changed(ids)
            destinations = await self._db(lambda s: transfers.destinations_of(s, ids))
            await links.send_jobs(destinations)

    async def finish(self) -> None:
        self._closed = True
        connected_at = self.connected_at
        if self.state.collections.detach(self) and connected_at is not None:
            await self._db(
                lambda s: agent_rows.mark_disconnected(s, Collection, self.collection_id, connected_at)
            )
            await self._refresh()
            log.info("collection %s disconnected", self.collection_id)
