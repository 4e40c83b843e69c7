"""Shared pieces of the endpoint tests: functions as the service would send them, and an outcome recorder."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psutil

from beamlink import serialize
from beamlink.agents.endpoint.engines.base import Job
from beamlink.protocol.agent import TaskOutcome
from beamlink.protocol.compute import FunctionCode


def code_of(fn: Callable[..., Any]) -> FunctionCode:
    """``fn`` registered: serialized by value, with its source, from this environment."""
    name, serialized, source = serialize.serialize_function(fn)
    return FunctionCode(
        id=str(uuid.uuid4()),
        name=name,
        serialized=serialized,
        source=source,
        environment=serialize.environment(),
    )


def job(fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any) -> Job:
    return Job(
        task_id=f"task-{uuid.uuid4().hex[:12]}",
        function=code_of(fn),
        args=serialize.pack_arguments(args, kwargs),
        timeout=timeout,
        result_limit=1_000_000,
        output_limit=10_000,
    )


class Recorder:
    """Collects on_started and on_done calls from any thread; waits for them."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.started: list[str] = []
        self.outcomes: list[TaskOutcome] = []

    def on_started(self, task_id: str, at: datetime) -> None:
        with self._changed:
            self.started.append(task_id)
            self._changed.notify_all()

    def on_done(self, outcome: TaskOutcome) -> None:
        with self._changed:
            self.outcomes.append(outcome)
            self._changed.notify_all()

    def outcome(self, task_id: str, timeout: float = 30) -> TaskOutcome:
        with self._changed:
            if not self._changed.wait_for(lambda: self._find(task_id) is not None, timeout=timeout):
                raise AssertionError(f"no outcome for {task_id} within {timeout} s")
            found = self._find(task_id)
            assert found is not None
            return found

    def wait_started(self, task_id: str, timeout: float = 30) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: task_id in self.started, timeout=timeout):
                raise AssertionError(f"{task_id} did not start within {timeout} s")

    def reports_for(self, task_id: str) -> int:
        with self._changed:
            return sum(1 for o in self.outcomes if o.task_id == task_id)

    def _find(self, task_id: str) -> TaskOutcome | None:
        return next((o for o in self.outcomes if o.task_id == task_id), None)


def value(outcome: TaskOutcome) -> Any:
    assert outcome.state == "success", outcome.error
    assert outcome.result is not None
    return serialize.unpack(outcome.result)


def worker_children() -> list[psutil.Process]:
    """Our child processes, but multiprocessing's resource tracker (one per interpreter, not a worker)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" in " ".join(child.cmdline()):
                continue
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        found.append(child)
    return found


def eventually(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


# Functions the tests run remotely. They import what they need inside, as users' functions do.


def add(a: int, b: int) -> int:
    return a + b


def shout(text: str) -> str:
    import sys

    print(f"out: {text}")
    print(f"err: {text}", file=sys.stderr)
    return text.upper()


def fail(message: str) -> None:
    raise ValueError(message)


def sleep_then(seconds: float, result: Any = None) -> Any:
    import time

    time.sleep(seconds)
    return result


def die(code: int = 1) -> None:
    import os

    os._exit(code)


def read_env(name: str) -> str | None:
    import os

    return os.environ.get(name)


def my_pid() -> int:
    import os

    return os.getpid()
