"""Parsl engine: tasks run through a Parsl HighThroughputExecutor (HTEX), on this host or a cluster.

The executor is driven directly, without a DataFlowKernel, much as Globus Compute's GlobusComputeEngine
does: the engine sets its ``run_dir``, ``run_id`` and the provider's ``script_dir``, starts it, and runs a
:class:`parsl.jobs.job_status_poller.JobStatusPoller` so that blocks are provisioned (``init_blocks`` at
once, then between ``min_blocks`` and ``max_blocks`` by the chosen strategy) and scaled in when idle.

Files under ``run_dir``: ``htex/`` (the interchange's log, and per block the manager and worker logs),
``submit_scripts/`` (the provider's job scripts with their ``.out``/``.err``: look there first when blocks
do not start), ``control/`` (see :mod:`beamlink.agents.endpoint.engines.htex_worker`; wiped at start).

Timeouts and cancellation of running tasks go through the control files: the worker's watchdog SIGKILLs
its own process. As a fallback, when the watchdog has not acted two seconds past the deadline (a function
holding the GIL in C code starves it), the engine kills a worker running on this host itself, and for a
worker elsewhere reports the timeout anyway. Both need ``run_dir`` on a filesystem the workers share.

At shutdown the poller scales every block in, the executor stops the interchange, and any process still
carrying this run's marker variable (``BEAMLINK_ENGINE_RUN``, exported by the provider's ``worker_init``)
on this host is killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost
from parsl.jobs.job_status_poller import JobStatusPoller
from parsl.utils import Timer

from beamlink import errors
from beamlink.agents.endpoint.engines import parsl_serialize
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
from beamlink.agents.endpoint.engines.htex_worker import (
    CANCEL,
    KILLED,
    STARTED,
    STARTED_FILE_KEY,
    process_start_time,
    run_in_htex_worker,
)
from beamlink.protocol.agent import TaskOutcome

__all__ = ["MARKER_VARIABLE", "ParslEngine", "processes_of_run"]

logger = logging.getLogger(__name__)

MARKER_VARIABLE = "BEAMLINK_ENGINE_RUN"
_POLL = 0.2  # seconds between looks at the control directory
_GRACE = 2.0  # seconds the worker's watchdog gets before the engine acts itself
_MANAGERS_PERIOD = 1.0  # seconds between questions to the interchange about its managers, for stats()


def processes_of_run(marker: str) -> list[psutil.Process]:
    """Processes of this user on this host whose environment carries ``BEAMLINK_ENGINE_RUN=marker``."""
    found = []
    me = os.getuid()
    for process in psutil.process_iter(["uids"]):
        try:
            uids = process.info.get("uids")
            if uids is None or uids.real != me or process.pid == os.getpid():
                continue
            if process.environ().get(MARKER_VARIABLE) == marker:
                found.append(process)
        except psutil.Error:
            continue
    return found


class _Poller(JobStatusPoller):
    """JobStatusPoller whose polls never overlap, so the engine may poll once itself right at start."""

    def __init__(self, **kwargs: Any) -> None:
        self._poll_lock = threading.Lock()
        super().__init__(**kwargs)

    def poll(self) -> None:
        with self._poll_lock:
            super().poll()


class ParslEngine(Engine):
    name = "parsl"

    def __init__(
        self,
        executor: Any,
        *,
        run_dir: Path,
        strategy: str = "simple",
        max_idletime: float = 120.0,
        strategy_period: float = 5.0,
        on_started: OnStarted,
        on_done: OnDone,
    ) -> None:
        """``executor``: a HighThroughputExecutor not yet started (see ``ParslEngineConfig.executor``)."""
        super().__init__(on_started=on_started, on_done=on_done)
        self.executor = executor
        self.run_dir = Path(run_dir).absolute()
        self.control_dir = self.run_dir / "control"
        self.strategy = strategy
        self.max_idletime = max_idletime
        self.strategy_period = strategy_period
        self.marker = uuid.uuid4().hex
        self._host = socket.gethostname()
        self._poller: _Poller | None = None
        self._live: dict[str, Held] = {}  # submitted and not yet come back from the executor
        self._submit_lock = threading.Lock()
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._managers: dict[str, Any] = {"managers": 0, "workers": 0, "idle_workers": 0}

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.shutdown()  # an interchange or a block may already be running
            raise

    def _start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Old control files would cancel a task re-dispatched after a restart under the same id.
        shutil.rmtree(self.control_dir, ignore_errors=True)
        for name in (CANCEL, KILLED, STARTED):
            (self.control_dir / name).mkdir(parents=True)

        parsl_serialize.install()
        executor = self.executor
        executor.run_dir = str(self.run_dir)
        executor.run_id = self.marker
        provider = executor.provider
        if hasattr(provider, "script_dir"):
            provider.script_dir = str(self.run_dir / "submit_scripts")
            os.makedirs(provider.script_dir, exist_ok=True)
        if hasattr(provider, "worker_init"):
            provider.worker_init = f"export {MARKER_VARIABLE}={self.marker}\n{provider.worker_init or ''}"
        executor.start()

        self._poller = _Poller(
            strategy=self.strategy, max_idletime=self.max_idletime, strategy_period=self.strategy_period
        )
        self._poller.add_executors([executor])
        self._poller.poll()  # provision init_blocks now rather than one strategy period from now
        self._monitor = threading.Thread(target=self._watch, name="beamlink-parsl-engine", daemon=True)
        self._monitor.start()

    def shutdown(self) -> list[str]:
        if self._closed:
            return []
        ids = self._close()
        self._stop.set()
        if self._poller is not None:
            try:
                self._scale_in(self._poller)
            except Exception:
                logger.exception("scaling in the parsl blocks failed")
        try:
            self.executor.shutdown()
        except Exception:
            logger.exception("the parsl executor did not shut down cleanly")
        self._kill_leftovers()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        return ids

    def _scale_in(self, poller: _Poller) -> None:
        executor = self.executor
        interchange = getattr(executor, "interchange_proc", None)
        if interchange is not None and interchange.poll() is None:
            poller.close(timeout=30)  # stops polling, then scales every block in through the interchange
            return
        # Without an interchange, scaling in would wait forever for its answer: cancel the jobs directly.
        Timer.close(poller, timeout=30)
        jobs = list(getattr(executor, "blocks_to_job_id", {}).values())
        if jobs:
            executor.provider.cancel(jobs)

    def _kill_leftovers(self) -> None:
        leftovers = processes_of_run(self.marker)
        for process in leftovers:
            with contextlib.suppress(psutil.Error):
                process.terminate()
        _, alive = psutil.wait_procs(leftovers, timeout=3)
        for process in alive:
            logger.warning("killing parsl process %s left after shutdown", process.pid)
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(alive, timeout=3)

    # -- tasks -----------------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        if self._poller is None:
            raise RuntimeError("start the parsl engine before submitting")
        entry = self._hold(job)
        if entry is None:
            return
        with self._lock:
            self._live[job.task_id] = entry
        try:
            with self._submit_lock:  # the executor's outgoing ZMQ socket is not thread-safe
                future = self.executor.submit(
                    run_in_htex_worker,
                    {},
                    job.function,
                    job.args,
                    job.task_id,
                    job.timeout,
                    job.output_limit,
                    job.result_limit,
                    str(self.control_dir),
                )
        except Exception as exc:
            with self._lock:
                self._live.pop(job.task_id, None)
            logger.error("task %s: parsl refused it: %r", job.task_id, exc)
            self._report(
                entry, failed(job.task_id, errors.BeamlinkError.code, f"the parsl executor failed: {exc}")
            )
            return
        entry.handle = future
        future.add_done_callback(lambda done: self._came_back(entry, done))

    def cancel(self, task_id: str) -> bool:
        with self._lock:
            entry = self._held.get(task_id)
            if entry is None:
                return False
            entry.cancel_requested = True
            entry.extra["cancel_at"] = time.monotonic()
        try:
            (self.control_dir / CANCEL / task_id).touch()
        except OSError as exc:
            logger.error("cannot write the cancel file of task %s: %s", task_id, exc)
            return False
        # Reported now: a queued task returns at once when it reaches a worker, a running one is killed.
        return self._report(entry, cancelled(task_id, started_at=entry.started_at))

    def _came_back(self, entry: Held, future: Future[Any]) -> None:
        task_id = entry.job.task_id
        with self._lock:
            if self._live.get(task_id) is entry:
                del self._live[task_id]
        error = future.exception()
        if error is None and not entry.cancel_requested:
            # The common case, kept to one file operation: the outcome carries its start time, and
            # nothing was killed (a killed worker returns no result).
            reported = future.result()
            wrote_started = reported.pop(STARTED_FILE_KEY, True)
            outcome = TaskOutcome.model_validate(reported)
            if entry.started_at is None and outcome.started_at is None:
                # Otherwise the outcome carries the start: telling on_started as well cost the agent a
                # second hop onto its loop for every task, for a start it drops once the result is there.
                self._mark_started(entry, datetime.now(UTC))
            if wrote_started:  # only calls that ran for a watch period leave one
                (self.control_dir / STARTED / task_id).unlink(missing_ok=True)
            self._report(entry, outcome)
            return
        reason = self._killed_reason(task_id)
        if entry.started_at is None and (info := self._started_info(task_id)) is not None:
            # Shorter than a look at the control directory: the started event still comes first.
            self._mark_started(entry, datetime.fromtimestamp(float(info.get("at", time.time())), UTC))
        for name in (CANCEL, KILLED, STARTED):
            (self.control_dir / name / task_id).unlink(missing_ok=True)
        if error is None:
            reported = future.result()
            reported.pop(STARTED_FILE_KEY, None)
            self._report(entry, TaskOutcome.model_validate(reported))
        elif reason == "timeout" or entry.extra.get("forced") == "timeout":
            self._report_timeout(entry)
        elif reason == "cancelled" or entry.cancel_requested:
            self._report(entry, cancelled(task_id, started_at=entry.started_at))
        elif isinstance(error, WorkerLost | ManagerLost):
            self._report(
                entry,
                failed(
                    task_id,
                    errors.WorkerLost.code,
                    f"the worker process running the task died (parsl: {error})",
                    started_at=entry.started_at,
                ),
            )
        else:
            logger.error("task %s: the parsl executor failed: %r", task_id, error)
            self._report(
                entry,
                failed(
                    task_id,
                    errors.BeamlinkError.code,
                    f"the parsl executor failed: {type(error).__name__}: {error}",
                ),
            )

    def _report_timeout(self, entry: Held) -> None:
        self._report(entry, timed_out(entry.job, started_at=entry.started_at))

    def _killed_reason(self, task_id: str) -> str | None:
        try:
            return (self.control_dir / KILLED / task_id).read_text().strip() or None
        except OSError:
            return None

    # -- the control directory -------------------------------------------------------------------

    def _watch(self) -> None:
        refreshed = 0.0
        while not self._stop.wait(_POLL):
            try:
                self._look()
                if time.monotonic() - refreshed >= _MANAGERS_PERIOD:
                    refreshed = time.monotonic()
                    self._refresh_managers()
            except Exception:
                logger.exception("watching the parsl control directory failed")

    def _refresh_managers(self) -> None:
        # Asked here rather than in stats(): a heartbeat must not wait on the interchange.
        try:
            managers = list(self.executor.connected_managers())
        except Exception as exc:
            self._managers = {"managers_error": str(exc)}
            return
        self._managers = {
            "managers": len(managers),
            "workers": sum(int(m.get("worker_count", 0)) for m in managers),
            "idle_workers": sum(
                max(0, int(m.get("worker_count", 0)) - int(m.get("tasks", 0)))
                for m in managers
                if m.get("active")
            ),
        }

    def _look(self) -> None:
        with self._lock:
            live = list(self._live.values())
        if not live:
            return
        started = set(os.listdir(self.control_dir / STARTED))
        killed = set(os.listdir(self.control_dir / KILLED))
        now = time.monotonic()
        for entry in live:
            task_id = entry.job.task_id
            if "worker" not in entry.extra:
                info = self._started_info(task_id) if task_id in started else None
                if info is None:
                    continue
                entry.extra["worker"] = info
                entry.extra["seen_at"] = now
                self._mark_started(entry, datetime.fromtimestamp(float(info.get("at", time.time())), UTC))
            reason = self._killed_reason(task_id) if task_id in killed else None
            if reason == "timeout":
                self._report_timeout(entry)
            elif reason == "cancelled":
                self._report(entry, cancelled(task_id, started_at=entry.started_at))
            elif "forced" not in entry.extra:
                self._enforce(entry, now)

    def _enforce(self, entry: Held, now: float) -> None:
        """Act for a watchdog that did not: kill a local worker, or report the timeout regardless."""
        job = entry.job
        if entry.cancel_requested and now > entry.extra.get("cancel_at", now) + _GRACE:
            reason = "cancelled"
        elif job.timeout is not None and now > entry.extra["seen_at"] + job.timeout + _GRACE:
            reason = "timeout"
        else:
            return
        entry.extra["forced"] = reason
        info = entry.extra["worker"]
        pid = info.get("pid")
        # Only the process that wrote the file: a pid can be reused once that process is gone.
        local = info.get("host") == self._host and isinstance(pid, int)
        if local and process_start_time(pid) == info.get("create_time"):
            logger.warning(
                "task %s: its watchdog did not act; killing worker %s (%s)", job.task_id, pid, reason
            )
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if reason == "timeout":
            self._report_timeout(entry)

    def _started_info(self, task_id: str) -> dict[str, Any] | None:
        try:
            info = json.loads((self.control_dir / STARTED / task_id).read_text())
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def _engine_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = dict(self._managers)
        blocks: dict[str, int] = {}
        for status in dict(getattr(self.executor, "status_facade", {}) or {}).values():
            state = getattr(status, "status_name", str(status))
            blocks[state] = blocks.get(state, 0) + 1
        stats["blocks"] = blocks
        stats["outstanding"] = self.executor.outstanding() if hasattr(self.executor, "outstanding") else None
        return stats
