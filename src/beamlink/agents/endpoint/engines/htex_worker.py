"""What a Parsl HighThroughputExecutor worker runs for each task: the runner, under a watchdog.

HTEX cannot stop a task once a worker has it, so the engine and the worker talk through files in the
engine's control directory (on a filesystem both see):

* ``started/<task id>``: written by the worker once the call has run for :data:`WATCH_PERIOD` (host, pid
  and the call's start time as JSON), which gives the engine its *started* event and, on this host, a
  pid to kill as a last resort (at once when the task has a timeout, for that fallback). A shorter call
  writes nothing: its outcome carries its start time, and two file operations per task (the worker's
  write, the engine's unlink) were a fifth of the time a no-op task cost end to end. So a call without
  a timeout that holds the GIL from its first 0.2 s (one long C call) cannot be killed on cancel: its
  cancel is reported at once, and the worker is busy until the call returns;
* ``cancel/<task id>``: written by the engine to cancel; a worker finding it before the call returns a
  cancelled outcome at once;
* ``killed/<task id>``: written by the watchdog (``timeout`` or ``cancelled``) right before it SIGKILLs its
  own worker process. The worker pool reports the dead worker as lost and starts another; the engine
  reads this file to report the task as timed out or cancelled rather than as a lost worker.

This module is imported in workers; it must stay importable without Parsl.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from beamlink import errors
from beamlink.agents.endpoint.runner import run_task
from beamlink.protocol.agent import TaskOutcome
from beamlink.protocol.compute import FunctionCode, TaskError

__all__ = [
    "CANCEL",
    "KILLED",
    "STARTED",
    "STARTED_FILE_KEY",
    "WATCH_PERIOD",
    "process_start_time",
    "run_in_htex_worker",
]

CANCEL = "cancel"
KILLED = "killed"
STARTED = "started"
WATCH_PERIOD = 0.2  # seconds between the watchdog's looks at the cancel file and the deadline


def _install_fast_serializer() -> None:
    # In a worker: return results with pickle (see parsl_serialize). Without Parsl there is nothing to do.
    with contextlib.suppress(ImportError):
        from beamlink.agents.endpoint.engines import parsl_serialize

        parsl_serialize.install()


_install_fast_serializer()


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (to tell it from a later process given the same pid)."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def _write(path: Path, text: str) -> None:
    # Write then rename, so a reader never sees half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def run_in_htex_worker(
    function: FunctionCode,
    args: str,
    task_id: str,
    timeout: float | None,
    output_limit: int,
    result_limit: int,
    control_dir: str,
) -> dict[str, Any]:
    """Run the task unless it was cancelled, SIGKILLing this worker past the timeout or on cancel."""
    control = Path(control_dir)
    cancel_file = control / CANCEL / task_id
    if cancel_file.exists():
        now = datetime.now(UTC)
        outcome = TaskOutcome(
            task_id=task_id,
            state="cancelled",
            error=TaskError(
                code=errors.TaskCancelled.code, message="the task was cancelled before it started"
            ),
            finished_at=now,
        )
        return outcome.model_dump(mode="json")

    started = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "create_time": _own_start_time(),
        "at": time.time(),
    }
    watched = _Watched(control, task_id, timeout, json.dumps(started))
    if timeout is not None:
        # At once: a call holding the GIL starves the watchdog, and the engine's fallback kill at the
        # deadline needs this file's pid.
        watched.write_started()
    _watchdog().watch(watched)
    try:
        reported = run_task(function, args, task_id, output_limit=output_limit, result_limit=result_limit)
    finally:
        _watchdog().release(watched)
    reported[STARTED_FILE_KEY] = watched.started_written
    return reported


STARTED_FILE_KEY = "beamlink_started_file"
"""In the returned outcome: whether ``started/<task id>`` was written (the engine then deletes it)."""


@functools.cache
def _own_start_time() -> float | None:
    return process_start_time(os.getpid())


class _Watched:
    """The call a worker is running, as its watchdog sees it."""

    def __init__(self, control: Path, task_id: str, timeout: float | None, started: str) -> None:
        self.control = control
        self.task_id = task_id
        self.started = started
        self.since = time.monotonic()
        self.deadline = self.since + timeout if timeout is not None else None
        self.started_written = False

    def write_started(self) -> None:
        with contextlib.suppress(OSError):  # no started event then; the task still runs
            _write(self.control / STARTED / self.task_id, self.started)
            self.started_written = True


class _Watchdog:
    """One thread per worker process (a worker runs one call at a time), not one per task: it writes
    the started file of a call that runs long enough, and SIGKILLs this process on cancel or timeout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: _Watched | None = None
        threading.Thread(target=self._run, name="beamlink-watchdog", daemon=True).start()

    def watch(self, watched: _Watched) -> None:
        # No wake-up: the watchdog looks every WATCH_PERIOD anyway, and waking it for every call
        # would cost a thread switch per task.
        with self._lock:
            self._current = watched

    def release(self, watched: _Watched) -> None:
        # Under the lock: once this returns, the watchdog neither kills us nor writes for this call.
        with self._lock:
            if self._current is watched:
                self._current = None

    def _run(self) -> None:
        while True:
            time.sleep(WATCH_PERIOD)
            with self._lock:
                watched = self._current
                if watched is not None and time.monotonic() - watched.since >= WATCH_PERIOD:
                    self._check(watched)

    def _check(self, watched: _Watched) -> None:
        """With the lock held: the call is still running."""
        if not watched.started_written:
            watched.write_started()
        if (watched.control / CANCEL / watched.task_id).exists():
            reason = "cancelled"
        elif watched.deadline is not None and time.monotonic() > watched.deadline:
            reason = "timeout"
        else:
            return
        try:
            _write(watched.control / KILLED / watched.task_id, reason)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)


@functools.cache
def _watchdog() -> _Watchdog:
    return _Watchdog()
