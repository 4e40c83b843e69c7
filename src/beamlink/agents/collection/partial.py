"""Atomic, resumable writes of one destination file, and the same-host copy built on them.

A file being written never appears under its own name: bytes go to ``.<name>.beamlink-partial`` in the
same directory (so the final :func:`os.replace` is one atomic rename on one filesystem) and only a
complete file is renamed into place. A file of more than one chunk also keeps a journal,
``.<name>.beamlink-partial.jsonl``, so an agent killed mid-file resumes from its verified chunks instead
of from zero::

    {"beamlink_partial": 1, "size": 3221225472, "source_mtime": 1718000000.25, "source_checksum": null,
     "algorithm": "xxh3", "chunk_size": 67108864,          <- header: what the partial file is a copy of
     "boot_id": "789cf4ee-..."}                            <- and under which boot it was written
    {"chunk": 0, "digest": "5c74...cd11"}                  <- one line per verified chunk, appended
    {"chunk": 2, "digest": "0b1e...77aa"}

Reopening compares the header with the source as it is now: a different size, modification time,
checksum, algorithm or chunk size starts again from zero, as does a missing or wrongly sized partial
file (the boot id is not part of that comparison; see below). Lines are only appended (a torn last
line after a crash is ignored), so the journal costs O(1) per chunk even for a terabyte file. Names too
long for the filesystem with the prefix and suffix use a hash of the name instead
(``.<sha256[:32]>.beamlink-partial``).

Durability policy: no fsync per chunk. A journal line is appended once its chunk's bytes are written;
both sit in the page cache, which outlives the process, so an agent that is killed (the case that
happens) resumes from exactly the chunks it recorded. Only a crash of the machine can lose written
pages while keeping a journal line, so the header also records the kernel's boot id: a journal written
under another boot is trusted only chunk by chunk, keeping the chunks whose bytes still hash to their
recorded digest (a same-host copy without ``verify`` records no digest, so its chunks are copied again).
Fsyncing every chunk made a large copy run at the disk's write-back speed instead of the page cache's
(64-79 % of ``cp`` on the test VM, which does not fsync either); a network pull flushes its chunks
itself (:mod:`.chunk_sink`) to bound write-back, not for this. Files of one chunk keep no journal: a
restart writes them again. ``durable=True`` fsyncs the file before, and the directory after, the rename.

``verified`` means: the chunk's bytes hashed to the digest the sender gave (:meth:`PartialWrite.write_chunk`)
or, for a same-host copy, source and destination ranges hashed alike (:func:`copy_local` with
``verify=True``; with ``verify=False`` the journal records the chunk with a null digest once it is on disk).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from beamlink.agents.collection.checksums import DEFAULT_ALGORITHM, check_algorithm, hash_fd, new_hasher
from beamlink.agents.collection.config import DEFAULT_CHUNK_SIZE
from beamlink.agents.collection.paths import quoted, to_wire
from beamlink.errors import (
    ChecksumMismatch,
    Conflict,
    DestinationNotWritable,
    InvalidInput,
    NotFound,
    SourceChanged,
    SourceNotFound,
    TransferOntoItself,
)

__all__ = [
    "DIRECT_ALIGN",
    "JOURNAL_SUFFIX",
    "PARTIAL_SUFFIX",
    "ChunkWriter",
    "CopyResult",
    "PartialWrite",
    "boot_id",
    "copy_local",
    "is_internal_name",
    "partial_paths",
]

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".beamlink-partial"
JOURNAL_SUFFIX = ".beamlink-partial.jsonl"
_NAME_MAX = 255
_VERSION = 1
DIRECT_ALIGN = 4096
"""Offset, length and memory alignment of writes through :meth:`PartialWrite.direct_fileno`: a page, which
covers the logical block size of every common device (512 or 4096). A device that needs more refuses
the write (EINVAL) and the writer falls back to the page cache."""


def partial_paths(dest: Path) -> tuple[Path, Path]:
    """(partial file, journal) for destination ``dest``: hidden names beside it."""
    name = dest.name
    if len(os.fsencode(name)) + 1 + len(JOURNAL_SUFFIX) > _NAME_MAX:
        name = hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
    return dest.with_name(f".{name}{PARTIAL_SUFFIX}"), dest.with_name(f".{name}{JOURNAL_SUFFIX}")


def is_internal_name(name: str) -> bool:
    """Whether ``name`` is a partial file or journal (listings and transfers leave them out)."""
    return name.startswith(".") and name.endswith((PARTIAL_SUFFIX, JOURNAL_SUFFIX))


class PartialWrite:
    """One destination file being written in chunks, resumable across restarts; see the module doc.

    Chunks may be written in any order and from several threads. Use as a context manager: leaving it
    closes the files and keeps them for a later resume; only :meth:`commit` publishes the file and only
    :meth:`abort` throws the partial data away.
    """

    def __init__(
        self,
        dest: str | os.PathLike[str],
        *,
        size: int,
        source_mtime: float,
        source_checksum: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        algorithm: str = DEFAULT_ALGORITHM,
        durable: bool = False,
    ) -> None:
        if size < 0 or chunk_size <= 0:
            raise InvalidInput(f"size must be >= 0 and chunk_size > 0, got {size} and {chunk_size}")
        self.dest = Path(dest)
        self.size = size
        self.chunk_size = chunk_size
        self.algorithm = check_algorithm(algorithm)
        self.source_checksum = source_checksum.lower() if source_checksum else None
        self.durable = durable
        self.chunk_count = -(-size // chunk_size)
        self.partial_path, self.journal_path = partial_paths(self.dest)
        self._header: dict[str, Any] = {
            "beamlink_partial": _VERSION,
            "size": size,
            "source_mtime": source_mtime,
            "source_checksum": self.source_checksum,
            "algorithm": self.algorithm,
            "chunk_size": chunk_size,
        }
        self._done: dict[int, str | None] = {}
        self._lock = threading.Lock()
        #: Held around each write into the partial file. The kernel takes the file's lock for every
        #: buffered write anyway; threads that reach it together spun on it (8 chunk fetchers of one
        #: file on 2 vCPUs: 9 s of system time for 2 GiB, 0.3 GB/s), while waiting here they sleep.
        self.write_lock = threading.Lock()
        self._journal: int | None = None
        self._fd: int | None = None
        self._direct: int | None = None
        self._direct_refused = False
        if self.dest.is_dir():
            raise Conflict(
                f"{quoted(self.dest.name)} is a directory at the destination; a file cannot replace it"
            )
        self._fd = self._open_partial()
        try:
            resumed = self.chunk_count > 1 and self._resume()
            if not resumed:
                self._start_over()
        except BaseException:
            self.close()
            raise
        #: Chunks found verified on disk when this write was opened.
        self.resumed_chunks = len(self._done)
        self._clean = not resumed

    # -- opening ------------------------------------------------------------------------------------------

    def _open_partial(self) -> int:
        try:
            fd = os.open(self.partial_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:
            raise NotFound(
                f"the destination directory of {quoted(self.dest.name)} does not exist; create it first",
                details={"name": to_wire(self.dest.name)},
            ) from None
        except PermissionError as exc:
            raise DestinationNotWritable(
                f"cannot write {quoted(self.dest.name)}: {exc.strerror}",
                details={"name": to_wire(self.dest.name)},
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Conflict(
                f"another transfer is writing {quoted(self.dest.name)} right now",
                details={"name": to_wire(self.dest.name)},
            ) from None
        return fd

    def _resume(self) -> bool:
        """Load the journal when it describes this very source; False to start from zero."""
        try:
            with open(self.journal_path, "rb") as stream:
                raw = stream.read()
        except FileNotFoundError:
            return False
        lines = raw.splitlines()
        header = _json(lines[0]) if lines else None
        written_boot = header.pop("boot_id", None) if isinstance(header, dict) else None
        if header != self._header or os.fstat(self.fileno()).st_size != self.size:
            log.debug("%s: journal does not match the source; starting from zero", self.dest)
            return False
        for line in lines[1:]:
            entry = _json(line)
            index = entry.get("chunk") if isinstance(entry, dict) else None
            digest = entry.get("digest") if isinstance(entry, dict) else None
            # Each line stands alone (written only once its chunk was on disk), so a torn or damaged
            # line costs that chunk only.
            if isinstance(index, int) and 0 <= index < self.chunk_count and isinstance(digest, str | None):
                self._done[index] = digest
        if written_boot is None or written_boot != boot_id():
            self._recheck_chunks()  # the machine restarted since: unsynced pages may be gone
            self._start_journal()
            for index, digest in sorted(self._done.items()):
                _write_all(self._journal_fd(), _chunk_line(index, digest))
            return True
        self._journal = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        if not raw.endswith(b"\n"):
            _write_all(self._journal, b"\n")  # end a torn line, so the next one is not glued to it
        return True

    def _recheck_chunks(self) -> None:
        """Keep only the recorded chunks whose bytes on disk still hash to their digest."""
        buffer = bytearray(1 << 20)
        for index, digest in list(self._done.items()):
            offset, length = self.chunk_range(index)
            actual = None
            if digest is not None:
                actual = hash_fd(self.fileno(), self.algorithm, start=offset, length=length, buffer=buffer)
            if actual is None or actual != digest:
                del self._done[index]
        log.debug("%s: written under another boot; %d chunks still verify", self.dest, len(self._done))

    def _start_over(self) -> None:
        self._done.clear()
        # Truncating to 0 first turns old bytes into a hole, so unwritten ranges read as zeros. Only when
        # there are old bytes: on ext4 a truncation to 0 marks the file to be flushed when it is closed
        # (auto_da_alloc), which made a 2 GiB same-host copy's close write the whole file back.
        if os.fstat(self.fileno()).st_size:
            os.ftruncate(self.fileno(), 0)
        os.ftruncate(self.fileno(), self.size)
        if self.chunk_count <= 1:
            self.journal_path.unlink(missing_ok=True)
            return
        self._start_journal()

    def _start_journal(self) -> None:
        """A new journal holding only the header (the chunks follow as they are written)."""
        if self._journal is not None:
            os.close(self._journal)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        self._journal = os.open(self.journal_path, flags, 0o666)
        _write_all(self._journal, json.dumps({**self._header, "boot_id": boot_id()}).encode() + b"\n")

    def _journal_fd(self) -> int:
        assert self._journal is not None
        return self._journal

    # -- writing ------------------------------------------------------------------------------------------

    def fileno(self) -> int:
        """The partial file's descriptor, for writers that fill chunks themselves, then :meth:`mark_chunk`."""
        if self._fd is None:
            raise ValueError(f"the partial write of {quoted(self.dest.name)} is closed")
        return self._fd

    def direct_fileno(self) -> int | None:
        """A second descriptor of the partial file, opened ``O_DIRECT``; None where that is refused.

        For writers of whole aligned blocks (see :data:`DIRECT_ALIGN`) from page-aligned memory. Buffered,
        a network pull spent most of its CPU copying into the page cache and writing it back (1.5-2.5 s of
        system time per GB on the test VM, where freshly reallocated guest memory is slow to touch);
        written direct, the same bytes cost 0.1 s/GB and went at the disk's speed.
        """
        with self._lock:
            if self._direct_refused:
                return None
            if self._direct is None:
                try:
                    self._direct = os.open(self.partial_path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
                except OSError as exc:  # EINVAL: the filesystem has no direct I/O
                    log.debug("%s: no direct writes (%s); writing through the page cache", self.dest, exc)
                    self._direct_refused = True
            return self._direct

    def refuse_direct(self) -> None:
        """Stop offering :meth:`direct_fileno` (a direct write was refused: alignment the device rejects).

        The descriptor stays open until :meth:`close`: another thread may be writing through it.
        """
        with self._lock:
            self._direct_refused = True

    def chunk_range(self, index: int) -> tuple[int, int]:
        """(offset, length) of chunk ``index``."""
        if not 0 <= index < self.chunk_count:
            raise InvalidInput(
                f"chunk {index} is out of range: {quoted(self.dest.name)} has {self.chunk_count}"
            )
        offset = index * self.chunk_size
        return offset, min(self.chunk_size, self.size - offset)

    def next_missing_chunks(self, limit: int | None = None) -> list[int]:
        """Indexes of chunks not yet verified, in order (at most ``limit``)."""
        missing: list[int] = []
        for index in range(self.chunk_count):
            if index not in self._done:
                missing.append(index)
                if limit is not None and len(missing) >= limit:
                    break
        return missing

    @property
    def chunk_digests(self) -> dict[int, str | None]:
        """Verified chunks and their digests (None: copied on this host without hashing)."""
        return dict(self._done)

    def is_clean(self, index: int) -> bool:
        """Whether chunk ``index`` still reads as zeros (the file was started afresh, chunk not written).

        A writer may then skip the source's holes and keep the file sparse; after a resume a missing
        chunk may hold bytes of an unfinished attempt and must be written whole.
        """
        return self._clean and index not in self._done

    def open_chunk(self, index: int) -> ChunkWriter:
        """A writer that takes chunk ``index`` in pieces and verifies it at :meth:`ChunkWriter.finish`."""
        offset, length = self.chunk_range(index)
        return ChunkWriter(self, index, offset, length)

    def write_chunk(self, index: int, data: bytes | bytearray | memoryview, digest: str | None = None) -> str:
        """Write all of chunk ``index``; ChecksumMismatch (nothing kept) if it does not hash to ``digest``."""
        writer = self.open_chunk(index)
        writer.write(data)
        return writer.finish(digest)

    def mark_chunk(self, index: int, digest: str | None) -> None:
        """Record chunk ``index`` as written and verified (its bytes already in :meth:`fileno`)."""
        self.chunk_range(index)
        with self._lock:
            if self._journal is not None:
                _write_all(self._journal, _chunk_line(index, digest))
            self._done[index] = digest

    # -- finishing ----------------------------------------------------------------------------------------

    def commit(self, *, preserve_mtime: bool = False) -> Path:
        """Publish the complete file under its name (atomic rename) and drop the journal."""
        missing = self.next_missing_chunks(limit=5)
        if missing:
            raise Conflict(
                f"cannot finish {quoted(self.dest.name)}: chunks {missing} are not written yet",
                details={"missing": missing},
            )
        if self.source_checksum is not None:
            actual = hash_fd(self.fileno(), self.algorithm)
            if actual != self.source_checksum:
                self.abort()
                raise ChecksumMismatch(
                    f"{quoted(self.dest.name)} does not match the source checksum ({self.algorithm}); "
                    "it was discarded and will be copied again",
                    details={"expected": self.source_checksum, "actual": actual, "algorithm": self.algorithm},
                )
        if preserve_mtime:
            mtime_ns = round(float(self._header["source_mtime"]) * 1e9)
            os.utime(self.fileno(), ns=(mtime_ns, mtime_ns))
        if self.durable:
            os.fsync(self.fileno())
        try:
            os.replace(self.partial_path, self.dest)
        except IsADirectoryError:
            raise Conflict(f"{quoted(self.dest.name)} became a directory at the destination") from None
        if self.durable:
            _fsync_directory(self.dest.parent)
        self.close()
        self.journal_path.unlink(missing_ok=True)
        return self.dest

    def abort(self) -> None:
        """Close and delete the partial file and its journal."""
        self.close()
        self.partial_path.unlink(missing_ok=True)
        self.journal_path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the files, keeping them for a later resume (also what a crash leaves)."""
        for fd in (self._journal, self._direct, self._fd):
            if fd is not None:
                os.close(fd)
        self._journal = self._direct = self._fd = None

    def __enter__(self) -> PartialWrite:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ChunkWriter:
    """One chunk written piece by piece and hashed on the way, so a chunk never sits whole in memory."""

    def __init__(self, owner: PartialWrite, index: int, offset: int, length: int) -> None:
        self._owner = owner
        self.index = index
        self.offset = offset
        self.length = length
        self.written = 0
        self._hasher = new_hasher(owner.algorithm)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        if self.written + len(view) > self.length:
            raise InvalidInput(
                f"chunk {self.index} of {quoted(self._owner.dest.name)} is {self.length} bytes; got more",
                details={"chunk": self.index, "length": self.length},
            )
        self._hasher.update(view)
        done = 0
        with self._owner.write_lock:
            while done < len(view):
                done += os.pwrite(self._owner.fileno(), view[done:], self.offset + self.written + done)
        self.written += len(view)

    def finish(self, digest: str | None = None) -> str:
        """Check length and digest, then record the chunk; returns its digest."""
        name = self._owner.dest.name
        if self.written != self.length:
            raise InvalidInput(
                f"chunk {self.index} of {quoted(name)} is {self.length} bytes; got {self.written}",
                details={"chunk": self.index, "length": self.length, "written": self.written},
            )
        actual = self._hasher.hexdigest()
        if digest is not None and actual != digest.lower():
            raise ChecksumMismatch(
                f"chunk {self.index} of {quoted(name)} arrived damaged: its {self._owner.algorithm} digest "
                f"is {actual}, the source sent {digest}; it will be fetched again",
                details={"chunk": self.index, "expected": digest, "actual": actual},
            )
        self._owner.mark_chunk(self.index, actual)
        return actual


# -- the same-host copy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyResult:
    """What :func:`copy_local` did."""

    size: int
    chunks_copied: int
    chunks_resumed: int
    method: Literal["copy_file_range", "sendfile", "read/write", "none"]


_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM}


def copy_local(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    algorithm: str = DEFAULT_ALGORITHM,
    verify: bool = True,
    preserve_mtime: bool = False,
    durable: bool = False,
) -> CopyResult:
    """Copy ``src`` to ``dst`` on this host through a :class:`PartialWrite` (atomic, resumable).

    Bytes move in the kernel (``os.copy_file_range``, else ``os.sendfile``, else a read/write loop with
    one reused buffer), and the source's holes are skipped so a sparse file stays sparse. ``verify``
    hashes each chunk on both sides. Both paths must already be confined (``CollectionRoot.resolve``).
    """
    src, dst = Path(src), Path(dst)
    try:
        before = os.stat(src)
    except FileNotFoundError:
        raise SourceNotFound(
            f"the source {quoted(src.name)} does not exist", details={"name": to_wire(src.name)}
        ) from None
    if not stat.S_ISREG(before.st_mode):
        raise InvalidInput(
            f"the source {quoted(src.name)} is not a regular file", details={"name": to_wire(src.name)}
        )
    if dst.exists() and os.path.samefile(src, dst):
        raise TransferOntoItself(
            f"{quoted(src.name)} would be copied onto itself; choose another destination"
        )
    mover = _Mover()
    copied = 0
    with PartialWrite(
        dst,
        size=before.st_size,
        source_mtime=before.st_mtime,
        chunk_size=chunk_size,
        algorithm=algorithm,
        durable=durable,
    ) as partial:
        source = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            checker = _ChunkChecker(source, partial, dst.name) if verify else None
            try:
                for index in partial.next_missing_chunks():
                    offset, length = partial.chunk_range(index)
                    mover.copy(source, partial.fileno(), offset, length, skip_holes=partial.is_clean(index))
                    if checker is None:
                        partial.mark_chunk(index, None)
                    else:
                        checker.check(index)
                    copied += 1
                if checker is not None:
                    checker.wait()
            finally:
                if checker is not None:
                    checker.close()
            after = os.fstat(source)
        finally:
            os.close(source)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise SourceChanged(
                f"{quoted(src.name)} changed while it was copied; copy it again",
                details={
                    "name": to_wire(src.name),
                    "size_before": before.st_size,
                    "size_after": after.st_size,
                },
            )
        partial.commit(preserve_mtime=preserve_mtime)
        method = mover.method if copied else "none"
        return CopyResult(before.st_size, copied, partial.resumed_chunks, method)


class _ChunkChecker:
    """Hashes the copied chunks on both sides in a worker thread while the next chunk is copied.

    The copy is kernel work and the hashes release the GIL, so the two overlap on two cores: hashing
    after each copy, in line, made a verified same-host copy take 1.75x as long as an unverified one.
    A file of one chunk has nothing to overlap with: it is checked in line, without a thread.
    """

    def __init__(self, source: int, partial: PartialWrite, name: str) -> None:
        self._source = source
        self._partial = partial
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        if len(partial.next_missing_chunks(limit=2)) > 1:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="beamlink-verify")
        self._buffer = bytearray(1 << 20)
        self._pending: Future[None] | None = None

    def check(self, index: int) -> None:
        """Hash chunk ``index`` (just copied) in the background; first the previous chunk must be done."""
        self.wait()
        if self._pool is None:
            self._check(index)
        else:
            self._pending = self._pool.submit(self._check, index)

    def wait(self) -> None:
        """Until the chunk handed over last is checked; ChecksumMismatch if it differs."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _check(self, index: int) -> None:
        offset, length = self._partial.chunk_range(index)
        algorithm = self._partial.algorithm
        digest = hash_fd(self._source, algorithm, start=offset, length=length, buffer=self._buffer)
        written = hash_fd(self._partial.fileno(), algorithm, start=offset, length=length, buffer=self._buffer)
        if written != digest:
            raise ChecksumMismatch(
                f"chunk {index} of {quoted(self._name)} reads back differently from the source",
                details={"chunk": index, "expected": digest, "actual": written},
            )
        self._partial.mark_chunk(index, digest)


class _Mover:
    """Moves byte ranges between two descriptors with the fastest call that works here, remembered."""

    def __init__(self) -> None:
        self.method: Literal["copy_file_range", "sendfile", "read/write"] = "copy_file_range"
        self._buffer: bytearray | None = None

    def copy(self, source: int, target: int, offset: int, length: int, *, skip_holes: bool) -> None:
        for start, count in _data_ranges(source, offset, length) if skip_holes else [(offset, length)]:
            self._copy(source, target, start, count)

    def _copy(self, source: int, target: int, offset: int, length: int) -> None:
        done = 0
        while done < length:
            try:
                moved = self._move(source, target, offset + done, length - done)
            except OSError as exc:
                if exc.errno not in _FALLBACK_ERRNOS or self.method == "read/write":
                    raise
                self.method = "sendfile" if self.method == "copy_file_range" else "read/write"
                log.debug("falling back to %s: %s", self.method, exc)
                continue
            if moved == 0:
                raise SourceChanged("the source file became shorter while it was copied")
            done += moved

    def _move(self, source: int, target: int, offset: int, count: int) -> int:
        count = min(count, 1 << 30)
        if self.method == "copy_file_range":
            return os.copy_file_range(source, target, count, offset, offset)
        if self.method == "sendfile":
            os.lseek(target, offset, os.SEEK_SET)
            return os.sendfile(target, source, offset, count)
        if self._buffer is None:
            self._buffer = bytearray(1 << 20)
        view = memoryview(self._buffer)[: min(count, len(self._buffer))]
        got = os.preadv(source, [view], offset)
        written = 0
        while written < got:
            written += os.pwrite(target, view[written:got], offset + written)
        return got


def _data_ranges(fd: int, offset: int, length: int) -> list[tuple[int, int]]:
    """The (start, length) ranges of ``fd`` holding data within ``offset``+``length``; holes left out."""
    end = offset + length
    ranges: list[tuple[int, int]] = []
    position = offset
    while position < end:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but a hole to the end of the file
                break
            return [(offset, length)]  # no hole support here: copy it all
        if start >= end:
            break
        stop = min(os.lseek(fd, start, os.SEEK_HOLE), end)
        ranges.append((start, stop - start))
        position = stop
    return ranges


@functools.cache
def boot_id() -> str | None:
    """This boot of the kernel (Linux); None where the system does not say."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _chunk_line(index: int, digest: str | None) -> bytes:
    return json.dumps({"chunk": index, "digest": digest}).encode() + b"\n"


def _json(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
