"""Results kept on disk until the service acknowledges them, so none is lost if the connection, the service
or the endpoint goes away between finishing a task and the service storing its result.

One file per batch of results (the outcomes the agent sends in one message), not per result: at a
thousand tasks a second, a file created and renamed per result was most of the agent's own work. A file
is deleted once every result in it has been acknowledged.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from beamlink.protocol.agent import TaskOutcome

__all__ = ["ResultSpool"]

log = logging.getLogger(__name__)

_BATCH = TypeAdapter(list[TaskOutcome])
_EARLY_ACKS = 10_000


class ResultSpool:
    """``<dir>/<batch id>.json`` holds a JSON list of outcomes, written atomically (write, then rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._file_of: dict[str, str] = {}  # task id -> batch file name
        self._unacked: dict[str, set[str]] = {}  # batch file name -> its task ids not yet acknowledged
        # Acks of results not (yet) here: the agent sends a batch before it writes it (a write off the
        # round trip), so in principle its ack can come first; put() then keeps nothing of it.
        self._acked_early: dict[str, None] = {}
        for path in sorted(directory.glob("*.json")):
            for outcome in self._read(path):
                self._index(path.name, outcome.task_id)
        for path in directory.glob("*.partial"):
            path.unlink(missing_ok=True)  # a write the agent did not finish: its results were never sent

    def _index(self, name: str, task_id: str) -> None:
        previous = self._file_of.get(task_id)
        if previous is not None and previous != name:
            self._forget(task_id)
        self._file_of[task_id] = name
        self._unacked.setdefault(name, set()).add(task_id)

    def _read(self, path: Path) -> list[TaskOutcome]:
        try:
            return _BATCH.validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            log.error("spooled results %s are unreadable (%s); moved aside as %s.bad", path, exc, path.name)
            path.rename(path.with_suffix(".bad"))
            return []

    def put(self, outcomes: Sequence[TaskOutcome]) -> None:
        """Keep ``outcomes`` (one file) until :meth:`remove` is called with their task ids."""
        if self._acked_early:
            outcomes = [o for o in outcomes if self._acked_early.pop(o.task_id, 0) is not None]
        if not outcomes:
            return
        name = f"{uuid.uuid4().hex}.json"
        partial = self.directory / f"{name}.partial"
        partial.write_bytes(_BATCH.dump_json(list(outcomes)))
        os.replace(partial, self.directory / name)
        for outcome in outcomes:
            self._index(name, outcome.task_id)

    def _forget(self, task_id: str) -> None:
        name = self._file_of.pop(task_id, None)
        if name is None:
            return
        waiting = self._unacked.get(name)
        if waiting is None:
            return
        waiting.discard(task_id)
        if not waiting:
            del self._unacked[name]
            (self.directory / name).unlink(missing_ok=True)

    def remove(self, task_ids: Iterable[str]) -> None:
        """The service stored these results: forget them (a file goes when all of its results have)."""
        for task_id in task_ids:
            if task_id in self._file_of:
                self._forget(task_id)
            else:
                self._acked_early[task_id] = None
                if len(self._acked_early) > _EARLY_ACKS:
                    del self._acked_early[next(iter(self._acked_early))]  # an old ack of nothing

    def ids(self) -> set[str]:
        return set(self._file_of)

    def load(self) -> list[TaskOutcome]:
        """Every result not yet acknowledged (a damaged file is logged and set aside, never dropped)."""
        outcomes: list[TaskOutcome] = []
        for name in sorted(self._unacked):
            waiting = self._unacked[name]
            outcomes.extend(o for o in self._read(self.directory / name) if o.task_id in waiting)
        return outcomes

    def __len__(self) -> int:
        return len(self._file_of)
