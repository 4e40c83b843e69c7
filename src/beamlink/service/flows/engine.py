"""The live half of the run engine: what wakes a run, and what happens after each commit.

Durable state is in the database (:mod:`.runs`); this module only decides *when* to advance a run:

* a compute task group or a transfer a run waits on finished (the compute hub and the collection links
  call us the moment they record it — no polling);
* a background provider (ls, mkdir, notify, wait_for_files, an external Action Provider) reported;
* one of the run's timers (Wait, Retry back-off, WaitTime) is due;
* someone canceled or resumed it.

A restart loses nothing: at start every ACTIVE or INACTIVE run is advanced once (which also reads the
state of every action it waits on) and every background action is driven again.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from beamlink.errors import NotFound
from beamlink.flowlang import BUILTIN_PROVIDERS, ActionRegistry, Limits
from beamlink.protocol.compute import TaskResult
from beamlink.protocol.flows import RunCreate, RunInfo
from beamlink.service.auth.models import User
from beamlink.service.auth.principal import Principal
from beamlink.service.auth.tokens import issue_token, principal_of
from beamlink.service.db.base import utcnow
from beamlink.service.flows import runs
from beamlink.service.flows.models import ActionRow, Run
from beamlink.service.flows.providers import builtin_providers, external_provider
from beamlink.service.flows.providers.base import TERMINAL, ActionSnapshot, Progress

if TYPE_CHECKING:
    from beamlink.service.state import ServiceState

__all__ = ["FlowEngine"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class FlowEngine:
    """One per service process. Create it with the state, then ``await start()`` on the event loop."""

    def __init__(self, services: ServiceState) -> None:
        self.services = services
        settings = services.settings
        public = settings.effective_public_url.rstrip("/")
        registry = ActionRegistry(
            {f"{public}/actions/{name}": name for name in BUILTIN_PROVIDERS},
            allow_http=settings.flow_allow_http_providers,
        )
        self.kit = runs.Toolkit(
            services=services,
            registry=registry,
            providers=builtin_providers(),
            external=external_provider(),
            limits=Limits(max_steps=settings.flow_max_steps, max_state_bytes=settings.flow_max_state_bytes),
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty: dict[str, None] = {}
        self._has_work = asyncio.Event()
        self._watch: dict[str, str] = {}
        self._wakeups: list[tuple[datetime, str]] = []
        self._wake_changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._driving: dict[str, asyncio.Task[None]] = {}
        self._loops: list[asyncio.Task[None]] = []

    # -- life ------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.services.hub.on_results(self._compute_finished)
        self.services.collections.on_changed(self._transfers_finished)
        run_ids, watch, drives = await self._db(lambda s: _recover(s, self.kit))
        self._watch.update(watch)
        for snapshot in drives:
            self._drive(snapshot)
        self._loops = [
            asyncio.create_task(self._work_loop(), name="flow-engine"),
            asyncio.create_task(self._wake_loop(), name="flow-wakeups"),
        ]
        self.kick(run_ids)
        if run_ids:
            log.info("flow engine: resuming %d active run(s)", len(run_ids))

    async def stop(self) -> None:
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        for task in [*self._loops, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _db(self, fn: Callable[[Session], T]) -> T:
        def work() -> T:
            with self.services.db.transaction() as session:
                return fn(session)

        return await anyio.to_thread.run_sync(work)

    # -- waking runs -----------------------------------------------------------------------------

    def kick(self, run_ids: Iterable[str]) -> None:
        """Advance these runs soon (callable from any thread)."""
        ids = list(run_ids)
        if not ids or self._loop is None:
            return

        def mark() -> None:
            for run_id in ids:
                self._dirty[run_id] = None
            self._has_work.set()

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            mark()
        else:
            self._loop.call_soon_threadsafe(mark)

    def _compute_finished(self, results: Sequence[TaskResult]) -> None:
        self.kick(run_id for r in results if (run_id := self._watch.get(r.task_group_id)) is not None)

    def _transfers_finished(self, transfer_ids: Sequence[str]) -> None:
        self.kick(run_id for t in transfer_ids if (run_id := self._watch.get(t)) is not None)

    async def _work_loop(self) -> None:
        while True:
            await self._has_work.wait()
            self._has_work.clear()
            while self._dirty:
                run_id = next(iter(self._dirty))
                del self._dirty[run_id]
                try:
                    effects = await self._db(lambda s, r=run_id: runs.advance(s, r, self.kit))  # type: ignore[misc]
                except Exception:
                    log.exception("flow engine: advancing run %s failed; it is retried in 5 s", run_id)
                    self._schedule(run_id, 5.0)
                    continue
                await self.after(effects)

    def _schedule(self, run_id: str, seconds: float) -> None:
        self._add_wakeup(utcnow() + timedelta(seconds=seconds), run_id)

    def _add_wakeup(self, at: datetime, run_id: str) -> None:
        heapq.heappush(self._wakeups, (at, run_id))
        self._wake_changed.set()

    async def _wake_loop(self) -> None:
        while True:
            self._wake_changed.clear()
            now = utcnow()
            due: list[str] = []
            while self._wakeups and self._wakeups[0][0] <= now:
                due.append(heapq.heappop(self._wakeups)[1])
            self.kick(due)
            delay = (self._wakeups[0][0] - now).total_seconds() if self._wakeups else 3600.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_changed.wait(), timeout=max(delay, 0.001))

    # -- after a commit --------------------------------------------------------------------------

    async def after(self, effects: runs.Effects) -> None:
        """Carry out what a committed transaction asked for: wire messages, watches, timers, drives."""
        # Watch before sending: a result must not arrive before we know whose it is.
        self._watch.update(effects.watch)
        for work in effects.after_commit:
            try:
                result = work()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("flow engine: post-commit work failed")
        for run_id in effects.ended:
            for ref in [ref for ref, owner in self._watch.items() if owner == run_id]:
                del self._watch[ref]
        for run_id, at in effects.wake.items():
            if at is not None:
                self._add_wakeup(at, run_id)
        for snapshot in effects.drive:
            self._drive(snapshot)

    def _drive(self, snapshot: ActionSnapshot) -> None:
        if snapshot.id in self._driving:
            return  # already driven (a resume while it runs must not start a second one)
        provider = self.kit.provider(snapshot.provider)

        async def drive() -> None:
            try:
                await provider.drive(snapshot, self)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("flow engine: action %s (%s) failed", snapshot.id, snapshot.provider)
                await self.report(
                    snapshot.id,
                    Progress(
                        "FAILED", {"code": "ProviderError", "description": f"{type(exc).__name__}: {exc}"}
                    ),
                )

        task = asyncio.create_task(drive(), name=f"action-{snapshot.id}")
        self._tasks.add(task)
        self._driving[snapshot.id] = task

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            if self._driving.get(snapshot.id) is finished:
                del self._driving[snapshot.id]

        task.add_done_callback(done)

    # -- the Reporter interface for background providers -----------------------------------------

    async def report(self, action_id: str, progress: Progress, *, log: str | None = None) -> None:
        def store(session: Session) -> str | None:
            row = session.get(ActionRow, action_id)
            if row is None or row.status in TERMINAL:
                return None
            runs.apply_progress(row, progress)
            if log:
                row.log = [
                    *row.log,
                    {"time": utcnow().isoformat(), "code": progress.status, "description": log},
                ]
            return row.run_id if row.status in TERMINAL or row.status == "INACTIVE" else None

        run_id = await self._db(store)
        if run_id is not None:
            self.kick([run_id])

    async def principal(self, user_id: str) -> Principal:
        def read(session: Session) -> Principal:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound(f"user {user_id} no longer exists")
            return principal_of(session, user)

        return await self._db(read)

    async def still_active(self, action_id: str) -> bool:
        def read(session: Session) -> bool:
            row = session.get(ActionRow, action_id)
            return row is not None and row.status not in TERMINAL

        return await self._db(read)

    async def token_for(self, user_id: str, *, ttl_seconds: int, purpose: str) -> str:
        def issue(session: Session) -> str:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound(f"user {user_id} no longer exists")
            _row, raw = issue_token(session, user, name=purpose[:100], ttl_seconds=ttl_seconds)
            return raw

        return await self._db(issue)

    # -- what the API calls ----------------------------------------------------------------------

    async def start_run(self, principal: Principal, flow_id: str, body: RunCreate) -> RunInfo:
        info, _new = await self.start_run_new(principal, flow_id, body)
        return info

    async def start_run_new(
        self, principal: Principal, flow_id: str, body: RunCreate
    ) -> tuple[RunInfo, bool]:
        """Start a run; (its info, whether it is new rather than a repeated request_id)."""

        def begin(session: Session) -> tuple[RunInfo, bool, runs.Effects]:
            run, new, effects = runs.start_run(session, principal, flow_id, body, self.kit)
            session.flush()
            return runs.run_info(session, principal, run), new, effects

        info, new, effects = await self._db(begin)
        await self.after(effects)
        return info, new

    async def cancel_run(self, principal: Principal, run_id: str) -> RunInfo:
        await self._db(lambda s: runs.request_cancel(s, principal, run_id))
        return await self._advance_and_show(principal, run_id)

    async def resume_run(self, principal: Principal, run_id: str) -> RunInfo:
        await self._db(lambda s: runs.resume_run(s, principal, run_id))
        drives = await self._db(lambda s: _drives_of(s, self.kit, run_id))
        for snapshot in drives:
            self._drive(snapshot)
        return await self._advance_and_show(principal, run_id)

    async def _advance_and_show(self, principal: Principal, run_id: str) -> RunInfo:
        effects = await self._db(lambda s: runs.advance(s, run_id, self.kit))
        await self.after(effects)
        return await self._db(lambda s: runs.run_info(s, principal, runs.get_run(s, principal, run_id)))


def _drives_of(session: Session, kit: runs.Toolkit, run_id: str | None = None) -> list[ActionSnapshot]:
    """Live actions whose provider works in the background (external ones included): drive them again."""
    query = select(ActionRow).where(ActionRow.status.in_(("ACTIVE", "INACTIVE")), ActionRow.started.is_(True))
    if run_id is not None:
        query = query.where(ActionRow.run_id == run_id)
    return [ActionSnapshot.of(row) for row in session.scalars(query) if kit.provider(row.provider).background]


def _recover(session: Session, kit: runs.Toolkit) -> tuple[list[str], dict[str, str], list[ActionSnapshot]]:
    run_ids = list(session.scalars(select(Run.id).where(Run.status.in_(runs.ACTIVE_STATUSES))))
    watch = {
        ref: run_id
        for ref, run_id in session.execute(
            select(ActionRow.ref, ActionRow.run_id).where(
                ActionRow.status.in_(("ACTIVE", "INACTIVE")),
                ActionRow.ref.is_not(None),
                ActionRow.run_id.is_not(None),
            )
        )
        if ref is not None and run_id is not None
    }
    return run_ids, watch, _drives_of(session, kit)
