"""Results kept on disk until the service acknowledges them, so none is lost if the connection, the service
or the endpoint goes away between finishing a task and the service storing its result."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from beamlink.protocol.agent import TaskOutcome

__all__ = ["ResultSpool"]

log = logging.getLogger(__name__)


class ResultSpool:
    """One file per unacknowledged result: ``<dir>/<task_id>.json``, written atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._ids = {p.stem for p in directory.glob("*.json")}

    def _path(self, task_id: str) -> Path:
        return self.directory / f"{task_id}.json"

    def put(self, outcome: TaskOutcome) -> None:
        path = self._path(outcome.task_id)
        partial = path.with_suffix(".partial")
        partial.write_text(outcome.model_dump_json(), encoding="utf-8")
        os.replace(partial, path)
        self._ids.add(outcome.task_id)

    def remove(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            if task_id in self._ids:
                self._ids.discard(task_id)
                self._path(task_id).unlink(missing_ok=True)

    def ids(self) -> set[str]:
        return set(self._ids)

    def load(self) -> list[TaskOutcome]:
        """Everything spooled (a damaged file is logged and set aside, never silently dropped)."""
        outcomes = []
        for task_id in sorted(self._ids):
            path = self._path(task_id)
            try:
                outcomes.append(TaskOutcome.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError) as exc:
                log.error("spooled result %s is unreadable (%s); moved aside as %s.bad", path, exc, path.name)
                path.rename(path.with_suffix(".bad"))
                self._ids.discard(task_id)
        return outcomes

    def __len__(self) -> int:
        return len(self._ids)
