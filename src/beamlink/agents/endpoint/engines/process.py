"""Process engine: tasks run in a pool of worker processes on this host (pebble).

Workers are started with the *spawn* method: the agent has threads and an asyncio loop, which a forked
child would inherit in an inconsistent state, and a forkserver would be one more process left behind at
shutdown. pebble gives what ``concurrent.futures`` lacks: a per-task timeout that kills the worker, the
cancellation of a running task (its worker is terminated), and a worker that died under a task reported
as such while the pool starts a replacement.

Multiprocessing's resource tracker (one helper process per interpreter, started with the first pool and
ending with the agent) is not a worker and is left running.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import CancelledError, Future
from typing import Any

import psutil
from pebble import ProcessExpired, ProcessPool

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
from beamlink.protocol.compute import FunctionCode

__all__ = ["ProcessEngine", "describe_exit"]

logger = logging.getLogger(__name__)

_POLL = 0.05  # seconds between checks for tasks that began running (pebble has no callback for it)
_SILENT_DEATH_GRACE = 0.5


def describe_exit(code: int | None) -> str:
    """``exit code 1``, ``killed by signal SIGKILL``, or ``exit status unknown``."""
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _init_worker(environment: dict[str, str]) -> None:
    os.environ.update(environment)


def _run_in_worker(
    function: FunctionCode, args: str, task_id: str, output_limit: int, result_limit: int
) -> dict[str, Any]:
    return run_task(function, args, task_id, output_limit=output_limit, result_limit=result_limit)


class ProcessEngine(Engine):
    name = "process"

    def __init__(
        self,
        *,
        max_workers: int = os.cpu_count() or 1,
        max_tasks_per_child: int | None = None,
        environment: dict[str, str] | None = None,
        on_started: OnStarted,
        on_done: OnDone,
    ) -> None:
        super().__init__(on_started=on_started, on_done=on_done)
        self.max_workers = max_workers
        self.max_tasks_per_child = max_tasks_per_child
        self.environment = dict(environment or {})
        self._pool: Any = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._submit_lock = threading.Lock()

    def start(self) -> None:
        self._pool = ProcessPool(
            max_workers=self.max_workers,
            max_tasks=self.max_tasks_per_child or 0,
            initializer=_init_worker,
            initargs=(self.environment,),
            context=multiprocessing.get_context("spawn"),
        )
        self._watcher = threading.Thread(target=self._watch, name="beamlink-process-engine", daemon=True)
        self._watcher.start()

    def submit(self, job: Job) -> None:
        if self._pool is None:
            raise RuntimeError("start the process engine before submitting")
        entry = self._hold(job)
        if entry is None:
            return
        with self._submit_lock:
            future = self._pool.schedule(
                _run_in_worker,
                args=(job.function, job.args, job.task_id, job.output_limit, job.result_limit),
                timeout=job.timeout,
            )
        entry.handle = future
        future.add_done_callback(lambda done: self._finished(entry, done))

    def _watch(self) -> None:
        while not self._stop.wait(_POLL):
            try:
                self._look()
            except Exception:
                logger.exception("watching the process pool failed")

    def _look(self) -> None:
        # pebble marks a future running when a worker acknowledges the task, right before the call.
        with self._lock:
            entries = [e for e in self._held.values() if e.handle is not None]
        for entry in entries:
            if entry.started_at is None and entry.handle.running():
                self._mark_started(entry)
        running = [e for e in entries if e.started_at is not None]
        if running:
            self._find_silent_deaths(running)

    def _find_silent_deaths(self, running: list[Held]) -> None:
        """Report tasks whose worker exited with status 0 (``os._exit(0)``): pebble never reports those."""
        try:
            manager = self._pool._pool_manager
            workers = dict(manager.worker_manager.workers)
            worker_of = {
                id(task.future): task.worker_id for task in list(manager.task_manager.tasks.values())
            }
        except (AttributeError, RuntimeError):  # pebble internals moved, or changed while we looked
            return
        now = time.monotonic()
        for entry in running:
            pid = worker_of.get(id(entry.handle))
            if not pid or pid in workers:
                entry.extra.pop("gone_since", None)
                continue
            # Gone from the pool: pebble reports a non-zero exit itself within a moment; give it that.
            since = entry.extra.setdefault("gone_since", now)
            if now - since > _SILENT_DEATH_GRACE:
                self._report(
                    entry,
                    failed(
                        entry.job.task_id,
                        errors.WorkerLost.code,
                        "the worker process running the task exited (exit code 0) before the task finished",
                        started_at=entry.started_at,
                    ),
                )

    def _finished(self, entry: Held, future: Future[Any]) -> None:
        if not self._is_current(entry):
            return  # reported already (cancelled, silent death) or handed back at shutdown
        job = entry.job
        if future.cancelled():
            self._report(entry, cancelled(job.task_id, started_at=entry.started_at))
            return
        error = future.exception()
        if error is None:
            self._mark_started(entry)  # a task shorter than the watch period still gets its event
            self._report(entry, TaskOutcome.model_validate(future.result()))
            return
        if isinstance(error, TimeoutError):
            outcome = timed_out(job, started_at=entry.started_at)
        elif isinstance(error, ProcessExpired):
            outcome = failed(
                job.task_id,
                errors.WorkerLost.code,
                f"the worker process running the task died ({describe_exit(error.exitcode)})",
            )
        elif isinstance(error, CancelledError):
            outcome = cancelled(job.task_id, started_at=entry.started_at)
        else:
            logger.error("task %s: the process pool failed: %r", job.task_id, error)
            outcome = failed(job.task_id, errors.BeamlinkError.code, f"the process pool failed: {error!r}")
        self._report(entry, outcome)

    def cancel(self, task_id: str) -> bool:
        with self._lock:
            entry = self._held.get(task_id)
            if entry is None or entry.handle is None:
                return False
            entry.cancel_requested = True
        # A queued future is cancelled at once; a running one too, and pebble then terminates its worker.
        if not entry.handle.cancel():
            return False
        self._report(entry, cancelled(task_id, started_at=entry.started_at))
        return True

    def shutdown(self) -> list[str]:
        if self._closed:
            return []
        ids = self._close()
        self._stop.set()
        pool = self._pool
        if pool is not None:
            workers = self._worker_processes()
            pool.stop()
            pool.join(timeout=10)
            # pebble terminates its workers; make sure, since a worker left behind would outlive the agent.
            for process in workers:
                try:
                    process.kill()
                    process.wait(timeout=5)
                except psutil.Error:
                    pass
        if self._watcher is not None:
            self._watcher.join(timeout=2)
        return ids

    def _worker_processes(self) -> list[psutil.Process]:
        pool = self._pool
        try:
            pids = list(pool._pool_manager.worker_manager.workers)
        except RuntimeError:  # changed while we looked
            return []
        except AttributeError:  # a pebble release that moved its internals: fall back to our children
            pids = [child.pid for child in multiprocessing.active_children()]
        found = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(pid))
        return found

    def _engine_stats(self) -> dict[str, Any]:
        alive = 0
        if self._pool is not None and not self._closed:
            alive = len(self._worker_processes())
        return {"workers": self.max_workers, "worker_processes": alive}
