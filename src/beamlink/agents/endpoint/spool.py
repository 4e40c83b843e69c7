"""Results kept on disk until the service acknowledges them, so none is lost if the connection, the service
or the endpoint goes away between finishing a task and the service storing its result.

One append-only log, ``results.log``: a JSON line per batch of results the agent sent
(``{"results": [...]}``) and per acknowledgement (``{"acked": [...]}``), each one ``write``. At a
thousand tasks a second, a file created, renamed and deleted per batch (the layout before) was a third
of the agent's own work. The log is emptied (truncated) whenever nothing is waiting, and rewritten
with only what is waiting when it has grown large.

The agent writes a batch right after sending it (the write is then off the round trip), so an
acknowledgement can in principle be handled before the batch is written: such an ack is remembered and
the batch's acknowledged results are not kept.

A damaged line (a write cut short by a crash of the machine) is never silently dropped: the log is set
aside as ``results-<time>.bad`` and what it still held intact is written to a fresh log.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from beamlink.protocol.agent import TaskOutcome

__all__ = ["ResultSpool"]

log = logging.getLogger(__name__)

_BATCH = TypeAdapter(list[TaskOutcome])
_EARLY_ACKS = 10_000
_REWRITE_BYTES = 64 * 2**20  # a log this large is rewritten with only what is waiting
_LOG = "results.log"


class ResultSpool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._path = directory / _LOG
        self._waiting: set[str] = set()
        self._acked_early: dict[str, None] = {}
        self._size = 0
        outcomes, damaged = self._replay()
        legacy = self._legacy_files()
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if damaged:
            self._set_aside()
        if damaged or legacy:
            outcomes.update({o.task_id: o for path in legacy for o in self._read_legacy(path)})
            self._rewrite(list(outcomes.values()))
            for path in legacy:
                path.unlink(missing_ok=True)
        self._waiting = set(outcomes)
        self._size = os.fstat(self._fd).st_size

    # -- writing --------------------------------------------------------------------------------

    def put(self, outcomes: Sequence[TaskOutcome]) -> None:
        """Keep ``outcomes`` until :meth:`remove` is called with their task ids."""
        if self._acked_early:
            outcomes = [o for o in outcomes if self._acked_early.pop(o.task_id, 0) is not None]
        if not outcomes:
            return
        self._append(b'{"results":' + _BATCH.dump_json(list(outcomes)) + b"}\n")
        self._waiting.update(o.task_id for o in outcomes)

    def remove(self, task_ids: Iterable[str]) -> None:
        """The service stored these results: forget them."""
        acked = []
        for task_id in task_ids:
            if task_id in self._waiting:
                acked.append(task_id)
            else:
                self._acked_early[task_id] = None
                if len(self._acked_early) > _EARLY_ACKS:
                    del self._acked_early[next(iter(self._acked_early))]  # an old ack of nothing
        if not acked:
            return
        self._waiting.difference_update(acked)
        if not self._waiting:
            os.ftruncate(self._fd, 0)  # O_APPEND: the next write starts the log again
            self._size = 0
        elif self._size > _REWRITE_BYTES:
            self._rewrite(self.load())
        else:
            self._append(json.dumps({"acked": acked}, separators=(",", ":")).encode() + b"\n")

    def _append(self, data: bytes) -> None:
        written = os.write(self._fd, data)
        while written < len(data):  # a regular file takes it whole unless the disk is full
            written += os.write(self._fd, data[written:])
        self._size += len(data)

    def _rewrite(self, outcomes: list[TaskOutcome]) -> None:
        """Replace the log with one holding only ``outcomes`` (write, then rename)."""
        fresh = self.directory / f"{_LOG}.partial"
        fresh.write_bytes(b'{"results":' + _BATCH.dump_json(outcomes) + b"}\n" if outcomes else b"")
        os.replace(fresh, self._path)
        os.close(self._fd)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._size = os.fstat(self._fd).st_size

    def close(self) -> None:
        os.close(self._fd)

    # -- reading --------------------------------------------------------------------------------

    def ids(self) -> set[str]:
        return set(self._waiting)

    def load(self) -> list[TaskOutcome]:
        """Every result not yet acknowledged, the latest of each task, in the order they were kept."""
        outcomes, _ = self._replay()
        return [o for task_id, o in outcomes.items() if task_id in self._waiting]

    def _replay(self) -> tuple[dict[str, TaskOutcome], bool]:
        """What the log holds unacknowledged, and whether a line was damaged."""
        outcomes: dict[str, TaskOutcome] = {}
        damaged = False
        for line in self._lines():
            try:
                entry = json.loads(line)
                if "acked" in entry:
                    for task_id in entry["acked"]:
                        outcomes.pop(task_id, None)
                else:
                    for outcome in _BATCH.validate_python(entry["results"]):
                        outcomes.pop(outcome.task_id, None)  # the latest copy goes last
                        outcomes[outcome.task_id] = outcome
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                log.error("a line of %s is damaged (%s): the log is set aside", self._path, exc)
                damaged = True
        return outcomes, damaged

    def _lines(self) -> Iterator[bytes]:
        try:
            with self._path.open("rb") as file:
                yield from (line for line in file if line.strip())
        except FileNotFoundError:
            return

    def _set_aside(self) -> None:
        aside = self.directory / f"results-{time.strftime('%Y%m%dT%H%M%S')}.bad"
        aside.write_bytes(self._path.read_bytes())
        log.error("the damaged result log was copied to %s", aside)

    def _legacy_files(self) -> list[Path]:
        """Batches spooled one file each by an older agent (and writes it never finished)."""
        for partial in self.directory.glob("*.json.partial"):
            partial.unlink(missing_ok=True)  # its results were never sent
        return sorted(self.directory.glob("*.json"))

    def _read_legacy(self, path: Path) -> list[TaskOutcome]:
        try:
            return _BATCH.validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            log.error("spooled results %s are unreadable (%s); moved aside as %s.bad", path, exc, path.name)
            path.rename(path.with_suffix(".bad"))
            return []

    def __len__(self) -> int:
        return len(self._waiting)
