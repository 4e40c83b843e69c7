"""One chunk of a :class:`~.partial.PartialWrite` filled from the network, piece by piece.

:class:`~.partial.ChunkWriter` does the same for callers that hand it bytes; this one takes each piece as
it lands in the reading thread's reused buffer (no copy), hashes only when the transfer verifies, and
keeps the destination sparse: a piece of zeros over a chunk that still reads as zeros (a file started
afresh) is not written, so the holes of a sparse source stay holes (comparing 1 MiB with zeros is a
memcmp, ~30 µs).

Whole aligned blocks from a :func:`receive_buffer` are written ``O_DIRECT``
(:meth:`~.partial.PartialWrite.direct_fileno`), the rest (a file's last partial block, a filesystem without
direct I/O, a plain ``bytearray``) through the page cache.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Callable

from beamlink.agents.collection.checksums import Hasher, new_hasher
from beamlink.agents.collection.partial import DIRECT_ALIGN, PartialWrite
from beamlink.agents.collection.paths import quoted
from beamlink.errors import ChecksumMismatch, InvalidInput

__all__ = ["ChunkSink", "receive_buffer"]

_ZEROS = bytes(1 << 20)


def receive_buffer(size: int) -> mmap.mmap:
    """A reusable receive buffer of ``size`` bytes, page-aligned (an anonymous mapping) for direct writes."""
    return mmap.mmap(-1, size)


class ChunkSink:
    """Writes chunk ``index`` of ``partial`` from pieces; :meth:`finish` checks it and records it done."""

    def __init__(
        self,
        partial: PartialWrite,
        index: int,
        *,
        hashed: bool,
        keep_holes: bool,
        on_bytes: Callable[[int], None],
    ) -> None:
        self.partial = partial
        self.index = index
        offset, length = partial.chunk_range(index)
        self.position = offset
        self.end = offset + length
        self._fd = partial.fileno()
        self._hasher: Hasher | None = new_hasher(partial.algorithm) if hashed else None
        self._keep_holes = keep_holes
        self._on_bytes = on_bytes

    def write(self, buffer: bytearray | mmap.mmap, count: int) -> None:
        """Take the first ``count`` bytes of ``buffer`` as the next piece of the chunk."""
        if self.position + count > self.end:
            raise InvalidInput(
                f"chunk {self.index} of {quoted(self.partial.dest.name)} got more bytes than it holds",
                details={"chunk": self.index},
            )
        view = memoryview(buffer)[:count]
        if self._hasher is not None:
            self._hasher.update(view)
        # bytes.startswith takes any buffer: a memcmp, where comparing memoryviews goes item by item
        if not (self._keep_holes and count <= len(_ZEROS) and _ZEROS.startswith(view)):
            direct = isinstance(buffer, mmap.mmap) and (self.position | count) % DIRECT_ALIGN == 0
            with self.partial.write_lock:  # see PartialWrite.write_lock
                self._put(view, direct)
        self.position += count
        self._on_bytes(count)

    def _put(self, view: memoryview, direct: bool) -> None:
        count = len(view)
        written = 0
        fd = self.partial.direct_fileno() if direct else None
        if fd is not None:
            try:
                written = os.pwrite(fd, view, self.position)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.partial.refuse_direct()  # the device wants larger blocks than DIRECT_ALIGN
        while written < count:
            written += os.pwrite(self._fd, view[written:], self.position + written)

    def finish(self, expected: str | None) -> str | None:
        """Check the length and (when hashed and ``expected``) the digest, then mark the chunk verified."""
        name = self.partial.dest.name
        if self.position != self.end:
            raise InvalidInput(
                f"chunk {self.index} of {quoted(name)} ended {self.end - self.position} bytes short",
                details={"chunk": self.index},
            )
        digest = self._hasher.hexdigest() if self._hasher is not None else None
        if expected is not None and digest is not None and digest != expected.lower():
            raise ChecksumMismatch(
                f"chunk {self.index} of {quoted(name)} arrived damaged: its {self.partial.algorithm} digest "
                f"is {digest}, the source sent {expected}; it will be fetched again",
                details={"chunk": self.index, "expected": expected, "actual": digest},
            )
        # Durable before it is recorded: direct writes into holes leave the allocation to the journal, and
        # buffered pieces sit in the page cache. (Left to the kernel, the dirty pages of 8 fetchers were
        # written back under memory pressure inside our writes: 5-6 s of system time per 2 GiB.)
        os.fdatasync(self._fd)
        self.partial.mark_chunk(self.index, digest)
        return digest
