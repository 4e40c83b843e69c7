"""What a Parsl HighThroughputExecutor worker runs for each task: the runner, under a watchdog.

HTEX cannot stop a task once a worker has it, so the engine and the worker talk through files in the
engine's control directory (on a filesystem both see):

* ``started/<task id>``: written by the worker as the call begins (host, pid, start time as JSON), which
  gives the engine its *started* event and, on this host, a pid to kill as a last resort;
* ``cancel/<task id>``: written by the engine to cancel; a worker finding it before the call returns a
  cancelled outcome at once;
* ``killed/<task id>``: written by the watchdog (``timeout`` or ``cancelled``) right before it SIGKILLs its
  own worker process. The worker pool reports the dead worker as lost and starts another; the engine
  reads this file to report the task as timed out or cancelled rather than as a lost worker.

This module is imported in workers; it must stay importable without Parsl.
"""

from __future__ import annotations

import contextlib
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

__all__ = ["CANCEL", "KILLED", "STARTED", "WATCH_PERIOD", "process_start_time", "run_in_htex_worker"]

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

    pid = os.getpid()
    started = {
        "host": socket.gethostname(),
        "pid": pid,
        "create_time": process_start_time(pid),
        "at": time.time(),
    }
    with contextlib.suppress(OSError):  # no started event then; the task still runs
        _write(control / STARTED / task_id, json.dumps(started))

    done = threading.Event()
    guard = threading.Lock()
    deadline = time.monotonic() + timeout if timeout is not None else None

    def watch() -> None:
        while not done.wait(WATCH_PERIOD):
            if cancel_file.exists():
                reason = "cancelled"
            elif deadline is not None and time.monotonic() > deadline:
                reason = "timeout"
            else:
                continue
            with guard:
                if done.is_set():
                    return
                try:
                    _write(control / KILLED / task_id, reason)
                finally:
                    os.kill(pid, signal.SIGKILL)

    threading.Thread(target=watch, name=f"beamlink-watchdog-{task_id}", daemon=True).start()
    try:
        return run_task(function, args, task_id, output_limit=output_limit, result_limit=result_limit)
    finally:
        with guard:
            done.set()
