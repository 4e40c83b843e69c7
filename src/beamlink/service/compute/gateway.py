"""One connected endpoint agent: its messages in, its task batches out.

Transport-free: the API route hands in text frames and a ``send``/``close`` pair, so this is tested and
reasoned about without a socket. Database work runs in worker threads; the event loop only moves
messages.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from beamlink.errors import InvalidInput
from beamlink.protocol.agent import (
    CLOSE_INVALID,
    CLOSE_REPLACED,
    CancelTasks,
    Goodbye,
    Heartbeat,
    Hello,
    ResultAck,
    TaskAck,
    TaskDispatch,
    TaskOutcome,
    TaskResults,
    TaskStarted,
    Welcome,
    decode_agent_message,
    encode,
)
from beamlink.protocol.compute import TaskResult
from beamlink.service import agent_rows
from beamlink.service.compute import endpoints, tasks
from beamlink.service.compute.models import Endpoint
from beamlink.service.connection import Close, Send
from beamlink.service.state import ServiceState

__all__ = ["AgentSession"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class AgentSession:
    """Lives from the WebSocket accept to its close. The first frame must be ``hello``."""

    def __init__(self, state: ServiceState, endpoint_id: str, send: Send, close: Close) -> None:
        self.state = state
        self.endpoint_id = endpoint_id
        self._send = send
        self._close = close
        self._wake = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._sent_functions: set[str] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._closed = False
        self.ready = False  # hello handled: tasks may be sent to it directly
        self.hello: Hello | None = None
        self.connected_at: datetime | None = None
        # Progress not yet written: acks, starts and results that arrived while a write was under way.
        self._acks: list[str] = []
        self._starts: list[TaskStarted] = []
        self._outcomes: list[TaskOutcome] = []
        self._writer: asyncio.Task[None] | None = None

    # -- hub side -------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def sent_functions(self) -> set[str]:
        """The functions this connection has carried (a copy: read from request threads)."""
        return set(self._sent_functions)

    async def deliver(self, dispatch: TaskDispatch) -> None:
        """Send tasks a submit request marked dispatched to this connection.

        If this connection closed in the meantime its successor's hello may already have reconciled, so
        nobody would send these: queue them again and wake whichever connection the endpoint has now.
        """
        if await self._send_dispatch(dispatch):
            return
        ids = [t.task_id for t in dispatch.tasks]
        await self._db(lambda s: tasks.requeue_unsent(s, self.endpoint_id, ids))
        self.state.hub.notify_endpoint(self.endpoint_id)

    async def cancel(self, task_ids: list[str]) -> None:
        await self._safe_send(encode(CancelTasks(task_ids=task_ids)))

    async def replace(self) -> None:
        await self.close(CLOSE_REPLACED, "a newer connection of this endpoint took over")

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        try:
            await self._close(code, reason[:120])
        except Exception:  # the socket may be gone already
            log.debug("closing agent connection failed", exc_info=True)

    # -- plumbing -------------------------------------------------------------------------------

    async def _db(self, fn: Callable[[Session], T]) -> T:
        return await self.state.db.run(fn)

    async def _safe_send(self, text: str) -> bool:
        if self._closed:
            return False
        try:
            async with self._send_lock:  # the dispatcher, submit requests and cancels share the socket
                await self._send(text)
            return True
        except Exception:
            log.info("endpoint %s: send failed; the connection is gone", self.endpoint_id)
            return False

    def _publish(self, results: list[TaskResult]) -> None:
        self.state.hub.publish(results)

    # -- messages -------------------------------------------------------------------------------

    async def receive(self, frame: str | bytes) -> bool:
        """Handle one frame; False when the connection was closed because of it."""
        try:
            message = decode_agent_message(frame)
            if self.hello is None and not isinstance(message, Hello):
                raise InvalidInput(f"the first message must be 'hello', got {message.type!r}")
        except InvalidInput as exc:
            log.warning("endpoint %s sent an invalid frame: %s", self.endpoint_id, exc.message)
            await self.close(CLOSE_INVALID, exc.message)
            return False
        handler = getattr(self, f"_on_{message.type}")
        await handler(message)
        return True

    async def _on_hello(self, hello: Hello) -> None:
        self.hello = hello
        held = set(hello.held_task_ids)

        def connect(session: Session) -> list[TaskResult]:
            endpoint = session.get(Endpoint, self.endpoint_id)
            if endpoint is None:
                return []
            self.connected_at = endpoints.mark_connected(session, endpoint, hello)
            return tasks.reconcile(session, self.endpoint_id, held)

        self._publish(await self._db(connect))
        settings = self.state.settings
        await self._safe_send(
            encode(
                Welcome(
                    endpoint_id=self.endpoint_id,
                    heartbeat_period=hello.heartbeat_period,
                    result_limit=settings.compute_result_limit,
                )
            )
        )
        log.info(
            "endpoint %s connected from %s (%s engine, %d task(s) held)",
            self.endpoint_id,
            hello.host,
            hello.engine,
            len(held),
        )
        self._dispatcher = asyncio.create_task(self._dispatch_loop())
        self.ready = True
        self.wake()

    async def _on_heartbeat(self, message: Heartbeat) -> None:
        await self._db(lambda s: agent_rows.record_heartbeat(s, Endpoint, self.endpoint_id, message.stats))

    # Acks, starts and results are written in groups: a message is queued and handled by one writer,
    # whose next transaction takes everything that arrived during the last one. An idle endpoint's
    # result is written at once; a busy one's thousand results a second take a few transactions
    # instead of one each (the per-result transaction was most of the service's CPU at that rate).

    async def _on_ack(self, message: TaskAck) -> None:
        self._acks.extend(message.task_ids)
        self._write_soon()

    async def _on_started(self, message: TaskStarted) -> None:
        self._starts.append(message)
        self._write_soon()

    async def _on_results(self, message: TaskResults) -> None:
        self._outcomes.extend(message.results)
        self._write_soon()

    def _write_soon(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_progress())

    async def _write_progress(self) -> None:
        while self._acks or self._starts or self._outcomes:
            acks, starts, outcomes = self._acks, self._starts, self._outcomes
            self._acks, self._starts, self._outcomes = [], [], []
            store = functools.partial(self._store_progress, acks=acks, starts=starts, outcomes=outcomes)
            try:
                finished = await self._db(store)
            except Exception:
                # Nothing was acknowledged: the endpoint keeps its results and sends them again after
                # it reconnects, so closing loses nothing.
                log.exception("endpoint %s: storing its progress failed; closing", self.endpoint_id)
                await self.close(CLOSE_INVALID, "the service could not store your results; reconnect")
                return
            self._publish(finished)
            if outcomes:
                # Acknowledged after the commit: the endpoint deletes its spooled copy only then.
                await self._safe_send(encode(ResultAck(task_ids=[o.task_id for o in outcomes])))

    def _store_progress(
        self, session: Session, *, acks: list[str], starts: list[TaskStarted], outcomes: list[TaskOutcome]
    ) -> list[TaskResult]:
        """One transaction: acks, then starts, then results (the order an endpoint reports them in)."""
        settings = self.state.settings
        tasks.mark_acked(session, self.endpoint_id, acks)
        for started in starts:
            tasks.mark_started(session, self.endpoint_id, started.task_ids, started.at)
        return tasks.record_outcomes(
            session,
            self.endpoint_id,
            outcomes,
            result_limit=settings.compute_result_limit,
            ttl_seconds=settings.compute_result_ttl_seconds,
        )

    async def _written(self) -> None:
        """Until the progress received so far is written (before a goodbye or a disconnect)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])

    async def _on_goodbye(self, message: Goodbye) -> None:
        await self._written()
        count = await self._db(lambda s: tasks.return_tasks(s, self.endpoint_id, message.returned_task_ids))
        log.info("endpoint %s is stopping; %d task(s) queued again", self.endpoint_id, count)

    # -- dispatch -------------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        """Send queued tasks whenever woken; batches as large as what has queued up meanwhile."""
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            while not self._closed:
                sent = set(self._sent_functions)
                dispatch, failed = await self._db(
                    lambda s, sent=sent: tasks.claim_for_dispatch(s, self.endpoint_id, sent)  # type: ignore[misc]
                )
                self._publish(failed)
                if dispatch is None:
                    break
                if not await self._send_dispatch(dispatch):
                    return  # left as dispatched: the next hello sends them again

    async def _send_dispatch(self, dispatch: TaskDispatch) -> bool:
        if not await self._safe_send(encode(dispatch)):
            return False
        self._sent_functions.update(f.id for f in dispatch.functions)
        return True

    async def finish(self) -> None:
        """The connection ended: stop dispatching and record the disconnect (if no newer one replaced us)."""
        self._closed = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        await self._written()
        connected_at = self.connected_at
        if self.state.hub.detach(self) and connected_at is not None:
            await self._db(
                lambda s: agent_rows.mark_disconnected(s, Endpoint, self.endpoint_id, connected_at)
            )
            log.info("endpoint %s disconnected", self.endpoint_id)
