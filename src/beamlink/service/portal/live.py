"""Server-sent events for the run and transfer pages.

Each stream polls the database every half second in a thread (the same reads the pages make, so the same
visibility checks), sends what changed, and stops when the run or transfer has ended or the browser has
gone. Polling keeps the portal free of hooks into the flow engine and the collection links; a poll is a
few indexed reads, and only pages that are open cost anything.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

import anyio.to_thread
from fastapi import Request
from sqlalchemy.orm import Session

from beamlink.errors import BeamlinkError
from beamlink.flowlang import redact
from beamlink.protocol.flows import RunEvent
from beamlink.service.auth.principal import Principal
from beamlink.service.flows import runs
from beamlink.service.portal import views
from beamlink.service.portal.timeline import Timeline
from beamlink.service.state import ServiceState
from beamlink.service.transfer import transfers

__all__ = ["RunFeed", "TransferFeed", "sse", "stream"]

T = TypeVar("T")
POLL_SECONDS = 0.5
_KEEPALIVE_SECONDS = 15.0
_MAX_SECONDS = 3600.0  # the browser reconnects (with Last-Event-ID) past this; bounds a forgotten tab
_BATCH = 500


def sse(event: str, data: Any, *, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


class Feed(Protocol):
    async def poll(self) -> tuple[list[bytes], bool]:
        """What changed since the last poll, and whether the stream is over."""


async def _db(state: ServiceState, fn: Callable[[Session], T]) -> T:
    def work() -> T:
        with state.db.transaction() as session:
            return fn(session)

    return await anyio.to_thread.run_sync(work)


async def stream(request: Request, feed: Feed) -> AsyncIterator[bytes]:
    started = last_sent = time.monotonic()
    while True:
        try:
            chunks, finished = await feed.poll()
        except BeamlinkError as exc:  # released, deleted or no longer visible while watched
            yield sse("gone", {"code": exc.code, "message": exc.message})
            return
        if chunks:
            yield b"".join(chunks)
            last_sent = time.monotonic()
        if finished:
            return
        now = time.monotonic()
        if now - started > _MAX_SECONDS or await request.is_disconnected():
            return
        if now - last_sent > _KEEPALIVE_SECONDS:
            yield b": keep-alive\n\n"
            last_sent = now
        await asyncio.sleep(POLL_SECONDS)


class RunFeed:
    """A run's new log entries, its timeline steps as they change, and its status."""

    def __init__(self, state: ServiceState, principal: Principal, run_id: str, after: int) -> None:
        self.state = state
        self.principal = principal
        self.run_id = run_id
        self.after = after
        self.seq = 0
        self.timeline = Timeline()
        self.last_status: dict[str, Any] | None = None

    def _read(self, session: Session) -> tuple[dict[str, Any], list[RunEvent]]:
        run = runs.get_run(session, self.principal, self.run_id)
        info = runs.run_info(session, self.principal, run)
        page = runs.run_log(session, self.principal, self.run_id, after=self.seq, limit=_BATCH)
        events = page.entries
        status = {
            "status": info.status,
            "display_status": info.display_status,
            "current_states": info.current_states,
            "steps": info.steps,
            "completion_time": info.completion_time.isoformat() if info.completion_time else None,
            "error": info.error,
            "cause": info.cause,
            "output": redact(run.output, views.private_keys(run)),
            "can_cancel": info.status in runs.ACTIVE_STATUSES and info.user_role in ("owner", "manager"),
            "more": page.has_next_page,
        }
        return status, events

    async def poll(self) -> tuple[list[bytes], bool]:
        status, events = await _db(self.state, self._read)
        chunks: list[bytes] = []
        for event in events:
            self.seq = event.seq
            steps = self.timeline.feed(event)
            if event.seq <= self.after:
                continue  # the page was rendered with it; only the timeline needs it
            chunks.append(sse("log", event.model_dump(mode="json", exclude={"details"}), event_id=event.seq))
            chunks += [sse("step", step.to_json()) for step in steps]
        more = status.pop("more")
        if status != self.last_status:
            chunks.append(sse("status", status))
            self.last_status = status
        finished = status["status"] not in runs.ACTIVE_STATUSES and not more
        if finished:
            chunks.append(sse("end", {"status": status["status"]}))
        return chunks, finished


class TransferFeed:
    """A transfer's counts and state as they change, and its new events."""

    def __init__(self, state: ServiceState, principal: Principal, transfer_id: str, after: int) -> None:
        self.state = state
        self.principal = principal
        self.transfer_id = transfer_id
        self.seq = after
        self.last: dict[str, Any] | None = None

    def _read(self, session: Session) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        view = views.transfer_view(session, self.principal, self.transfer_id)
        events = transfers.list_events(session, self.principal, self.transfer_id, after=self.seq)
        info = view.info
        progress = {
            "state": info.state,
            "status": info.status,
            "percent": view.percent,
            "counts": info.counts.model_dump(),
            "bytes_per_second": info.bytes_per_second,
            "error": info.error.model_dump() if info.error else None,
            "completed_at": info.completed_at.isoformat() if info.completed_at else None,
        }
        return progress, [e.model_dump(mode="json") for e in events]

    async def poll(self) -> tuple[list[bytes], bool]:
        progress, events = await _db(self.state, self._read)
        chunks = [sse("event", e, event_id=e["seq"]) for e in events]
        if events:
            self.seq = events[-1]["seq"]
        if progress != self.last:
            chunks.append(sse("progress", progress))
            self.last = progress
        finished = progress["state"] in transfers.DONE_STATES
        if finished:
            chunks.append(sse("end", {"state": progress["state"]}))
        return chunks, finished
