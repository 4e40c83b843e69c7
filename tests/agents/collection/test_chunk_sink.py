"""ChunkSink: pieces from the network, whole blocks written ``O_DIRECT``, the rest through the page cache."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from beamlink.agents.collection import chunk_sink, partial
from beamlink.agents.collection.checksums import hash_bytes
from beamlink.agents.collection.chunk_sink import ChunkSink, receive_buffer
from beamlink.agents.collection.partial import DIRECT_ALIGN, PartialWrite
from beamlink.errors import ChecksumMismatch

PIECE = 256 << 10
CHUNK = 1 << 20


def _is_direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int, int]]:
    """(direct?, offset, length) of every pwrite ChunkSink makes."""
    seen: list[tuple[bool, int, int]] = []
    real = os.pwrite

    def spy(fd: int, data: memoryview, offset: int) -> int:
        seen.append((_is_direct(fd), offset, len(data)))
        return real(fd, data, offset)

    monkeypatch.setattr(chunk_sink.os, "pwrite", spy)
    return seen


def _send(
    target: PartialWrite, data: bytes, buffer: bytearray | mmap.mmap, *, keep_holes: bool = False
) -> None:
    """Every chunk of ``data`` through a ChunkSink, ``PIECE`` bytes at a time, as read_range hands them."""
    for index in range(target.chunk_count):
        offset, length = target.chunk_range(index)
        sink = ChunkSink(target, index, hashed=True, keep_holes=keep_holes, on_bytes=lambda n: None)
        for start in range(offset, offset + length, PIECE):
            piece = data[start : min(start + PIECE, offset + length)]
            buffer[: len(piece)] = piece
            sink.write(buffer, len(piece))
        sink.finish(hash_bytes(data[offset : offset + length], target.algorithm))


@pytest.fixture
def write_file(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    opened: list[PartialWrite] = []

    def write(data: bytes, buffer: bytearray | mmap.mmap, *, keep_holes: bool = False) -> Path:
        target = PartialWrite(tmp_path / "out.bin", size=len(data), source_mtime=1.0, chunk_size=CHUNK)
        opened.append(target)
        _send(target, data, buffer, keep_holes=keep_holes)
        return target.commit()

    yield write
    for target in opened:
        target.close()


def test_the_receive_buffer_is_page_aligned() -> None:
    buffer = receive_buffer(PIECE)
    assert ctypes.addressof(ctypes.c_char.from_buffer(buffer)) % DIRECT_ALIGN == 0


def test_whole_blocks_go_direct_and_the_last_partial_block_through_the_page_cache(
    write_file: Callable[..., Path], writes: list[tuple[bool, int, int]]
) -> None:
    data = os.urandom(3 * CHUNK + PIECE + 1000)  # 4 chunks, the last one ends in an odd piece
    copy = write_file(data, receive_buffer(PIECE))
    assert copy.read_bytes() == data
    direct = [(offset, length) for is_direct, offset, length in writes if is_direct]
    buffered = [(offset, length) for is_direct, offset, length in writes if not is_direct]
    assert buffered == [(3 * CHUNK + PIECE, 1000)]
    assert sum(length for _, length in direct) == len(data) - 1000


def test_a_sink_told_not_to_write_direct_uses_the_page_cache(
    tmp_path: Path, writes: list[tuple[bool, int, int]]
) -> None:
    with PartialWrite(tmp_path / "out.bin", size=CHUNK, source_mtime=1.0, chunk_size=CHUNK) as target:
        sink = ChunkSink(target, 0, hashed=False, keep_holes=False, direct=False, on_bytes=lambda n: None)
        buffer = receive_buffer(PIECE)
        for _ in range(CHUNK // PIECE):
            sink.write(buffer, PIECE)
    assert len(writes) == CHUNK // PIECE
    assert not any(is_direct for is_direct, _, _ in writes)


def test_unaligned_memory_is_written_through_the_page_cache(
    write_file: Callable[..., Path], writes: list[tuple[bool, int, int]]
) -> None:
    data = os.urandom(CHUNK + 5)
    copy = write_file(data, bytearray(PIECE))  # a bytearray's memory is not page-aligned
    assert copy.read_bytes() == data
    assert writes
    assert not any(is_direct for is_direct, _, _ in writes)


def test_a_filesystem_without_direct_io_is_written_through_the_page_cache(
    write_file: Callable[..., Path], writes: list[tuple[bool, int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.open

    def no_direct(path: str, flags: int, *args: int) -> int:
        if flags & os.O_DIRECT:  # what tmpfs before Linux 6.6, and some FUSE filesystems, answer
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(path, flags, *args)

    monkeypatch.setattr(partial.os, "open", no_direct)
    data = os.urandom(2 * CHUNK)
    copy = write_file(data, receive_buffer(PIECE))
    assert copy.read_bytes() == data
    assert len(writes) == 2 * CHUNK // PIECE
    assert not any(is_direct for is_direct, _, _ in writes)


def test_a_refused_direct_write_is_made_through_the_page_cache_and_not_tried_again(
    write_file: Callable[..., Path], writes: list[tuple[bool, int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = chunk_sink.os.pwrite

    def refusing(fd: int, data: memoryview, offset: int) -> int:
        if _is_direct(fd):  # a device whose logical blocks are larger than DIRECT_ALIGN
            writes.append((True, offset, 0))
            raise OSError(errno.EINVAL, "Invalid argument")
        return spy(fd, data, offset)

    monkeypatch.setattr(chunk_sink.os, "pwrite", refusing)
    data = os.urandom(2 * CHUNK)
    copy = write_file(data, receive_buffer(PIECE))
    assert copy.read_bytes() == data
    assert [entry for entry in writes if entry[0]] == [(True, 0, 0)]  # one refusal, then never again


def test_other_errors_of_a_direct_write_are_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: memoryview, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(chunk_sink.os, "pwrite", full)
    with PartialWrite(tmp_path / "out.bin", size=CHUNK, source_mtime=1.0, chunk_size=CHUNK) as target:
        sink = ChunkSink(target, 0, hashed=False, keep_holes=False, on_bytes=lambda n: None)
        with pytest.raises(OSError, match="No space left") as caught:
            sink.write(receive_buffer(PIECE), PIECE)
    assert caught.value.errno == errno.ENOSPC


def test_zero_pieces_of_a_fresh_file_stay_holes(write_file: Callable[..., Path]) -> None:
    data = bytearray(4 * CHUNK)
    data[CHUNK : CHUNK + PIECE] = os.urandom(PIECE)
    copy = write_file(bytes(data), receive_buffer(PIECE), keep_holes=True)
    assert copy.read_bytes() == data
    assert copy.stat().st_blocks * 512 < 2 * PIECE  # only the one piece of data took space


def test_a_damaged_chunk_written_direct_is_not_recorded(tmp_path: Path) -> None:
    with PartialWrite(tmp_path / "out.bin", size=CHUNK, source_mtime=1.0, chunk_size=CHUNK) as target:
        sink = ChunkSink(target, 0, hashed=True, keep_holes=False, on_bytes=lambda n: None)
        buffer = receive_buffer(PIECE)
        for _ in range(CHUNK // PIECE):
            buffer[:] = os.urandom(PIECE)
            sink.write(buffer, PIECE)
        with pytest.raises(ChecksumMismatch):
            sink.finish(hash_bytes(b"something else", target.algorithm))
        assert target.next_missing_chunks() == [0]


def test_the_rest_of_a_chunk_is_allocated_before_its_first_direct_write(tmp_path: Path) -> None:
    with PartialWrite(tmp_path / "out.bin", size=2 * CHUNK, source_mtime=1.0, chunk_size=CHUNK) as target:
        sink = ChunkSink(target, 1, hashed=False, keep_holes=True, on_bytes=lambda n: None)
        buffer = receive_buffer(PIECE)
        sink.write(buffer, PIECE)  # zeros before any data: left a hole, nothing allocated
        assert os.fstat(target.fileno()).st_blocks == 0
        buffer[:] = os.urandom(PIECE)
        sink.write(buffer, PIECE)
        # The rest of chunk 1 is now allocated (the other fetchers' direct writes need not wait), the
        # skipped piece before it and chunk 0 are not.
        assert os.fstat(target.fileno()).st_blocks * 512 == CHUNK - PIECE


def test_without_fallocate_direct_writes_still_land(
    write_file: Callable[..., Path], writes: list[tuple[bool, int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunk_sink, "allocate", lambda fd, offset, length: False)
    data = bytearray(2 * CHUNK)
    data[:PIECE] = os.urandom(PIECE)
    copy = write_file(bytes(data), receive_buffer(PIECE), keep_holes=True)
    assert copy.read_bytes() == data
    assert writes == [(True, 0, PIECE)]
    assert copy.stat().st_blocks * 512 == PIECE
