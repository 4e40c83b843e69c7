"""Thread engine: tasks run in threads of the agent process.

Cheapest to start and the only engine whose functions share the agent's memory, but nothing isolates a
task: a thread cannot be killed. A task past its timeout is *reported* ``TASK_TIMEOUT`` at its deadline
while its thread runs on to the end, its result then dropped; a running task cannot be cancelled, and a
function calling ``os._exit`` ends the agent. Use the process engine for untrusted or long functions.

The pool is a handful of daemon threads reading one queue rather than
:class:`concurrent.futures.ThreadPoolExecutor`, whose threads the interpreter joins at exit: a function
that never returns would keep the endpoint from ever stopping. A thread that outlives its task's timeout
is replaced at once, so capacity stays at ``max_workers``; it exits when its call finally returns.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any

from beamlink import errors
from beamlink.agents.endpoint.engines.base import (
    Engine,
    Held,
    Job,
    OnDone,
    OnStarted,
    cancelled,
    failed,
    timed_out,
)
from beamlink.agents.endpoint.runner import run_task
from beamlink.protocol.agent import TaskOutcome

__all__ = ["ThreadEngine"]

logger = logging.getLogger(__name__)


class ThreadEngine(Engine):
    name = "thread"

    def __init__(
        self,
        *,
        max_workers: int = 4,
        environment: dict[str, str] | None = None,
        on_started: OnStarted,
        on_done: OnDone,
    ) -> None:
        super().__init__(on_started=on_started, on_done=on_done)
        self.max_workers = max_workers
        self.environment = dict(environment or {})
        self._queue: queue.SimpleQueue[Held | None] = queue.SimpleQueue()
        self._threads: set[threading.Thread] = set()
        self._abandoned = 0  # threads still running a task already reported as timed out
        self._timers: dict[str, threading.Timer] = {}
        self._started = False

    def start(self) -> None:
        # Threads share the process environment: the configured variables apply to the whole agent.
        os.environ.update(self.environment)
        with self._lock:
            self._started = True
            for _ in range(self.max_workers):
                self._spawn()

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work, name=f"beamlink-task-{len(self._threads)}", daemon=True)
        self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            entry = self._queue.get()
            if entry is None:
                break
            self._run(entry)
            if entry.extra.get("abandoned"):
                break  # replaced when its task timed out
        with self._lock:
            self._threads.discard(me)

    def submit(self, job: Job) -> None:
        if not self._started:
            raise RuntimeError("start the thread engine before submitting")
        entry = self._hold(job)
        if entry is not None:
            self._queue.put(entry)

    def _run(self, entry: Held) -> None:
        if not self._mark_started(entry):
            return  # cancelled while queued, or the engine was shut down
        job = entry.job
        timer: threading.Timer | None = None
        if job.timeout is not None:
            timer = threading.Timer(job.timeout, self._timed_out, (entry,))
            timer.daemon = True
            with self._lock:
                self._timers[job.task_id] = timer
            timer.start()
        try:
            result = run_task(
                job.function,
                job.args,
                job.task_id,
                output_limit=job.output_limit,
                result_limit=job.result_limit,
            )
            outcome = TaskOutcome.model_validate(result)
        except Exception as exc:  # run_task does not raise; this guards the agent against a bug in it
            logger.exception("task %s: the runner failed", job.task_id)
            outcome = failed(job.task_id, errors.BeamlinkError.code, f"the runner failed: {exc!r}")
        finally:
            if timer is not None:
                timer.cancel()
                with self._lock:
                    self._timers.pop(job.task_id, None)
        with self._lock:
            entry.extra["returned"] = True  # a timer firing from now on is too late to matter
            if entry.extra.get("abandoned"):
                self._abandoned -= 1
        self._report(entry, outcome)

    def _timed_out(self, entry: Held) -> None:
        job = entry.job
        assert job.timeout is not None
        with self._lock:
            if not self._is_current(entry) or entry.extra.get("returned"):
                return
            entry.extra["abandoned"] = True
            self._abandoned += 1
            # The stuck thread goes on; a new one takes its place and the stuck one leaves when done.
            self._spawn()
        logger.warning(
            "task %s ran past its %s s timeout; its thread cannot be stopped", job.task_id, job.timeout
        )
        self._report(entry, timed_out(job, started_at=entry.started_at))

    def cancel(self, task_id: str) -> bool:
        with self._lock:
            entry = self._held.get(task_id)
            if entry is None or entry.started_at is not None:
                return False  # unknown, finished, or running: a thread cannot be stopped
            entry.cancel_requested = True
        return self._report(entry, cancelled(task_id))

    def shutdown(self) -> list[str]:
        if self._closed:
            return []
        ids = self._close()
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            threads = list(self._threads)
        # Queued jobs are dropped (their ids are returned; a worker that still picks one up finds the engine
        # closed). A thread still inside a call is a daemon and does not hold the process back.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in threads:
            self._queue.put(None)
        return ids

    def _engine_stats(self) -> dict[str, Any]:
        with self._lock:
            return {"workers": self.max_workers, "threads": len(self._threads), "abandoned": self._abandoned}
