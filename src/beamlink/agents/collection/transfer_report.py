"""How the transfer worker reports: progress counts, events, faults, skipped source errors, retries.

One :class:`Reporter` per transfer is shared by the orchestrator (:mod:`.pull`) and the file movers
(:mod:`.transfer_files`), which call it from worker threads: counts are kept under a lock and events are
handed to the event loop's thread, so the callbacks never run concurrently.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import fields
from typing import Any, ParamSpec, TypeVar

from beamlink.agents.collection.paths import quoted, to_wire
from beamlink.agents.collection.sources import RetryPolicy, StopFlag, TransferStopped, is_transient
from beamlink.agents.collection.transfer_model import EventCode, Fault, Progress, TransferEvent
from beamlink.errors import (
    BeamlinkError,
    DestinationNotWritable,
    NotFound,
    PathOutsideCollection,
    PermissionDenied,
    SourceNotFound,
)

__all__ = ["AtDestination", "Counters", "Reporter", "at_destination"]

P = ParamSpec("P")
R = TypeVar("R")

_MAX_FAULTS_KEPT = 100
_MAX_FAULT_EVENTS = 1000


class Counters:
    """Progress counts, updated from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys((f.name for f in fields(Progress)), 0)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                self._values[name] += value

    def snapshot(self) -> Progress:
        with self._lock:
            return Progress(**self._values)


class Reporter:
    """Counts, events and faults of one transfer, and the patience for transient errors."""

    def __init__(
        self,
        on_event: Callable[[TransferEvent], None] | None,
        *,
        retry: RetryPolicy,
        stopping: threading.Event,
        skip_source_errors: bool,
    ) -> None:
        self.on_event = on_event
        self.retry = retry
        self.stopping = stopping
        self.skip_source_errors = skip_source_errors
        self.counters = Counters()
        self.faults: list[Fault] = []
        """The first faults (at most 100)."""
        self._fault_lock = threading.Lock()
        self._fault_count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Events raised off this loop's thread are handed to it."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def emit(
        self,
        code: EventCode,
        description: str,
        *,
        is_error: bool = False,
        details: dict[str, Any] | None = None,
        **more: Any,
    ) -> None:
        """Hand an event to ``on_event`` on the event loop's thread (``details`` and ``more`` merged)."""
        if self.on_event is None:
            return
        event = TransferEvent(code, description, {**(details or {}), **more}, is_error)
        if threading.get_ident() == self._loop_thread or self._loop is None:
            self.on_event(event)
        else:
            self._loop.call_soon_threadsafe(self.on_event, event)

    def fault(self, dest: str, source: str, exc: BeamlinkError, *, note: str = "") -> None:
        """Give up on ``dest``: count it, keep the first faults, and emit FAULT (the first 1000 of them)."""
        shown = quoted(dest)
        named = not dest or exc.message.startswith(shown) or f" {shown}" in exc.message
        message = (exc.message if named else f"{shown}: {exc.message}") + note
        fault = Fault(to_wire(dest), to_wire(source), exc.code, message)
        with self._fault_lock:
            self._fault_count += 1
            count = self._fault_count
            if len(self.faults) < _MAX_FAULTS_KEPT:
                self.faults.append(fault)
        self.counters.add(faults=1)
        if count <= _MAX_FAULT_EVENTS:
            self.emit(
                EventCode.FAULT,
                message,
                is_error=True,
                path=fault.path,
                source_path=fault.source_path,
                error_code=exc.code,
                error_details=exc.details,
            )
        elif count == _MAX_FAULT_EVENTS + 1:
            self.emit(EventCode.FAULT, "more faults follow; only their count is kept", is_error=True)

    def source_error(self, dest: str, source: str, exc: BeamlinkError, *, whole_item: bool = False) -> None:
        """A path that cannot be read at the source: skipped with skip_source_errors, else a fault."""
        unreadable = isinstance(exc, NotFound | PermissionDenied) and not isinstance(
            exc, DestinationNotWritable | PathOutsideCollection
        )
        if self.skip_source_errors and unreadable:
            self.counters.add(skipped=1)
            self.emit(
                EventCode.SKIPPED_SOURCE_ERROR,
                f"skipped {quoted(source)}: {exc.message}",
                path=to_wire(source),
                error_code=exc.code,
            )
            return
        if whole_item and isinstance(exc, SourceNotFound):
            self.emit(
                EventCode.SOURCE_NOT_FOUND,
                f"the source {quoted(source)} does not exist",
                is_error=True,
                path=to_wire(source),
                destination_path=to_wire(dest),
            )
        self.fault(dest, source, exc)

    def retry_wait(
        self,
        exc: BeamlinkError,
        retry: int,
        *,
        path: str | None = None,
        what: str | None = None,
        stop: StopFlag | None = None,
    ) -> None:
        """Report a transient error and wait out the backoff; TransferStopped if stopped meanwhile."""
        delay = self.retry.delay(retry)
        self.counters.add(retried=1)
        self.emit(
            EventCode.RETRY,
            f"{what or quoted(path or '')}: {exc.message}; retrying in {delay:.1f} s (retry {retry})",
            details={} if path is None else {"path": to_wire(path)},
            error_code=exc.code,
            attempt=retry + 1,
            delay=delay,
        )
        if self.stopping.wait(delay) or (stop is not None and stop.is_set()):
            raise TransferStopped

    def retrying(self, what: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)``, tried again after transient errors (``what``: the path it concerns)."""
        retry = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except BeamlinkError as exc:
                retry += 1
                if not is_transient(exc) or retry >= self.retry.attempts:
                    raise
                self.retry_wait(exc, retry, path=what)


class AtDestination(Exception):
    """Carries an error that happened on the destination side (never skipped as a source error)."""

    def __init__(self, error: BeamlinkError) -> None:
        super().__init__(error.message)
        self.error = error


def at_destination(exc: BeamlinkError, path: str) -> AtDestination:
    """``exc``, raised writing destination ``path``, as an error naming that path; permission problems
    become DestinationNotWritable, which says the agent may not write there."""
    if isinstance(exc, PermissionDenied) and not isinstance(exc, PathOutsideCollection):
        exc = DestinationNotWritable(
            f"cannot write {quoted(path)} at the destination: {exc.message}",
            details={**exc.details, "path": to_wire(path)},
        )
    return AtDestination(exc)
