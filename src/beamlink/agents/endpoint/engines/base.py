"""The one interface every engine implements, and the bookkeeping they share.

An engine is handed :class:`Job` objects and reports each exactly once through ``on_done`` (a
:class:`~beamlink.protocol.agent.TaskOutcome`), from whatever thread learns the outcome first. The
exactly-once rule lives here: a job is *held* from ``submit`` until its first report, and any later report
for it (a result arriving after a timeout, say) is dropped. ``shutdown`` returns the jobs still held and
reports none of them: the agent hands those back to the service.

``on_started`` tells of a call that began while it is still running, at most once; a call whose end is
learned first (a short Parsl task) may report its start only in its outcome's ``started_at``.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from beamlink import errors
from beamlink.protocol.agent import TaskOutcome
from beamlink.protocol.compute import FunctionCode, TaskError

__all__ = [
    "Engine",
    "Held",
    "Job",
    "OnDone",
    "OnStarted",
    "cancelled",
    "failed",
    "timed_out",
    "timeout_message",
]

logger = logging.getLogger(__name__)

OnStarted = Callable[[str, datetime], None]
OnDone = Callable[[TaskOutcome], None]


@dataclass
class Job:
    """One task for an engine to run."""

    task_id: str
    function: FunctionCode
    args: str
    timeout: float | None = None
    result_limit: int = 10_000_000
    output_limit: int = 65_536


def _now() -> datetime:
    return datetime.now(UTC)


def failed(task_id: str, code: str, message: str, *, started_at: datetime | None = None) -> TaskOutcome:
    return TaskOutcome(
        task_id=task_id,
        state="failed",
        error=TaskError(code=code, message=message),
        started_at=started_at,
        finished_at=_now(),
    )


def cancelled(task_id: str, *, started_at: datetime | None = None) -> TaskOutcome:
    message = (
        "the task was cancelled while it ran" if started_at else "the task was cancelled before it started"
    )
    return TaskOutcome(
        task_id=task_id,
        state="cancelled",
        error=TaskError(code=errors.TaskCancelled.code, message=message),
        started_at=started_at,
        finished_at=_now(),
    )


def timeout_message(timeout: float) -> str:
    return f"the task ran past its {timeout:g} s timeout"


def timed_out(job: Job, *, started_at: datetime | None = None) -> TaskOutcome:
    assert job.timeout is not None
    return failed(job.task_id, errors.TaskTimeout.code, timeout_message(job.timeout), started_at=started_at)


@dataclass(eq=False)
class Held:
    """An engine's record of a job between submit and its report (compared by identity)."""

    job: Job
    started_at: datetime | None = None
    cancel_requested: bool = False
    handle: Any = None  # the engine's future or similar
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(ABC):
    """Runs jobs; see the module docstring for the reporting contract."""

    name: str = "engine"

    def __init__(self, *, on_started: OnStarted, on_done: OnDone) -> None:
        self._on_started = on_started
        self._on_done = on_done
        self._lock = threading.RLock()
        self._held: dict[str, Held] = {}
        self._closed = False
        self._counts = {"success": 0, "failed": 0, "cancelled": 0}

    # -- the interface ---------------------------------------------------------------------------

    @abstractmethod
    def start(self) -> None:
        """Start workers (and whatever else the engine needs); submit may be called after it."""

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Queue a job. A job whose task id is already held is ignored (delivery is at-least-once)."""

    @abstractmethod
    def cancel(self, task_id: str) -> bool:
        """Cancel a held job: True when it is (or will promptly be) reported cancelled."""

    @abstractmethod
    def shutdown(self) -> list[str]:
        """Stop accepting jobs and every worker; the ids of the jobs not reported (they never will be)."""

    def held(self) -> list[str]:
        """Ids of jobs submitted and not yet reported."""
        with self._lock:
            return list(self._held)

    def in_flight(self) -> int:
        """How many jobs are submitted and not yet reported."""
        with self._lock:
            return len(self._held)

    def stats(self) -> dict[str, Any]:
        """Counts for heartbeats: queued, running, workers and the engine's own figures. Never blocks long."""
        with self._lock:
            running = sum(1 for entry in self._held.values() if entry.started_at is not None)
            counts = {
                "engine": self.name,
                "queued": len(self._held) - running,
                "running": running,
                "completed": dict(self._counts),
            }
        return {**counts, **self._engine_stats()}

    # -- for subclasses --------------------------------------------------------------------------

    def _engine_stats(self) -> dict[str, Any]:
        return {}

    def _hold(self, job: Job) -> Held | None:
        """Record a new job; None when it is already held or the engine is shut down."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.name} engine is shut down")
            if job.task_id in self._held:
                logger.info("task %s is already held; ignoring it", job.task_id)
                return None
            entry = Held(job)
            self._held[job.task_id] = entry
            return entry

    def _is_current(self, entry: Held) -> bool:
        with self._lock:
            return not self._closed and self._held.get(entry.job.task_id) is entry

    def _mark_started(self, entry: Held, at: datetime | None = None) -> bool:
        """Record that the job's call began and tell on_started, once; False if it is no longer held."""
        with self._lock:
            if not self._is_current(entry) or entry.started_at is not None:
                return False
            started = entry.started_at = at or _now()
        try:
            # The call's own start time: the parsl engine learns of a start by polling, a moment later.
            self._on_started(entry.job.task_id, started)
        except Exception:
            logger.exception("on_started failed for task %s", entry.job.task_id)
        return True

    def _report(self, entry: Held, outcome: TaskOutcome) -> bool:
        """Report an outcome if it is the first for this submission; later ones are dropped."""
        with self._lock:
            if not self._is_current(entry):
                return False
            del self._held[entry.job.task_id]
            self._counts[outcome.state] += 1
        if outcome.started_at is None and entry.started_at is not None:
            outcome = outcome.model_copy(update={"started_at": entry.started_at})
        try:
            self._on_done(outcome)
        except Exception:
            logger.exception("on_done failed for task %s", entry.job.task_id)
        return True

    def _close(self) -> list[str]:
        """Mark the engine shut down and forget its jobs; their ids, to hand back."""
        with self._lock:
            self._closed = True
            ids = list(self._held)
            self._held.clear()
            return ids
