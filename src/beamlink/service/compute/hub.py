"""The live half of compute: which agents are connected, and who is waiting for which results.

Everything durable is in the database (:mod:`.tasks`); the hub only wakes things up. It lives on the
service's event loop; its ``notify_*``/``publish``/``cancel_on_agent`` methods may be called from any
thread (the synchronous request handlers run in a thread pool) and hop onto the loop.

One service process: connections are held in memory. Several replicas would route these wake-ups
through Redis or RabbitMQ (docs/architecture.md, "Compute").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from beamlink.protocol.agent import TaskDispatch
from beamlink.protocol.compute import TaskResult

__all__ = ["AgentLink", "ComputeHub"]

log = logging.getLogger(__name__)


class AgentLink(Protocol):
    """A connected agent as the hub sees it (implemented by gateway.AgentSession)."""

    endpoint_id: str
    ready: bool

    def sent_functions(self) -> set[str]: ...

    def wake(self) -> None: ...

    async def deliver(self, dispatch: TaskDispatch) -> None: ...

    async def cancel(self, task_ids: list[str]) -> None: ...

    async def replace(self) -> None: ...


class ComputeHub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._links: dict[str, AgentLink] = {}
        self._waiters: dict[str, set[asyncio.Future[TaskResult]]] = {}
        self._groups: dict[str, set[asyncio.Queue[TaskResult]]] = {}
        self._listeners: list[Callable[[Sequence[TaskResult]], None]] = []

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def _call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the hub's loop, whichever thread we are on."""
        if self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _spawn(self, make: Callable[[], Awaitable[None]]) -> None:
        def start() -> None:
            task = asyncio.ensure_future(make())
            task.add_done_callback(_log_failure)

        self._call(start)

    # -- agents ---------------------------------------------------------------------------------

    async def attach(self, link: AgentLink) -> None:
        """Register a connection; an older connection of the same endpoint is closed (the newest wins)."""
        old = self._links.get(link.endpoint_id)
        self._links[link.endpoint_id] = link
        if old is not None and old is not link:
            log.warning("endpoint %s connected again; closing its older connection", link.endpoint_id)
            await old.replace()

    def detach(self, link: AgentLink) -> bool:
        """Forget a connection; False when a newer one had already replaced it."""
        if self._links.get(link.endpoint_id) is link:
            del self._links[link.endpoint_id]
            return True
        return False

    def online(self) -> set[str]:
        return set(self._links)

    def notify_endpoint(self, endpoint_id: str) -> None:
        """New tasks are queued for this endpoint: its connection (if any) sends them."""

        def wake() -> None:
            link = self._links.get(endpoint_id)
            if link is not None:
                link.wake()

        self._call(wake)

    def link(self, endpoint_id: str) -> AgentLink | None:
        """The endpoint's connection if it is ready for tasks (read from any thread: a dict lookup)."""
        link = self._links.get(endpoint_id)
        return link if link is not None and link.ready else None

    def deliver(self, link: AgentLink, dispatch: TaskDispatch) -> None:
        """Send tasks already marked dispatched on ``link`` (from any thread, after their commit)."""
        self._spawn(lambda: link.deliver(dispatch))

    def cancel_on_agent(self, endpoint_id: str, task_ids: list[str]) -> None:
        link = self._links.get(endpoint_id)
        if link is not None:
            self._spawn(lambda: link.cancel(task_ids))

    # -- results --------------------------------------------------------------------------------

    def on_results(self, listener: Callable[[Sequence[TaskResult]], None]) -> None:
        """Call ``listener`` (on the loop) with every batch of finished tasks (the flow engine's wake-up)."""
        self._listeners.append(listener)

    def publish(self, results: Sequence[TaskResult]) -> None:
        """Tasks finished: wake whoever waits on them or streams their group."""
        if not results:
            return
        batch = list(results)

        def deliver() -> None:
            for result in batch:
                for future in self._waiters.pop(result.id, ()):
                    if not future.done():
                        future.set_result(result)
                for queue in self._groups.get(result.task_group_id, ()):
                    queue.put_nowait(result)
            for listener in self._listeners:
                try:
                    listener(batch)
                except Exception:
                    log.exception("a compute result listener failed")

        self._call(deliver)

    async def wait_for(
        self, task_id: str, timeout: float, current: Callable[[], Awaitable[TaskResult | None]]
    ) -> TaskResult | None:
        """The task's result once it finishes (None after ``timeout`` seconds).

        ``current`` reads the task's finished result from the database (None while unfinished); it is
        called after the waiter is registered, so a result published in between is not missed.
        """
        future: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, set()).add(future)
        try:
            done = await current()
            if done is not None:
                return done
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[task_id]

    def subscribe(self, task_group_id: str) -> asyncio.Queue[TaskResult]:
        queue: asyncio.Queue[TaskResult] = asyncio.Queue()
        self._groups.setdefault(task_group_id, set()).add(queue)
        return queue

    def unsubscribe(self, task_group_id: str, queue: asyncio.Queue[TaskResult]) -> None:
        queues = self._groups.get(task_group_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._groups[task_group_id]


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("compute hub callback failed", exc_info=task.exception())
