"""The transfer worker of the destination agent: pulls a transfer's items from a source, many at a time.

It depends on nothing but the two collections, so the agent daemon drives it and reports what it says
to the service::

    summary = await run_transfer(spec, local=root, source=SourceClient(url, token), on_event=...,
                                 on_progress=..., cancel=asyncio.Event())

Per item: the source is walked (streamed from its data server) beside the destination, the two listings
are merged by :func:`~.plan.plan_sync`, and the actions are carried out in walk order: directories and
deletions at once, files handed to workers with at most ``concurrency`` requests (or same-host copies)
in flight over the whole transfer. Remote files of up to :data:`SMALL_FILE` bytes travel many to a
request (``POST /v1/batch``); bigger ones are written through a :class:`~.partial.PartialWrite`, each
chunk one range GET, the chunks of one file fetched in parallel, so a file appears only when complete
(atomic rename) and a restarted transfer fetches only the chunks its journal does not hold.
:class:`~.sources.LocalSource` copies in the kernel instead (:func:`~.partial.copy_local`).

Integrity: with ``verify_checksum`` the source hashes what it sends (per chunk, or per small file) and
the destination hashes what it receives; a mismatch fetches again (a chunk, or a small file), at most
``max_file_retries`` times per file, then records a fault. Transient errors (connection trouble, 5xx)
are retried with jittered exponential backoff; 4xx answers are not.

Cancel (``cancel.set()``) and the deadline stop the transfer promptly: nothing new starts, reads in
progress stop within a piece (1 MiB), and partial files stay for the next attempt. Callbacks run on the
event loop's thread, never concurrently.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple, ParamSpec, TypeVar

from beamlink.agents.collection.checksums import (
    DEFAULT_ALGORITHM,
    AlgorithmName,
    check_algorithm,
    hash_bytes,
    hash_file,
)
from beamlink.agents.collection.chunk_sink import ChunkSink
from beamlink.agents.collection.config import DEFAULT_CHUNK_SIZE
from beamlink.agents.collection.fsops import delete, make_directory, walk
from beamlink.agents.collection.partial import PartialWrite
from beamlink.agents.collection.paths import CollectionRoot, os_error, quoted, to_wire
from beamlink.agents.collection.plan import (
    Action,
    CompareChecksum,
    Copy,
    DeleteExtra,
    FileInfo,
    Mkdir,
    Skip,
    SyncLevel,
    SyncOptions,
    TypeConflict,
    check_transfer_paths,
    plan_sync,
    settle_checksum,
)
from beamlink.agents.collection.small_files import DirectoryCache, read_file, write_small
from beamlink.agents.collection.sources import (
    EitherFlag,
    LocalSource,
    RetryPolicy,
    SourceClient,
    StopFlag,
    TransferStopped,
    is_transient,
)
from beamlink.errors import (
    BeamlinkError,
    ChecksumMismatch,
    Conflict,
    DestinationNotWritable,
    InvalidInput,
    NotFound,
    PathOutsideCollection,
    PermissionDenied,
    SourceChanged,
    SourceNotFound,
)

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

SMALL_FILE = 256 << 10
"""Remote files of at most this many bytes travel in batches, many to a request."""
_BATCH_FILES = 256
_BATCH_BYTES = 8 << 20
_PLAN_STEP = 1000
_PIECE = 1 << 20
_MAX_FAULTS_KEPT = 100
_MAX_FAULT_EVENTS = 1000

P = ParamSpec("P")
R = TypeVar("R")


class TransferItem(NamedTuple):
    """One source path and where it goes; ``destination_path`` is the full path, also for a file."""

    source_path: str
    destination_path: str
    recursive: bool = False


@dataclass(frozen=True)
class TransferSpec:
    """What to transfer and how (Globus's transfer document, the parts the worker needs)."""

    items: Sequence[TransferItem | tuple[str, str, bool]]
    sync_level: SyncLevel | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    delete_extra: bool = False
    preserve_timestamps: bool = False
    verify_checksum: bool = False
    checksum_algorithm: AlgorithmName = DEFAULT_ALGORITHM
    skip_source_errors: bool = False
    concurrency: int = 8
    """Requests (or same-host copies) in flight at once, over all files of the transfer."""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_file_retries: int = 3
    """Times a file (or chunk) whose checksum did not match, or whose source changed, is sent again."""
    deadline: float | None = None
    """Unix time by which the transfer must end; past it, it stops and fails."""
    source_collection_id: str | None = None
    destination_collection_id: str | None = None
    """With both ids equal, transfers onto or into themselves are refused (check_transfer_paths)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(TransferItem(*item) for item in self.items))
        check_algorithm(self.checksum_algorithm)
        if self.concurrency < 1 or self.chunk_size <= 0 or self.max_file_retries < 0:
            raise InvalidInput("concurrency and chunk_size must be positive and max_file_retries >= 0")


class EventCode(StrEnum):
    """Stable codes of transfer events (Globus's task event codes where one fits)."""

    STARTED = "STARTED"
    """The worker began the transfer."""
    SOURCE_NOT_FOUND = "SOURCE_NOT_FOUND"
    """An item's source does not exist (counted as a fault)."""
    SKIPPED_SOURCE_ERROR = "SKIPPED_SOURCE_ERROR"
    """A source path could not be read and ``skip_source_errors`` let the transfer go on without it."""
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    """Received bytes did not hash to the source's digest; they are fetched again."""
    RETRY = "RETRY"
    """A transient error, or a file sent again; ``details`` say which and the attempt."""
    FAULT = "FAULT"
    """A path was given up on; ``details`` carry the error code, the path and the message."""
    DELETED_EXTRA = "DELETED_EXTRA"
    """A destination path the source lacks was deleted (``delete_extra``)."""
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    """The deadline passed: the transfer stopped."""
    CANCELLED = "CANCELLED"
    """The transfer was cancelled and stopped; partial files stay for a later resume."""
    SUCCEEDED = "SUCCEEDED"
    """Every path was transferred, skipped by the sync level, or skipped as allowed."""
    FAILED = "FAILED"
    """The transfer ended with faults or past its deadline; ``description`` says why."""


class TransferStatus(StrEnum):
    """How a transfer ended (all three are terminal)."""

    SUCCEEDED = "SUCCEEDED"
    """Every path transferred or skipped as allowed."""
    FAILED = "FAILED"
    """Some paths failed, or the deadline passed; ``reason`` says which."""
    CANCELLED = "CANCELLED"
    """Stopped on request; running it again resumes."""


@dataclass(frozen=True, slots=True)
class TransferEvent:
    """One thing that happened; ``details`` hold paths in wire form and error codes."""

    code: EventCode
    description: str
    details: dict[str, Any] = field(default_factory=dict)
    is_error: bool = False
    time: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class Progress:
    """Counts so far (each report repeats the totals). Planned totals grow as the walk goes on."""

    files: int = 0
    """Files transferred (published under their name)."""
    directories: int = 0
    """Directories created."""
    files_planned: int = 0
    bytes_planned: int = 0
    bytes_transferred: int = 0
    """Bytes received (or copied on this host) by this run, resent bytes included."""
    bytes_resumed: int = 0
    """Bytes of chunks a previous, interrupted run had already written and verified."""
    skipped: int = 0
    """Paths left alone: the sync level found them current, not regular files, or skipped errors."""
    deleted: int = 0
    retried: int = 0
    faults: int = 0
    """Paths given up on."""


@dataclass(frozen=True, slots=True)
class Fault:
    """A path given up on."""

    path: str
    """The destination path (wire form)."""
    source_path: str
    code: str
    message: str


@dataclass(frozen=True)
class TransferSummary:
    """How the transfer ended, with the final counts and the first faults."""

    status: TransferStatus
    reason: str | None
    progress: Progress
    faults: tuple[Fault, ...]
    """The first 100 faults."""
    started: float
    finished: float


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


# -- the worker -----------------------------------------------------------------------------------------


class _Counters:
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


@dataclass(slots=True)
class _FileJob:
    source: str
    """Source collection path."""
    dest: str
    """Destination collection path."""
    size: int
    mtime: float
    sent_again: int = 0


class _Pull:
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
        self.remote = isinstance(source, SourceClient)
        self.retry: RetryPolicy = source.retry
        self.on_event = on_event
        self.on_progress = on_progress
        self.cancel = cancel
        self.progress_period = progress_period
        self.counters = _Counters()
        self.stopping = threading.Event()
        self.stop_reason: EventCode | None = None
        self.faults: list[Fault] = []
        self._fault_lock = threading.Lock()
        self._fault_count = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._batch: list[_FileJob] = []
        self._batch_bytes = 0
        self._local = threading.local()
        self._destination_dirs = DirectoryCache(local)
        self._source_dirs = DirectoryCache(source.root if isinstance(source, LocalSource) else local)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._slots = asyncio.Semaphore(spec.concurrency)
        # Threads: one per request in flight, one for the planner, one for opening and publishing files.
        self._pool = ThreadPoolExecutor(spec.concurrency + 2, thread_name_prefix="beamlink-pull")

    # -- the whole transfer -------------------------------------------------------------------------------

    async def run(self) -> TransferSummary:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        started = time.time()
        items = self.spec.items
        self._emit(EventCode.STARTED, f"the transfer of {len(items)} item(s) started", items=len(items))
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
            self._pool.shutdown(wait=False)
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
                now = self.counters.snapshot()
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
        progress = self.counters.snapshot()
        if self.on_progress is not None:
            self.on_progress(progress)
        status, reason = TransferStatus.SUCCEEDED, None
        if self.stop_reason is EventCode.CANCELLED:
            status, reason = TransferStatus.CANCELLED, "the transfer was cancelled"
            self._emit(EventCode.CANCELLED, "the transfer was cancelled; partial files are kept to resume")
        elif self.stop_reason is EventCode.DEADLINE_EXCEEDED:
            assert self.spec.deadline is not None
            when = datetime.fromtimestamp(self.spec.deadline, UTC).isoformat(timespec="seconds")
            status, reason = TransferStatus.FAILED, f"the deadline {when} passed before the transfer finished"
            self._emit(EventCode.DEADLINE_EXCEEDED, reason, is_error=True, deadline=self.spec.deadline)
        elif progress.faults:
            first = self.faults[0].message if self.faults else "see the FAULT events"
            status = TransferStatus.FAILED
            reason = f"{progress.faults} path(s) could not be transferred; the first: {first}"
        if status is TransferStatus.SUCCEEDED:
            self._emit(EventCode.SUCCEEDED, f"the transfer succeeded: {progress.files} file(s) transferred")
        elif status is TransferStatus.FAILED:
            self._emit(EventCode.FAILED, reason or "the transfer failed", is_error=True)
        return TransferSummary(status, reason, progress, tuple(self.faults), started, time.time())

    # -- one item -----------------------------------------------------------------------------------------

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
            self._fault(item.destination_path, item.source_path, exc)
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
                actions, finished = await self._call(self._plan_step, plan, src, dst)
                for action in actions:
                    await self._dispatch(action, src, dst)
                if len(self._tasks) < spec.concurrency:
                    await self._flush_batch()
        except _AtDestination as failed:
            self._fault(dst, src, failed.error)
        except TransferStopped:
            pass
        except BeamlinkError as exc:
            # Before the item itself was listed, the error is about the item's source path.
            self._source_error(dst, src, exc, whole_item=not listed)
        finally:
            source_listing.close()  # an unfinished walk holds a connection to the source

    def _source_listing(
        self, path: str, recursive: bool, listed: list[FileInfo]
    ) -> Generator[FileInfo, None, None]:
        """The source walk, resumed after the last entry seen when a transient error breaks it.

        ``listed`` receives the item's own entry, so errors after it are known to be mid-walk.
        """
        last: tuple[str, ...] | None = None
        retry = 0
        while True:
            try:
                for info in self.source.walk(path, recursive=recursive):
                    key = tuple(info.path.split("/")) if info.path else ()
                    if last is not None and key <= last:
                        continue  # seen before the stream broke
                    if last is None:
                        listed.append(info)
                    last, retry = key, 0
                    yield info
                return
            except BeamlinkError as exc:
                retry += 1
                if not is_transient(exc) or retry >= self.retry.attempts:
                    raise
                self._retry_wait(exc, retry, path=path)

    def _plan_step(self, plan: Iterator[Action], src: str, dst: str) -> tuple[list[Action], bool]:
        """Advance the plan (in a worker thread: it walks both sides): do directories and deletions at
        once, in order, and return the file actions for the workers; True once the plan is done."""
        work: list[Action] = []
        for count, action in enumerate(plan, 1):
            if isinstance(action, Mkdir):
                self._mkdir(_join(dst, action.path), _join(src, action.path))
            elif isinstance(action, DeleteExtra):
                self._delete_extra(_join(dst, action.path), action)
            elif isinstance(action, Skip):
                self.counters.add(skipped=1)
            elif isinstance(action, TypeConflict):
                where = quoted(_join(dst, action.path))
                exc = Conflict(
                    f"{where} is a {action.destination_type} at the destination but a {action.source_type} "
                    "at the source; neither was changed",
                    details={"source_type": action.source_type, "destination_type": action.destination_type},
                )
                self._fault(_join(dst, action.path), _join(src, action.path), exc)
            else:
                if not action.path:
                    self._mkdir_parent(dst, src)
                if isinstance(action, Copy):
                    self.counters.add(files_planned=1, bytes_planned=action.size)
                work.append(action)
            if count >= _PLAN_STEP or self.stopping.is_set():
                return work, False
        return work, True

    def _mkdir(self, path: str, source_path: str) -> None:
        try:
            make_directory(self.local, path, parents=True, exist_ok=True)
        except BeamlinkError as exc:
            self._fault(path, source_path, _at_destination(exc, path).error)
            return
        self.counters.add(directories=1)

    def _mkdir_parent(self, dst: str, src: str) -> None:
        parent = dst.rpartition("/")[0]
        if parent:
            try:
                make_directory(self.local, parent, parents=True, exist_ok=True)
            except BeamlinkError as exc:
                raise _at_destination(exc, parent) from None

    def _delete_extra(self, path: str, action: DeleteExtra) -> None:
        try:
            collections.deque(delete(self.local, path, recursive=True, ignore_missing=True), maxlen=0)
        except BeamlinkError as exc:
            self._fault(path, "", _at_destination(exc, path).error)
            return
        self.counters.add(deleted=1)
        self._emit(
            EventCode.DELETED_EXTRA,
            f"deleted {quoted(path)}: the source has no such {action.type}",
            path=to_wire(path),
            type=action.type,
        )

    # -- dispatch -----------------------------------------------------------------------------------------

    async def _dispatch(self, action: Action, src: str, dst: str) -> None:
        if self.stopping.is_set():
            return
        if isinstance(action, CompareChecksum):
            job = _FileJob(_join(src, action.path), _join(dst, action.path), action.size, action.mtime or 0.0)
            await self._spawn(self._compare(job))
        elif isinstance(action, Copy):
            job = _FileJob(_join(src, action.path), _join(dst, action.path), action.size, action.mtime or 0.0)
            if action.size <= SMALL_FILE:
                self._batch.append(job)
                self._batch_bytes += action.size
                if len(self._batch) >= _BATCH_FILES or self._batch_bytes >= _BATCH_BYTES:
                    await self._flush_batch()
            else:
                await self._spawn(self._copy(job))

    async def _flush_batch(self) -> None:
        if self._batch and not self.stopping.is_set():
            jobs, self._batch, self._batch_bytes = self._batch, [], 0
            if isinstance(self.source, LocalSource):
                await self._spawn(self._run_slot(self._copy_batch_local, jobs))
            else:
                await self._spawn(self._run_slot(self._fetch_batch, jobs))

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
            self._fault("", "", BeamlinkError(f"internal error in the transfer worker: {exc!r}"))

    async def _call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def _run_slot(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        async with self._slots:
            if self.stopping.is_set():
                raise TransferStopped
            return await self._call(fn, *args, **kwargs)

    # -- files --------------------------------------------------------------------------------------------

    async def _compare(self, job: _FileJob) -> None:
        try:
            same = await self._run_slot(self._same_checksum, job)
        except _AtDestination as failed:
            self._fault(job.dest, job.source, failed.error)
            return
        except BeamlinkError as exc:
            self._source_error(job.dest, job.source, exc)
            return
        if same:
            self.counters.add(skipped=1)
            return
        self.counters.add(files_planned=1, bytes_planned=job.size)
        await self._copy(job)

    def _same_checksum(self, job: _FileJob) -> bool:
        algorithm = self.spec.checksum_algorithm
        theirs = self._retrying(job.source, self.source.checksum, job.source, algorithm)
        try:
            ours = hash_file(self._destination(job.dest), algorithm)
        except OSError as exc:
            raise _at_destination(os_error(exc, job.dest), job.dest) from None
        action = CompareChecksum(job.dest, job.size, job.mtime)
        return isinstance(settle_checksum(action, theirs, ours), Skip)

    async def _copy(self, job: _FileJob) -> None:
        """Copy one file, sending it again (bounded) after a checksum mismatch or a source change."""
        while not self.stopping.is_set():
            try:
                if isinstance(self.source, LocalSource):
                    await self._run_slot(self._copy_local, self.source, job)
                else:
                    await self._copy_remote(job)
                self.counters.add(files=1)
                return
            except (ChecksumMismatch, SourceChanged) as exc:
                if not await self._call(self._send_again, job, exc):
                    return
            except TransferStopped:
                return
            except _AtDestination as failed:
                self._fault(job.dest, job.source, failed.error)
                return
            except BeamlinkError as exc:
                self._source_error(job.dest, job.source, exc)
                return

    def _send_again(self, job: _FileJob, exc: ChecksumMismatch | SourceChanged) -> bool:
        """Record the mismatch or change; whether the file gets another try."""
        wire: dict[str, Any] = {"path": to_wire(job.dest), "source_path": to_wire(job.source)}
        if isinstance(exc, ChecksumMismatch):
            self._emit(
                EventCode.CHECKSUM_MISMATCH,
                f"{quoted(job.dest)}: {exc.message}",
                is_error=True,
                details={**exc.details, **wire},
            )
        job.sent_again += 1
        if job.sent_again > self.spec.max_file_retries:
            # The last of max_file_retries + 1 attempts failed: give the file up.
            self._fault(job.dest, job.source, exc, note=f" (sent {job.sent_again} times)")
            return False
        if isinstance(exc, SourceChanged):
            current = self._retrying(job.source, self.source.stat, job.source)
            job.size, job.mtime = current.size, current.mtime
        self.counters.add(retried=1)
        self._emit(
            EventCode.RETRY,
            f"{quoted(job.dest)} is sent again (attempt {job.sent_again + 1})",
            details=wire,
            attempt=job.sent_again + 1,
            error_code=exc.code,
        )
        return True

    def _copy_local(self, source: LocalSource, job: _FileJob) -> None:
        destination = self._destination(job.dest)
        try:
            result = source.copy_file(
                job.source,
                destination,
                chunk_size=self.spec.chunk_size,
                algorithm=self.spec.checksum_algorithm,
                verify=self.spec.verify_checksum,
                preserve_mtime=self.spec.preserve_timestamps,
            )
        except OSError as exc:
            # copy_local lets the OS errors of its own calls through; the file name says which side.
            if exc.filename is not None and os.fsdecode(exc.filename) == str(source.root.resolve(job.source)):
                raise os_error(exc, job.source) from None
            raise _at_destination(os_error(exc, job.dest), job.dest) from None
        except (DestinationNotWritable, NotFound, Conflict) as exc:
            if isinstance(exc, SourceNotFound):
                raise
            raise _at_destination(exc, job.dest) from None
        resumed = min(result.size, result.chunks_resumed * self.spec.chunk_size)
        self.counters.add(bytes_transferred=result.size - resumed, bytes_resumed=resumed)

    async def _copy_remote(self, job: _FileJob) -> None:
        partial = await self._call(self._open_partial, job)
        try:
            missing = partial.next_missing_chunks()
            if job.sent_again == 0:  # later attempts find this run's own chunks, not an earlier run's
                resumed = sum(partial.chunk_range(i)[1] for i in partial.chunk_digests)
                self.counters.add(bytes_resumed=resumed)
            abort = threading.Event()
            chunks = [asyncio.ensure_future(self._chunk(partial, index, job, abort)) for index in missing]
            try:
                if chunks:
                    await asyncio.wait(chunks, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                # Every thread must be done with the partial file before it is closed.
                abort.set()
                if chunks:
                    await asyncio.wait(chunks)
            errors = [error for c in chunks if (error := c.exception()) is not None]
            if errors:
                # The first real error, not the TransferStopped of the chunks it aborted.
                raise next((e for e in errors if not isinstance(e, TransferStopped)), errors[0])
            await self._call(self._commit, partial, job)
        finally:
            partial.close()

    def _open_partial(self, job: _FileJob) -> PartialWrite:
        destination = self._destination(job.dest)
        try:
            return PartialWrite(
                destination,
                size=job.size,
                source_mtime=job.mtime,
                chunk_size=self.spec.chunk_size,
                algorithm=self.spec.checksum_algorithm,
            )
        except BeamlinkError as exc:
            raise _at_destination(exc, job.dest) from None
        except OSError as exc:
            raise _at_destination(os_error(exc, job.dest), job.dest) from None

    def _commit(self, partial: PartialWrite, job: _FileJob) -> None:
        try:
            partial.commit(preserve_mtime=self.spec.preserve_timestamps)
        except (PermissionDenied, Conflict) as exc:
            raise _at_destination(exc, job.dest) from None
        except OSError as exc:
            raise _at_destination(os_error(exc, job.dest), job.dest) from None

    async def _chunk(self, partial: PartialWrite, index: int, job: _FileJob, abort: threading.Event) -> None:
        async with self._slots:
            if abort.is_set() or self.stopping.is_set():
                raise TransferStopped
            await self._call(self._fetch_chunk, partial, index, job, abort)

    def _fetch_chunk(self, partial: PartialWrite, index: int, job: _FileJob, abort: threading.Event) -> None:
        """One chunk into the partial file (a worker thread), retried on transient errors."""
        assert isinstance(self.source, SourceClient)
        offset, length = partial.chunk_range(index)
        stop = EitherFlag(abort, self.stopping)
        verify = self.spec.verify_checksum
        retry = 0
        while True:
            sink = ChunkSink(
                partial, index, hashed=verify, keep_holes=partial.is_clean(index), on_bytes=self._on_bytes
            )
            try:
                reply = self.source.read_range(
                    job.source,
                    offset,
                    length,
                    sink.write,
                    buffer=self._buffer(),
                    digest=self.spec.checksum_algorithm if verify else None,
                    stop=stop,
                )
                if reply.size != job.size or reply.mtime != job.mtime:
                    raise SourceChanged(
                        f"{quoted(job.source)} changed at the source since it was listed",
                        details={"path": to_wire(job.source)},
                    )
                expected = None
                if verify:  # the server kept the digest of what it just sent: no second read there
                    expected = self.source.checksum(
                        job.source, self.spec.checksum_algorithm, start=offset, length=length
                    )
                sink.finish(expected)
                return
            except OSError as exc:  # writing the partial file
                raise _at_destination(os_error(exc, job.dest), job.dest) from None
            except BeamlinkError as exc:
                retry += 1
                if not is_transient(exc) or retry >= self.retry.attempts:
                    raise
                self._retry_wait(exc, retry, path=job.source, stop=stop)

    def _fetch_batch(self, jobs: list[_FileJob]) -> None:
        """Small files, many per request (a worker thread); the rest of a broken batch is asked again."""
        assert isinstance(self.source, SourceClient)
        algorithm = self.spec.checksum_algorithm
        pending = list(jobs)
        retry = 0
        while pending and not self.stopping.is_set():
            again: list[_FileJob] = []
            done = 0
            try:
                names = [job.source for job in pending]
                for item in self.source.read_batch(
                    names, digest=algorithm if self.spec.verify_checksum else None
                ):
                    job = pending[done]
                    done += 1
                    if item.error is not None:
                        self._source_error(job.dest, job.source, item.error)
                        continue
                    expected = (algorithm, item.digest) if item.digest else None
                    if self._publish_small(job, item.data, item.mtime, expected):
                        again.append(job)
                pending = again
            except BeamlinkError as exc:
                retry += 1
                if not is_transient(exc) or retry >= self.retry.attempts:
                    for job in pending[done:] + again:
                        self._source_error(job.dest, job.source, exc)
                    return
                self._retry_wait(exc, retry, what=f"a batch of {len(pending) - done} small files")
                pending = pending[done:] + again

    def _copy_batch_local(self, jobs: list[_FileJob]) -> None:
        """Small files on this host, one after the other in this worker thread (a thread hop per file
        would cost more than copying it)."""
        algorithm = self.spec.checksum_algorithm
        for job in jobs:
            while not self.stopping.is_set():
                try:
                    fd, st = self._source_dirs.open_file(job.source)
                    try:
                        if st.st_size > _BATCH_BYTES:  # grew since the listing: not small any more
                            raise SourceChanged(
                                f"{quoted(job.source)} grew from {job.size} to {st.st_size} bytes since it "
                                "was listed; transfer it again",
                                details={"path": to_wire(job.source)},
                            )
                        data = read_file(fd, st.st_size, job.source)
                    finally:
                        os.close(fd)
                except SourceChanged as exc:
                    self._fault(job.dest, job.source, exc)
                    break
                except BeamlinkError as exc:
                    self._source_error(job.dest, job.source, exc)
                    break
                except OSError as exc:
                    self._source_error(job.dest, job.source, os_error(exc, job.source))
                    break
                expected = (algorithm, hash_bytes(data, algorithm)) if self.spec.verify_checksum else None
                if not self._publish_small(job, data, st.st_mtime, expected):
                    break

    def _publish_small(
        self, job: _FileJob, data: bytes, mtime: float, expected: tuple[str, str] | None
    ) -> bool:
        """Write a small file; True when it must be sent again (its checksum did not match)."""
        try:
            destination = self._destination_dirs.locate(job.dest)
            write_small(
                destination, data, mtime=mtime if self.spec.preserve_timestamps else None, expected=expected
            )
        except ChecksumMismatch as exc:
            return self._send_again(job, exc)
        except BeamlinkError as exc:
            self._fault(job.dest, job.source, _at_destination(exc, job.dest).error)
            return False
        except OSError as exc:
            self._fault(job.dest, job.source, _at_destination(os_error(exc, job.dest), job.dest).error)
            return False
        self.counters.add(files=1, bytes_transferred=len(data))
        return False

    # -- helpers ------------------------------------------------------------------------------------------

    def _destination(self, path: str) -> Path:
        try:
            return self.local.resolve(path)
        except BeamlinkError as exc:
            raise _at_destination(exc, path) from None

    def _buffer(self) -> bytearray:
        buffer: bytearray | None = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = self._local.buffer = bytearray(_PIECE)
        return buffer

    def _on_bytes(self, count: int) -> None:
        self.counters.add(bytes_transferred=count)

    def _retrying(self, what: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        retry = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except BeamlinkError as exc:
                retry += 1
                if not is_transient(exc) or retry >= self.retry.attempts:
                    raise
                self._retry_wait(exc, retry, path=what)

    def _retry_wait(
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
        self._emit(
            EventCode.RETRY,
            f"{what or quoted(path or '')}: {exc.message}; retrying in {delay:.1f} s (retry {retry})",
            details={} if path is None else {"path": to_wire(path)},
            error_code=exc.code,
            attempt=retry + 1,
            delay=delay,
        )
        if self.stopping.wait(delay) or (stop is not None and stop.is_set()):
            raise TransferStopped

    def _source_error(self, dest: str, source: str, exc: BeamlinkError, *, whole_item: bool = False) -> None:
        """A path that cannot be read at the source: skipped with skip_source_errors, else a fault."""
        unreadable = isinstance(exc, NotFound | PermissionDenied) and not isinstance(
            exc, DestinationNotWritable | PathOutsideCollection
        )
        if self.spec.skip_source_errors and unreadable:
            self.counters.add(skipped=1)
            self._emit(
                EventCode.SKIPPED_SOURCE_ERROR,
                f"skipped {quoted(source)}: {exc.message}",
                path=to_wire(source),
                error_code=exc.code,
            )
            return
        if whole_item and isinstance(exc, SourceNotFound):
            self._emit(
                EventCode.SOURCE_NOT_FOUND,
                f"the source {quoted(source)} does not exist",
                is_error=True,
                path=to_wire(source),
                destination_path=to_wire(dest),
            )
        self._fault(dest, source, exc)

    def _fault(self, dest: str, source: str, exc: BeamlinkError, *, note: str = "") -> None:
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
            self._emit(
                EventCode.FAULT,
                message,
                is_error=True,
                path=fault.path,
                source_path=fault.source_path,
                error_code=exc.code,
                error_details=exc.details,
            )
        elif count == _MAX_FAULT_EVENTS + 1:
            self._emit(EventCode.FAULT, "more faults follow; only their count is kept", is_error=True)

    def _emit(
        self,
        code: EventCode,
        description: str,
        *,
        is_error: bool = False,
        details: dict[str, Any] | None = None,
        **more: Any,
    ) -> None:
        if self.on_event is None:
            return
        event = TransferEvent(code, description, {**(details or {}), **more}, is_error)
        if threading.get_ident() == self._loop_thread or self._loop is None:
            self.on_event(event)
        else:
            self._loop.call_soon_threadsafe(self.on_event, event)


def _join(base: str, path: str) -> str:
    return f"{base}/{path}" if base and path else base or path


class _AtDestination(Exception):
    """Carries an error that happened on the destination side (never skipped as a source error)."""

    def __init__(self, error: BeamlinkError) -> None:
        super().__init__(error.message)
        self.error = error


def _at_destination(exc: BeamlinkError, path: str) -> _AtDestination:
    """``exc``, raised writing destination ``path``, as an error naming that path; permission problems
    become DestinationNotWritable, which says the agent may not write there."""
    if isinstance(exc, PermissionDenied) and not isinstance(exc, PathOutsideCollection):
        exc = DestinationNotWritable(
            f"cannot write {quoted(path)} at the destination: {exc.message}",
            details={**exc.details, "path": to_wire(path)},
        )
    return _AtDestination(exc)
