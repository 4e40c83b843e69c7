"""Watch mode: a run of an app for every new complete file in a folder of a collection.

The folder is watched with ``watchfiles`` (inotify on Linux). A file counts once it matches the app's
``file_patterns``, has stopped changing for ``settle`` seconds and the app's ``is_complete`` accepts it
(an HDF5 file that opens with every frame it announces, for XPCS); a file still being written waits.
Each run's ``request_id`` is derived from (app, collection, path, size, mtime), so a watcher restarted
over the same files — or two watchers — start one run per file version, never two: the service returns
the existing run for a repeated request id. The files the instrument's software writes under a
temporary name (``.name``, ``*.part``, ``*.tmp``) are ignored until renamed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchfiles import Change, watch

from beamlink.apps.app import App
from beamlink.errors import BeamlinkError, InvalidInput
from beamlink.protocol.flows import RunInfo
from beamlink.sdk import Client
from beamlink.sdk.flows import TERMINAL_RUN_STATUSES

__all__ = ["FolderWatcher", "WatchEvent", "run_request_id"]

_TEMPORARY = (".part", ".tmp", ".partial", "~")


def run_request_id(app: str, collection: str, path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256(f"{app}\0{collection}\0{path}\0{size}\0{mtime_ns}".encode()).hexdigest()
    return f"watch-{digest[:40]}"


@dataclass(frozen=True)
class WatchEvent:
    """What the watcher did: ``kind`` is started, finished, waiting or error."""

    kind: str
    path: str
    message: str
    run: RunInfo | None = None


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    since: float
    told_waiting: bool = False


@dataclass
class FolderWatcher:
    """Starts runs of ``app`` for files under ``folder`` (the local directory behind
    ``collection:prefix``); ``payload`` holds the other input values of every run."""

    client: Client
    app: App
    collection: str
    prefix: str
    folder: Path
    payload: Mapping[str, Any] = field(default_factory=dict)
    settle: float = 1.0
    existing: bool = False
    on_event: Callable[[WatchEvent], None] = lambda event: None
    _pending: dict[Path, _Pending] = field(default_factory=dict)
    _done: set[tuple[Path, int, int]] = field(default_factory=set)
    _active: dict[str, tuple[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.app.file_input is None:
            raise InvalidInput(
                f"the {self.app.name} app does not take a file (it names no file_input), so it cannot be "
                "watched: run it with `beamlink app run`"
            )
        if not self.folder.is_dir():
            raise InvalidInput(
                f"{self.collection}:{self.prefix} is not a folder on this machine ({self.folder} does not "
                "exist): create it, or watch another folder",
                details={"folder": str(self.folder)},
            )
        # Fail now, not at the first file, when the other input values are incomplete.
        probe = {**self.payload, self.app.file_input: f"{self.prefix}probe"}
        self.app.prepare_input(probe)

    def _wanted(self, path: Path) -> bool:
        name = path.name
        if name.startswith(".") or name.endswith(_TEMPORARY):
            return False
        return any(fnmatch.fnmatch(name, pattern) for pattern in self.app.file_patterns)

    def _note(self, path: Path) -> None:
        try:
            info = path.stat()
        except OSError:
            self._pending.pop(path, None)
            return
        if not path.is_file() or not self._wanted(path):
            return
        known = self._pending.get(path)
        if known is None or (known.size, known.mtime_ns) != (info.st_size, info.st_mtime_ns):
            self._pending[path] = _Pending(info.st_size, info.st_mtime_ns, time.monotonic())

    def _ready(self) -> Iterator[tuple[Path, _Pending]]:
        now = time.monotonic()
        for path, pending in list(self._pending.items()):
            if now - pending.since < self.settle:
                continue
            self._note(path)  # changed since? the clock starts again
            current = self._pending.get(path)
            if current is None or current is not pending:
                continue
            if (path, pending.size, pending.mtime_ns) in self._done:
                del self._pending[path]
                continue
            complete = self.app.is_complete is None or self.app.is_complete(path)
            if not complete:
                if not pending.told_waiting:
                    pending.told_waiting = True
                    self.on_event(WatchEvent("waiting", str(path), "not complete yet; waiting for more data"))
                pending.since = now
                continue
            del self._pending[path]
            yield path, pending

    def _start(self, path: Path, pending: _Pending) -> None:
        relative = path.relative_to(self.folder).as_posix()
        location = f"{self.prefix}{relative}"
        assert self.app.file_input is not None
        payload = {**self.payload, self.app.file_input: location}
        request_id = run_request_id(self.app.name, self.collection, location, pending.size, pending.mtime_ns)
        self._done.add((path, pending.size, pending.mtime_ns))
        try:
            run, _ = self.app.start(
                self.client, payload, label=f"{self.app.name}: {relative}", request_id=request_id
            )
        except BeamlinkError as exc:
            self.on_event(WatchEvent("error", location, exc.message))
            return
        self._active[run.run_id] = (location, time.monotonic())
        self.on_event(WatchEvent("started", location, f"run {run.run_id} started", run))

    def _check_runs(self) -> None:
        for run_id, (location, began) in list(self._active.items()):
            try:
                info = self.client.get_run(run_id)
            except BeamlinkError as exc:
                self.on_event(WatchEvent("error", location, f"run {run_id}: {exc.message}"))
                continue
            if info.status in TERMINAL_RUN_STATUSES:
                del self._active[run_id]
                took = time.monotonic() - began
                self.on_event(
                    WatchEvent("finished", location, f"run {run_id}: {info.status} after {took:.1f} s", info)
                )

    def step(self, changes: set[tuple[Change, str]]) -> None:
        """Take one batch of file-system changes, start what is ready, report what finished."""
        for change, raw in changes:
            if change != Change.deleted:
                self._note(Path(raw))
            else:
                self._pending.pop(Path(raw), None)
        for path, pending in self._ready():
            self._start(path, pending)
        self._check_runs()

    def run(self, stop: threading.Event | None = None) -> None:
        """Watch until ``stop`` is set (or Ctrl-C)."""
        stop = stop or threading.Event()
        if self.existing:
            for path in sorted(self.folder.rglob("*")):
                self._note(path)
        for changes in watch(
            self.folder,
            stop_event=stop,
            yield_on_timeout=True,
            rust_timeout=200,
            debounce=200,
            raise_interrupt=False,
        ):
            self.step(changes)
            if stop.is_set():
                return

    @property
    def active(self) -> int:
        return len(self._active)
