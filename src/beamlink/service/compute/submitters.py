"""Submitters: queueing a batch and following a task group's results, for both ways of asking.

``POST /v1/tasks`` and ``GET /v1/tasks/stream`` (plain HTTP) and the submitter WebSocket
(``GET /v1/tasks/session``, what the SDK's Executor speaks) all come here. :class:`TaskSession` is that
WebSocket's state, transport-free like the agent gateway: the route hands in frames and a ``send``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from beamlink.errors import BeamlinkError, InvalidInput, NotFound
from beamlink.protocol.compute import TERMINAL_STATES, TaskBatch, TaskBatchCreated, TaskResult
from beamlink.protocol.task_session import (
    CLOSE_INVALID,
    Refused,
    Results,
    SubmitBatch,
    Submitted,
    WatchGroup,
    decode_submitter_message,
)
from beamlink.service.auth.principal import Principal
from beamlink.service.compute import tasks
from beamlink.service.compute.hub import AgentLink
from beamlink.service.compute.models import Task
from beamlink.service.connection import Close, Send
from beamlink.service.state import ServiceState

__all__ = ["GroupWatch", "TaskSession", "submit", "watch_group"]

log = logging.getLogger(__name__)


async def submit(state: ServiceState, principal: Principal, batch: TaskBatch) -> TaskBatchCreated:
    """Queue a batch; to a connected endpoint it is dispatched in the same transaction and sent right
    after the commit, rather than waking the connection's dispatcher to claim it in a second one."""
    links: list[AgentLink] = []

    def connection(endpoint_id: str) -> set[str] | None:
        link = state.hub.link(endpoint_id)
        if link is None:
            return None
        links.append(link)
        return link.sent_functions()

    submitted = await state.db.run(
        lambda session: tasks.submit_batch(
            session,
            principal,
            batch,
            payload_limit=state.settings.compute_payload_limit,
            connection=connection,
            checks=state.submit_checks,
        )
    )
    endpoint_id = submitted.endpoint_id
    if links and submitted.dispatch is not None:
        await links[0].deliver(submitted.dispatch)  # before the answer: the endpoint's work comes first
    else:
        state.hub.notify_endpoint(endpoint_id)  # after the commit, so the dispatcher sees the rows
    return TaskBatchCreated(
        endpoint_id=endpoint_id, task_group_id=submitted.task_group_id, task_ids=submitted.task_ids
    )


class GroupWatch:
    """A subscription to a task group's results: ``finished`` (already done) first, then ``queue``."""

    def __init__(self, state: ServiceState, task_group_id: str) -> None:
        self.state = state
        self.task_group_id = task_group_id
        self.queue: asyncio.Queue[TaskResult] = state.hub.subscribe(task_group_id)
        self.finished: list[TaskResult] = []

    def close(self) -> None:
        self.state.hub.unsubscribe(self.task_group_id, self.queue)

    async def next_batch(self) -> list[TaskResult]:
        """The next result and whatever else has finished meanwhile (one write for all of them)."""
        batch = [await self.queue.get()]
        while not self.queue.empty():
            batch.append(self.queue.get_nowait())
        return batch


async def watch_group(state: ServiceState, principal: Principal, task_group_id: str) -> GroupWatch:
    """Subscribe first, then read what has finished, so a result published in between is not missed
    (it may come twice; submitters drop duplicates by task id). NotFound if the group is someone else's."""
    watch = GroupWatch(state, task_group_id)

    def read(session: Session) -> tuple[bool, list[TaskResult]]:
        foreign = session.scalar(
            select(Task.owner_id)
            .where(Task.task_group_id == task_group_id, Task.owner_id != principal.id)
            .limit(1)
        )
        if foreign is not None and not principal.is_admin:
            return False, []
        query = tasks.tasks_query(principal, task_group_id=task_group_id).where(
            Task.state.in_(TERMINAL_STATES)
        )
        return True, [tasks.task_result(t) for t in session.scalars(query)]

    try:
        allowed, watch.finished = await state.db.run(read)
    except BaseException:
        watch.close()
        raise
    if not allowed:
        watch.close()
        raise NotFound(f"task group {task_group_id} not found (or you have no access to it)")
    return watch


class TaskSession:
    """One submitter WebSocket, from accept to close."""

    def __init__(self, state: ServiceState, principal: Principal, send: Send, close: Close) -> None:
        self.state = state
        self.principal = principal
        self._send = send
        self._close = close
        self._send_lock = asyncio.Lock()
        self._forwarders: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    async def receive(self, frame: str | bytes) -> bool:
        """Handle one frame; False when the connection was closed because of it."""
        try:
            message = decode_submitter_message(frame)
        except InvalidInput as exc:
            ref = _submit_ref(frame)
            if ref is None:
                log.warning("a submitter sent an invalid frame: %s", exc.message)
                await self.close(CLOSE_INVALID, exc.message)
                return False
            # A submit whose batch is wrong is answered like a 422, and the connection goes on.
            try:
                await self._refuse(ref, None, exc)
            except ConnectionError:
                return False
            return True
        try:
            if isinstance(message, SubmitBatch):
                await self._on_submit(message)
            else:
                await self._on_watch(message)
        except ConnectionError:
            return False
        return True

    async def _on_submit(self, message: SubmitBatch) -> None:
        try:
            created = await submit(self.state, self.principal, message.batch)
        except BeamlinkError as exc:
            await self._refuse(message.ref, None, exc)
            return
        except Exception:
            log.exception("submitting a batch failed")
            await self._refuse(message.ref, None, BeamlinkError("internal error; see the service log"))
            return
        await self._write(Submitted(ref=message.ref, created=created).model_dump_json())

    async def _on_watch(self, message: WatchGroup) -> None:
        group = message.task_group_id
        if group in self._forwarders:
            return
        try:
            watch = await watch_group(self.state, self.principal, group)
        except BeamlinkError as exc:
            await self._refuse(None, group, exc)
            return
        self._forwarders[group] = asyncio.create_task(self._forward(watch))

    async def _forward(self, watch: GroupWatch) -> None:
        try:
            if watch.finished:
                await self._write(Results(results=watch.finished).model_dump_json())
            while not self._closed:
                batch = await watch.next_batch()
                await self._write(Results(results=batch).model_dump_json())
        except ConnectionError:
            pass  # the socket is gone; finish() cleans up
        finally:
            watch.close()

    async def _refuse(self, ref: int | None, group: str | None, exc: BeamlinkError) -> None:
        refused = Refused(ref=ref, task_group_id=group, status=exc.status, error=exc.to_dict())
        await self._write(refused.model_dump_json())

    async def _write(self, text: str) -> None:
        if self._closed:
            raise ConnectionError("the submitter's connection is closed")
        try:
            async with self._send_lock:
                await self._send(text)
        except Exception as exc:
            self._closed = True
            raise ConnectionError("the submitter's connection is gone") from exc

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # the socket may be gone already
            await self._close(code, reason[:120])

    async def finish(self) -> None:
        """The connection ended: stop forwarding (results stay stored; a reconnect re-reads them)."""
        self._closed = True
        for forwarder in self._forwarders.values():
            forwarder.cancel()
        for forwarder in self._forwarders.values():
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await forwarder


def _submit_ref(frame: str | bytes) -> int | None:
    """The ``ref`` of a frame that is a submit with an invalid batch (None for anything else)."""
    try:
        data = json.loads(frame)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("type") == "submit" and type(data.get("ref")) is int:
        return int(data["ref"])
    return None
