"""The transfer worker of the destination agent: pulls a transfer's items from a source, many at a time.

It depends on nothing but the two collections, so the agent daemon drives it and reports what it says
to the service::

    summary = await run_transfer(spec, local=root, source=SourceClient(url, token), on_event=...,
                                 on_progress=..., cancel=asyncio.Event())

Per item: the source is walked (streamed from its data server) beside the destination, the two listings
are merged by :func:`~.plan.plan_sync`, and the actions are carried out in walk order: directories and
deletions at once (in the planning thread), files handed to :class:`~.transfer_files.FileMover` with at
most ``concurrency`` requests (or same-host copies) in flight over the whole transfer; small files are
gathered into batches first. What a transfer is and reports lives in :mod:`.transfer_model`; counts,
events and faults in :mod:`.transfer_report`.

Transient errors (connection trouble, 5xx) are retried with jittered exponential backoff; 4xx answers
are not. Cancel (``cancel.set()``) and the deadline stop the transfer promptly: nothing new starts,
reads in progress stop within a piece (1 MiB), and partial files stay for the next attempt. Callbacks
run on the event loop's thread, never concurrently.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from typing import Any

from beamlink.agents.collection.fsops import delete, make_directory, walk
from beamlink.agents.collection.paths import CollectionRoot, quoted, to_wire
from beamlink.agents.collection.plan import (
    Action,
    CompareChecksum,
    Copy,
    DeleteExtra,
    FileInfo,
    Mkdir,
    Skip,
    SyncOptions,
    TypeConflict,
    check_transfer_paths,
    plan_sync,
)
from beamlink.agents.collection.sources import LocalSource, SourceClient, TransferStopped, is_transient
from beamlink.agents.collection.transfer_files import (
    BATCH_BYTES,
    BATCH_FILES,
    SMALL_FILE,
    FileJob,
    FileMover,
    Runner,
)
from beamlink.agents.collection.transfer_model import (
    EventCode,
    Fault,
    Progress,
    TransferEvent,
    TransferItem,
    TransferSpec,
    TransferStatus,
    TransferSummary,
)
from beamlink.agents.collection.transfer_report import AtDestination, Reporter, at_destination
from beamlink.errors import BeamlinkError, Conflict

__all__ = [
    "SMALL_FILE",
    "EventCode",
    "Fault",
    "Progress",
    "TransferEvent",
    "TransferItem",
    "TransferSpec",
    "TransferStatus",
    "TransferSummary",
    "run_transfer",
]

log = logging.getLogger(__name__)

_PLAN_STEP = 1000


async def run_transfer(
    spec: TransferSpec,
    *,
    local: CollectionRoot,
    source: SourceClient | LocalSource,
    on_event: Callable[[TransferEvent], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: asyncio.Event | None = None,
    progress_period: float = 0.5,
) -> TransferSummary:
    """Carry out ``spec`` into collection ``local`` from ``source``; see the module doc.

    Returns when the transfer has ended (every worker thread done): SUCCEEDED, FAILED with a reason, or
    CANCELLED. Never raises for what happens to paths; those are events and faults.
    """
    worker = _Pull(spec, local, source, on_event, on_progress, cancel or asyncio.Event(), progress_period)
    return await worker.run()


class _Pull:
    """The orchestrator: plans each item, does directories and deletions, dispatches files."""

    def __init__(
        self,
        spec: TransferSpec,
        local: CollectionRoot,
        source: SourceClient | LocalSource,
        on_event: Callable[[TransferEvent], None] | None,
        on_progress: Callable[[Progress], None] | None,
        cancel: asyncio.Event,
        progress_period: float,
    ) -> None:
        self.spec = spec
        self.local = local
        self.source = source
        self.on_progress = on_progress
        self.cancel = cancel
        self.progress_period = progress_period
        self.stopping = threading.Event()
        self.stop_reason: EventCode | None = None
        self.report = Reporter(
            on_event, retry=source.retry, stopping=self.stopping, skip_source_errors=spec.skip_source_errors
        )
        self.runner = Runner(spec.concurrency, self.stopping)
        self.files = FileMover(spec, local, source, self.report, self.runner)
        self._tasks: set[asyncio.Task[None]] = set()
        self._batch: list[FileJob] = []
        self._batch_bytes = 0

    async def run(self) -> TransferSummary:
        self.report.bind(asyncio.get_running_loop())
        started = time.time()
        items = self.spec.items
        self.report.emit(EventCode.STARTED, f"the transfer of {len(items)} item(s) started", items=len(items))
        watcher = asyncio.create_task(self._watch())
        try:
            if self.spec.deadline is not None and time.time() >= self.spec.deadline:
                self._stop(EventCode.DEADLINE_EXCEEDED)
            for item in items:
                if self.stopping.is_set():
                    break
                await self._item(TransferItem(*item))
            await self._flush_batch()
        except BaseException:
            self._stop(EventCode.CANCELLED)  # run_transfer's own task was cancelled
            raise
        finally:
            # File tasks stop promptly once stopping is set; their threads must finish before we return.
            while self._tasks:
                await asyncio.wait(set(self._tasks))
            watcher.cancel()
            self.runner.close()
        return self._finish(started)

    async def _watch(self) -> None:
        """Reports progress every period and turns cancel and the deadline into a stop."""
        last: Progress | None = None
        deadline = self.spec.deadline
        cancelled = asyncio.ensure_future(self.cancel.wait())
        try:
            while True:
                if self.stopping.is_set():
                    await asyncio.sleep(self.progress_period)  # only progress left to report
                else:
                    timeout = self.progress_period
                    if deadline is not None:
                        timeout = max(0.0, min(timeout, deadline - time.time()))
                    await asyncio.wait([cancelled], timeout=timeout)
                    if cancelled.done():
                        self._stop(EventCode.CANCELLED)
                    elif deadline is not None and time.time() >= deadline:
                        self._stop(EventCode.DEADLINE_EXCEEDED)
                now = self.report.counters.snapshot()
                if now != last and self.on_progress is not None:
                    self.on_progress(now)
                last = now
        finally:
            cancelled.cancel()

    def _stop(self, reason: EventCode) -> None:
        if not self.stopping.is_set():
            self.stop_reason = reason
            self.stopping.set()

    def _finish(self, started: float) -> TransferSummary:
        progress = self.report.counters.snapshot()
        if self.on_progress is not None:
            self.on_progress(progress)
        status, reason = TransferStatus.SUCCEEDED, None
        if self.stop_reason is EventCode.CANCELLED:
            status, reason = TransferStatus.CANCELLED, "the transfer was cancelled"
            self.report.emit(
                EventCode.CANCELLED, "the transfer was cancelled; partial files are kept to resume"
            )
        elif self.stop_reason is EventCode.DEADLINE_EXCEEDED:
            assert self.spec.deadline is not None
            when = datetime.fromtimestamp(self.spec.deadline, UTC).isoformat(timespec="seconds")
            status, reason = TransferStatus.FAILED, f"the deadline {when} passed before the transfer finished"
            self.report.emit(EventCode.DEADLINE_EXCEEDED, reason, is_error=True, deadline=self.spec.deadline)
        elif progress.faults:
            first = self.report.faults[0].message if self.report.faults else "see the FAULT events"
            status = TransferStatus.FAILED
            reason = f"{progress.faults} path(s) could not be transferred; the first: {first}"
        if status is TransferStatus.SUCCEEDED:
            self.report.emit(
                EventCode.SUCCEEDED, f"the transfer succeeded: {progress.files} file(s) transferred"
            )
        elif status is TransferStatus.FAILED:
            self.report.emit(EventCode.FAILED, reason or "the transfer failed", is_error=True)
        return TransferSummary(status, reason, progress, tuple(self.report.faults), started, time.time())

    async def _item(self, item: TransferItem) -> None:
        spec = self.spec
        try:
            src, dst = check_transfer_paths(
                spec.source_collection_id or "source",
                item.source_path,
                spec.destination_collection_id or "destination",
                item.destination_path,
                recursive=item.recursive,
                delete_extra=spec.delete_extra,
            )
        except BeamlinkError as exc:
            self.report.fault(item.destination_path, item.source_path, exc)
            return
        options = SyncOptions(
            sync_level=spec.sync_level,
            include=spec.include,
            exclude=spec.exclude,
            delete_extra=spec.delete_extra,
            recursive=item.recursive,
            # Always planned with the source mtimes: a resumed partial file is checked against them.
            preserve_timestamps=True,
        )
        listed: list[FileInfo] = []
        source_listing = self._source_listing(src, item.recursive, listed)
        plan = plan_sync(
            source_listing, walk(self.local, dst, recursive=item.recursive, missing_ok=True), options
        )
        try:
            finished = False
            while not finished and not self.stopping.is_set():
                small, actions, finished = await self.runner.call(self._plan_step, plan, src, dst)
                await self._add_small(small)
                for action in actions:
                    await self._dispatch(action, src, dst)
                if len(self._tasks) < spec.concurrency:
                    await self._flush_batch()
        except AtDestination as failed:
            self.report.fault(dst, src, failed.error)
        except TransferStopped:
            pass
        except BeamlinkError as exc:
            # Before the item itself was listed, the error is about the item's source path.
            self.report.source_error(dst, src, exc, whole_item=not listed)
        finally:
            source_listing.close()  # an unfinished walk holds a connection to the source

    def _source_listing(
        self, path: str, recursive: bool, listed: list[FileInfo]
    ) -> Generator[FileInfo, None, None]:
        """The source walk, resumed after the last entry seen when a transient error breaks it.

        ``listed`` receives the item's own entry, so errors after it are known to be mid-walk.
        """
        last: FileInfo | None = None
        retry = 0
        while True:
            try:
                entries: Iterator[FileInfo] = iter(self.source.walk(path, recursive=recursive))
                if last is not None:  # skip what was seen before the stream broke
                    entries = _after(entries, last.path)
                for info in entries:
                    if last is None:
                        listed.append(info)
                    last, retry = info, 0
                    yield info
                return
            except BeamlinkError as exc:
                retry += 1
                if not is_transient(exc) or retry >= self.report.retry.attempts:
                    raise
                self.report.retry_wait(exc, retry, path=path)

    def _plan_step(
        self, plan: Iterator[Action], src: str, dst: str
    ) -> tuple[list[FileJob], list[Action], bool]:
        """Advance the plan (in a worker thread: it walks both sides): do directories and deletions at
        once, in order; return the small files to copy (as jobs, for the batches), the other file actions
        for the workers, and True once the plan is done.

        Small files are made jobs here, and counted once per step, because with thousands of them the
        orchestrator's own cost per file competes for the one interpreter lock with the threads that
        copy them.
        """
        small: list[FileJob] = []
        work: list[Action] = []
        planned = planned_bytes = skipped = 0
        finished = True
        for count, action in enumerate(plan, 1):
            if type(action) is Copy:
                if not action.path:
                    self._mkdir_parent(dst, src)
                planned += 1
                planned_bytes += action.size
                if action.size <= SMALL_FILE:
                    small.append(_job(action, src, dst))
                else:
                    work.append(action)
            elif isinstance(action, Mkdir):
                self._mkdir(_join(dst, action.path), _join(src, action.path))
            elif isinstance(action, DeleteExtra):
                self._delete_extra(_join(dst, action.path), action)
            elif isinstance(action, Skip):
                skipped += 1
            elif isinstance(action, TypeConflict):
                where = quoted(_join(dst, action.path))
                exc = Conflict(
                    f"{where} is a {action.destination_type} at the destination but a {action.source_type} "
                    "at the source; neither was changed",
                    details={"source_type": action.source_type, "destination_type": action.destination_type},
                )
                self.report.fault(_join(dst, action.path), _join(src, action.path), exc)
            else:
                if not action.path:
                    self._mkdir_parent(dst, src)
                work.append(action)
            if count >= _PLAN_STEP or self.stopping.is_set():
                finished = False
                break
        self.report.counters.add(files_planned=planned, bytes_planned=planned_bytes, skipped=skipped)
        return small, work, finished

    def _mkdir(self, path: str, source_path: str) -> None:
        try:
            make_directory(self.local, path, parents=True, exist_ok=True)
        except BeamlinkError as exc:
            self.report.fault(path, source_path, at_destination(exc, path).error)
            return
        self.report.counters.add(directories=1)

    def _mkdir_parent(self, dst: str, src: str) -> None:
        parent = dst.rpartition("/")[0]
        if parent:
            try:
                make_directory(self.local, parent, parents=True, exist_ok=True)
            except BeamlinkError as exc:
                raise at_destination(exc, parent) from None

    def _delete_extra(self, path: str, action: DeleteExtra) -> None:
        try:
            collections.deque(delete(self.local, path, recursive=True, ignore_missing=True), maxlen=0)
        except BeamlinkError as exc:
            self.report.fault(path, "", at_destination(exc, path).error)
            return
        self.report.counters.add(deleted=1)
        self.report.emit(
            EventCode.DELETED_EXTRA,
            f"deleted {quoted(path)}: the source has no such {action.type}",
            path=to_wire(path),
            type=action.type,
        )

    async def _dispatch(self, action: Action, src: str, dst: str) -> None:
        if self.stopping.is_set():
            return
        if isinstance(action, CompareChecksum):
            await self._spawn(self.files.compare(_job(action, src, dst)))
        elif isinstance(action, Copy):
            await self._spawn(self.files.copy(_job(action, src, dst)))

    async def _add_small(self, jobs: list[FileJob]) -> None:
        """Gather small files into batches, sending each batch off when full."""
        for job in jobs:
            if self.stopping.is_set():
                return
            self._batch.append(job)
            self._batch_bytes += job.size
            if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
                await self._flush_batch()

    async def _flush_batch(self) -> None:
        if self._batch and not self.stopping.is_set():
            jobs, self._batch, self._batch_bytes = self._batch, [], 0
            directories = frozenset(job.dest.rpartition("/")[0] for job in jobs)
            if isinstance(self.source, LocalSource):
                await self._spawn(self.runner.run_batch(directories, self.files.copy_batch_local, jobs))
            else:
                await self._spawn(self.runner.run_batch(directories, self.files.fetch_batch, jobs))

    async def _spawn(self, work: Any) -> None:
        """Start a file task, first waiting while too many are under way (memory stays O(concurrency))."""
        while len(self._tasks) >= 2 * self.spec.concurrency:
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.ensure_future(self._guard(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, work: Any) -> None:
        try:
            await work
        except TransferStopped:
            pass
        except Exception as exc:  # a bug: record it against the transfer rather than lose it
            log.exception("transfer worker task failed")
            self.report.fault("", "", BeamlinkError(f"internal error in the transfer worker: {exc!r}"))


def _after(entries: Iterator[FileInfo], path: str) -> Iterator[FileInfo]:
    """The entries of a walk (sorted by :func:`_walk_key`) that come after ``path``."""
    seen = _walk_key(path)
    return itertools.dropwhile(lambda info: _walk_key(info.path) <= seen, entries)


def _walk_key(path: str) -> tuple[str, ...]:
    return tuple(path.split("/")) if path else ()


def _job(action: Copy | CompareChecksum, src: str, dst: str) -> FileJob:
    return FileJob(_join(src, action.path), _join(dst, action.path), action.size, action.mtime or 0.0)


def _join(base: str, path: str) -> str:
    return f"{base}/{path}" if base and path else base or path
