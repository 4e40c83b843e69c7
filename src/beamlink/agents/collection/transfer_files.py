"""Moving the files of a transfer: big ones by chunks, small ones by batches, on this host by kernel copy.

The orchestrator (:mod:`.pull`) plans and dispatches; :class:`FileMover` moves one file, or one batch
of small files, with at most ``concurrency`` requests (or same-host copies) in flight through
:class:`Runner`. Blocking work (sockets, files, hashing) runs in the runner's worker threads.

* Files of more than :data:`SMALL_FILE` bytes go through a :class:`~.partial.PartialWrite`: each chunk is
  one range GET, the chunks of one file are fetched in parallel, a file appears only when complete
  (atomic rename), and a restarted transfer fetches only the chunks its journal does not hold.
* Smaller ones travel many to a request (``POST /v1/batch``) and are written by
  :func:`~.small_files.write_small`.
* :class:`~.sources.LocalSource` copies big files in the kernel (:func:`~.partial.copy_local`) and small
  ones in batches too.

With ``verify_checksum`` the source hashes what it sends and the destination what it receives; a
mismatch fetches again (a chunk, or a small file), at most ``max_file_retries`` times per file.
"""

from __future__ import annotations

import asyncio
import functools
import mmap
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from beamlink.agents.collection.checksums import hash_bytes, hash_file
from beamlink.agents.collection.chunk_sink import ChunkSink, receive_buffer
from beamlink.agents.collection.partial import PartialWrite
from beamlink.agents.collection.paths import CollectionRoot, os_error, quoted, to_wire
from beamlink.agents.collection.plan import CompareChecksum, Skip, settle_checksum
from beamlink.agents.collection.small_files import Directories, DirectoryCache, read_file, write_small
from beamlink.agents.collection.sources import (
    EitherFlag,
    LocalSource,
    SourceClient,
    TransferStopped,
    is_transient,
)
from beamlink.agents.collection.transfer_model import EventCode, TransferSpec
from beamlink.agents.collection.transfer_report import AtDestination, Reporter, at_destination
from beamlink.errors import (
    BeamlinkError,
    ChecksumMismatch,
    Conflict,
    DestinationNotWritable,
    NotFound,
    PermissionDenied,
    SourceChanged,
    SourceNotFound,
)

__all__ = ["BATCH_BYTES", "BATCH_FILES", "SMALL_FILE", "FileJob", "FileMover", "Runner"]

P = ParamSpec("P")
R = TypeVar("R")

SMALL_FILE = 256 << 10
"""Files of at most this many bytes travel in batches, many to a request."""
BATCH_FILES = 256
BATCH_BYTES = 8 << 20
"""A batch of small files holds at most this many files and bytes."""


class Runner:
    """Where blocking work runs: worker threads, at most ``concurrency`` requests or copies at once.

    Batches of small files are different: their cost is creating and renaming files, which the kernel
    serialises per directory (the directory's lock). Two batches writing into one directory spun on
    that lock (``rwsem_spin_on_owner`` was 28 % of a profile on the 2-core test VM) and fought over the
    GIL, so batches into the same directory take turns, and at most one batch per CPU (at least two)
    runs at once.
    """

    def __init__(self, concurrency: int, stopping: threading.Event) -> None:
        self.stopping = stopping
        self.slots = asyncio.Semaphore(concurrency)
        self.batch_slots = asyncio.Semaphore(min(concurrency, max(2, os.cpu_count() or 2)))
        self._busy_directories: set[str] = set()
        self._directories_freed = asyncio.Condition()
        # Threads: one per request in flight, one for the planner, one to open and publish files.
        self.pool = ThreadPoolExecutor(concurrency + 2, thread_name_prefix="beamlink-pull")

    async def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn`` in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))

    async def run_slot(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn`` in a worker thread once a slot is free; TransferStopped if stopped meanwhile."""
        async with self.slots:
            if self.stopping.is_set():
                raise TransferStopped
            return await self.call(fn, *args, **kwargs)

    async def run_batch(
        self, directories: frozenset[str], fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """:meth:`run_slot` for a batch of small files written into ``directories``, once no other
        batch writes into any of them and a batch slot is free."""
        async with self._directories_freed:
            await self._directories_freed.wait_for(lambda: self._busy_directories.isdisjoint(directories))
            self._busy_directories |= directories
        try:
            async with self.batch_slots:
                return await self.run_slot(fn, *args, **kwargs)
        finally:
            async with self._directories_freed:
                self._busy_directories -= directories
                self._directories_freed.notify_all()

    def close(self) -> None:
        self.pool.shutdown(wait=False)


@dataclass(slots=True)
class FileJob:
    source: str
    """Source collection path."""
    dest: str
    """Destination collection path."""
    size: int
    mtime: float
    sent_again: int = 0


class _Tally:
    """Files and bytes of one batch of small files, counted once when the batch ends: the counters'
    lock is not worth taking per 4 KiB file."""

    __slots__ = ("bytes", "files", "report")

    def __init__(self, report: Reporter) -> None:
        self.report = report
        self.files = self.bytes = 0

    def __enter__(self) -> _Tally:
        return self

    def __exit__(self, *exc: object) -> None:
        self.report.counters.add(files=self.files, bytes_transferred=self.bytes)


class FileMover:
    """Moves files of one transfer into ``local`` from ``source``."""

    def __init__(
        self,
        spec: TransferSpec,
        local: CollectionRoot,
        source: SourceClient | LocalSource,
        report: Reporter,
        runner: Runner,
    ) -> None:
        self.spec = spec
        self.local = local
        self.source = source
        self.report = report
        self.runner = runner
        self.stopping = runner.stopping
        self._local = threading.local()
        self._destination_dirs = DirectoryCache(local)
        self._source_dirs = DirectoryCache(source.root if isinstance(source, LocalSource) else local)

    async def compare(self, job: FileJob) -> None:
        try:
            same = await self.runner.run_slot(self._same_checksum, job)
        except (AtDestination, BeamlinkError) as exc:
            self._give_up(job, exc)
            return
        if same:
            self.report.counters.add(skipped=1)
            return
        self.report.counters.add(files_planned=1, bytes_planned=job.size)
        await self.copy(job)

    def _same_checksum(self, job: FileJob) -> bool:
        algorithm = self.spec.checksum_algorithm
        theirs = self.report.retrying(job.source, self.source.checksum, job.source, algorithm)
        try:
            ours = hash_file(self._destination(job.dest), algorithm)
        except OSError as exc:
            raise at_destination(os_error(exc, job.dest), job.dest) from None
        action = CompareChecksum(job.dest, job.size, job.mtime)
        return isinstance(settle_checksum(action, theirs, ours), Skip)

    async def copy(self, job: FileJob) -> None:
        """Copy one file, sending it again (bounded) after a checksum mismatch or a source change."""
        while not self.stopping.is_set():
            try:
                if isinstance(self.source, LocalSource):
                    await self.runner.run_slot(self._copy_local, self.source, job)
                else:
                    await self._copy_remote(job)
                self.report.counters.add(files=1)
                return
            except (ChecksumMismatch, SourceChanged) as exc:
                if not await self.runner.call(self._send_again, job, exc):
                    return
            except TransferStopped:
                return
            except (AtDestination, BeamlinkError) as exc:
                self._give_up(job, exc)
                return

    def _give_up(self, job: FileJob, exc: AtDestination | BeamlinkError) -> None:
        """A fault for a destination problem; a source problem may be skipped (skip_source_errors)."""
        if isinstance(exc, AtDestination):
            self.report.fault(job.dest, job.source, exc.error)
        else:
            self.report.source_error(job.dest, job.source, exc)

    def _send_again(self, job: FileJob, exc: ChecksumMismatch | SourceChanged) -> bool:
        """Record the mismatch or change; whether the file gets another try."""
        wire: dict[str, Any] = {"path": to_wire(job.dest), "source_path": to_wire(job.source)}
        if isinstance(exc, ChecksumMismatch):
            self.report.emit(
                EventCode.CHECKSUM_MISMATCH,
                f"{quoted(job.dest)}: {exc.message}",
                is_error=True,
                details={**exc.details, **wire},
            )
        job.sent_again += 1
        if job.sent_again > self.spec.max_file_retries:
            # The last of max_file_retries + 1 attempts failed: give the file up.
            self.report.fault(job.dest, job.source, exc, note=f" (sent {job.sent_again} times)")
            return False
        if isinstance(exc, SourceChanged):
            current = self.report.retrying(job.source, self.source.stat, job.source)
            job.size, job.mtime = current.size, current.mtime
        self.report.counters.add(retried=1)
        self.report.emit(
            EventCode.RETRY,
            f"{quoted(job.dest)} is sent again (attempt {job.sent_again + 1})",
            details=wire,
            attempt=job.sent_again + 1,
            error_code=exc.code,
        )
        return True

    def _copy_local(self, source: LocalSource, job: FileJob) -> None:
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
            raise at_destination(os_error(exc, job.dest), job.dest) from None
        except (DestinationNotWritable, NotFound, Conflict) as exc:
            if isinstance(exc, SourceNotFound):
                raise
            raise at_destination(exc, job.dest) from None
        resumed = min(result.size, result.chunks_resumed * self.spec.chunk_size)
        self.report.counters.add(bytes_transferred=result.size - resumed, bytes_resumed=resumed)

    async def _copy_remote(self, job: FileJob) -> None:
        partial = await self.runner.call(self._open_partial, job)
        try:
            missing = partial.next_missing_chunks()
            if job.sent_again == 0:  # later attempts find this run's own chunks, not an earlier run's
                resumed = sum(partial.chunk_range(i)[1] for i in partial.chunk_digests)
                self.report.counters.add(bytes_resumed=resumed)
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
            await self.runner.call(self._commit, partial, job)
        finally:
            partial.close()

    def _open_partial(self, job: FileJob) -> PartialWrite:
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
            raise at_destination(exc, job.dest) from None
        except OSError as exc:
            raise at_destination(os_error(exc, job.dest), job.dest) from None

    def _commit(self, partial: PartialWrite, job: FileJob) -> None:
        try:
            partial.commit(preserve_mtime=self.spec.preserve_timestamps)
        except (PermissionDenied, Conflict) as exc:
            raise at_destination(exc, job.dest) from None
        except OSError as exc:
            raise at_destination(os_error(exc, job.dest), job.dest) from None

    async def _chunk(self, partial: PartialWrite, index: int, job: FileJob, abort: threading.Event) -> None:
        async with self.runner.slots:
            if abort.is_set() or self.stopping.is_set():
                raise TransferStopped
            await self.runner.call(self._fetch_chunk, partial, index, job, abort)

    def _fetch_chunk(self, partial: PartialWrite, index: int, job: FileJob, abort: threading.Event) -> None:
        """One chunk into the partial file (a worker thread), retried on transient errors."""
        assert isinstance(self.source, SourceClient)
        offset, length = partial.chunk_range(index)
        stop = EitherFlag(abort, self.stopping)
        verify = self.spec.verify_checksum
        retry = 0
        while True:
            sink = ChunkSink(
                partial,
                index,
                hashed=verify,
                keep_holes=partial.is_clean(index),
                direct=self.spec.direct_writes,
                on_bytes=self._on_bytes,
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
                raise at_destination(os_error(exc, job.dest), job.dest) from None
            except BeamlinkError as exc:
                retry += 1
                if not is_transient(exc) or retry >= self.report.retry.attempts:
                    raise
                self.report.retry_wait(exc, retry, path=job.source, stop=stop)

    def fetch_batch(self, jobs: list[FileJob]) -> None:
        """Small files, many per request (a worker thread); the rest of a broken batch is asked again."""
        assert isinstance(self.source, SourceClient)
        algorithm = self.spec.checksum_algorithm
        pending = list(jobs)
        retry = 0
        with Directories(self._destination_dirs) as targets, _Tally(self.report) as tally:
            while pending and not self.stopping.is_set():
                again: list[FileJob] = []
                done = 0
                try:
                    names = [job.source for job in pending]
                    for item in self.source.read_batch(
                        names, digest=algorithm if self.spec.verify_checksum else None
                    ):
                        job = pending[done]
                        done += 1
                        if item.error is not None:
                            self.report.source_error(job.dest, job.source, item.error)
                            continue
                        expected = (algorithm, item.digest) if item.digest else None
                        if self._publish_small(job, item.data, item.mtime, expected, targets, tally):
                            again.append(job)
                    pending = again
                except BeamlinkError as exc:
                    retry += 1
                    if not is_transient(exc) or retry >= self.report.retry.attempts:
                        for job in pending[done:] + again:
                            self.report.source_error(job.dest, job.source, exc)
                        return
                    self.report.retry_wait(exc, retry, what=f"a batch of {len(pending) - done} small files")
                    pending = pending[done:] + again

    def copy_batch_local(self, jobs: list[FileJob]) -> None:
        """Small files on this host, one after the other in this worker thread (a thread hop per file
        would cost more than copying it)."""
        with (
            Directories(self._source_dirs) as sources,
            Directories(self._destination_dirs) as targets,
            _Tally(self.report) as tally,
        ):
            for job in jobs:
                self._copy_small_local(job, sources, targets, tally)

    def _copy_small_local(
        self, job: FileJob, sources: Directories, targets: Directories, tally: _Tally
    ) -> None:
        algorithm = self.spec.checksum_algorithm
        while not self.stopping.is_set():
            try:
                fd, st = sources.open_file(job.source)
                try:
                    if st.st_size > BATCH_BYTES:  # grew since the listing: not small any more
                        raise SourceChanged(
                            f"{quoted(job.source)} grew from {job.size} to {st.st_size} bytes since it was "
                            "listed; transfer it again",
                            details={"path": to_wire(job.source)},
                        )
                    data = read_file(fd, st.st_size, job.source)
                finally:
                    os.close(fd)
            except SourceChanged as exc:
                self.report.fault(job.dest, job.source, exc)
                return
            except BeamlinkError as exc:
                self.report.source_error(job.dest, job.source, exc)
                return
            except OSError as exc:
                self.report.source_error(job.dest, job.source, os_error(exc, job.source))
                return
            expected = (algorithm, hash_bytes(data, algorithm)) if self.spec.verify_checksum else None
            if not self._publish_small(job, data, st.st_mtime, expected, targets, tally):
                return

    def _publish_small(
        self,
        job: FileJob,
        data: bytes,
        mtime: float,
        expected: tuple[str, str] | None,
        targets: Directories,
        tally: _Tally,
    ) -> bool:
        """Write a small file; True when it must be sent again (its checksum did not match)."""
        try:
            directory, name = targets.split(job.dest)
            preserved = mtime if self.spec.preserve_timestamps else None
            write_small(directory, name, data, mtime=preserved, expected=expected)
        except ChecksumMismatch as exc:
            return self._send_again(job, exc)
        except BeamlinkError as exc:
            self.report.fault(job.dest, job.source, at_destination(exc, job.dest).error)
            return False
        except OSError as exc:
            self.report.fault(job.dest, job.source, at_destination(os_error(exc, job.dest), job.dest).error)
            return False
        tally.files += 1
        tally.bytes += len(data)
        return False

    def _destination(self, path: str) -> Path:
        try:
            return self.local.resolve(path)
        except BeamlinkError as exc:
            raise at_destination(exc, path) from None

    def _buffer(self) -> mmap.mmap:
        buffer: mmap.mmap | None = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = self._local.buffer = receive_buffer()
        return buffer

    def _on_bytes(self, count: int) -> None:
        self.report.counters.add(bytes_transferred=count)
