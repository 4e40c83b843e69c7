"""Partial files: atomic publish, resume from verified chunks after a crash, and the same-host copy."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from beamlink.agents.collection.checksums import hash_bytes, hash_file
from beamlink.agents.collection.partial import (
    JOURNAL_SUFFIX,
    PARTIAL_SUFFIX,
    PartialWrite,
    boot_id,
    copy_local,
    is_internal_name,
    partial_paths,
)
from beamlink.errors import (
    ChecksumMismatch,
    Conflict,
    InvalidInput,
    NotFound,
    SourceChanged,
    SourceNotFound,
    TransferOntoItself,
)

CHUNK = 4096
DATA = os.urandom(CHUNK * 5 + 123)  # six chunks, the last one short


def chunk(data: bytes, index: int, size: int = CHUNK) -> bytes:
    return data[index * size : (index + 1) * size]


def open_write(dest: Path, *, data: bytes = DATA, mtime: float = 1000.0, **kw: object) -> PartialWrite:
    return PartialWrite(dest, size=len(data), source_mtime=mtime, chunk_size=CHUNK, **kw)  # type: ignore[arg-type]


def fill(write: PartialWrite, indexes: list[int], data: bytes = DATA) -> None:
    for index in indexes:
        piece = chunk(data, index)
        write.write_chunk(index, piece, hash_bytes(piece, "xxh3"))


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if is_internal_name(p.name))


# -- writing and publishing -----------------------------------------------------------------------------


def test_chunks_in_any_order_are_published_atomically(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    with open_write(dest) as write:
        assert write.chunk_count == 6
        assert write.chunk_range(5) == (5 * CHUNK, 123)
        fill(write, [3, 0, 5])
        assert write.next_missing_chunks() == [1, 2, 4]
        assert write.next_missing_chunks(limit=1) == [1]
        assert not dest.exists()  # nothing under the real name until commit
        assert hidden(tmp_path) == [".out.bin" + PARTIAL_SUFFIX, ".out.bin" + JOURNAL_SUFFIX]
        fill(write, [1, 2, 4])
        assert write.commit() == dest
    assert dest.read_bytes() == DATA
    assert hidden(tmp_path) == []


def test_a_single_chunk_file_keeps_no_journal(tmp_path: Path) -> None:
    dest = tmp_path / "small"
    with PartialWrite(dest, size=5, source_mtime=1.0, chunk_size=CHUNK) as write:
        write.write_chunk(0, b"hello", hash_bytes(b"hello", "xxh3"))
        assert hidden(tmp_path) == [".small" + PARTIAL_SUFFIX]
        write.commit()
    assert dest.read_bytes() == b"hello"


def test_a_zero_byte_file(tmp_path: Path) -> None:
    dest = tmp_path / "empty"
    with PartialWrite(dest, size=0, source_mtime=1.0) as write:
        assert write.chunk_count == 0
        assert write.next_missing_chunks() == []
        write.commit()
    assert dest.read_bytes() == b""
    assert hidden(tmp_path) == []


def test_commit_replaces_an_existing_file_and_can_keep_the_source_mtime(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with open_write(dest, mtime=1_600_000_000.123456) as write:
        fill(write, list(range(6)))
        write.commit(preserve_mtime=True)
    assert dest.read_bytes() == DATA
    assert dest.stat().st_mtime == pytest.approx(1_600_000_000.123456, abs=1e-6)


def test_a_streamed_chunk_is_verified_at_the_end(tmp_path: Path) -> None:
    with open_write(tmp_path / "s") as write:
        piece = chunk(DATA, 2)
        writer = write.open_chunk(2)
        for start in range(0, len(piece), 1000):
            writer.write(piece[start : start + 1000])
        assert writer.finish(hash_bytes(piece, "xxh3").upper()) == hash_bytes(piece, "xxh3")
        assert 2 in write.chunk_digests


def test_a_damaged_chunk_is_refused_and_not_recorded(tmp_path: Path) -> None:
    with open_write(tmp_path / "d") as write:
        with pytest.raises(ChecksumMismatch, match="chunk 1 of 'd' arrived damaged") as caught:
            write.write_chunk(1, chunk(DATA, 1), hash_bytes(b"something else", "xxh3"))
        assert caught.value.details["chunk"] == 1
        assert write.next_missing_chunks()[:2] == [0, 1]


def test_a_chunk_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    with open_write(tmp_path / "w") as write:
        with pytest.raises(InvalidInput, match="4096 bytes; got 10"):
            write.write_chunk(0, b"x" * 10)
        with pytest.raises(InvalidInput, match="got more"):
            write.write_chunk(5, b"x" * 200)
        with pytest.raises(InvalidInput, match="out of range"):
            write.write_chunk(6, b"")


def test_commit_needs_every_chunk(tmp_path: Path) -> None:
    with open_write(tmp_path / "c") as write:
        fill(write, [0, 1])
        with pytest.raises(Conflict, match=r"chunks \[2, 3, 4, 5\] are not written yet"):
            write.commit()


def test_a_whole_file_checksum_that_does_not_match_discards_the_copy(tmp_path: Path) -> None:
    dest = tmp_path / "x"
    with open_write(dest, source_checksum=hash_bytes(b"another file", "xxh3")) as write:
        fill(write, list(range(6)))
        with pytest.raises(ChecksumMismatch, match="does not match the source checksum"):
            write.commit()
    assert not dest.exists()
    assert hidden(tmp_path) == []
    with open_write(dest, source_checksum=hash_bytes(DATA, "xxh3")) as write:
        fill(write, list(range(6)))
        write.commit()
    assert dest.read_bytes() == DATA


@pytest.mark.parametrize("algorithm", ["blake3", "sha256", "md5"])
def test_other_algorithms(tmp_path: Path, algorithm: str) -> None:
    with open_write(tmp_path / "a", algorithm=algorithm) as write:
        for index in range(6):
            write.write_chunk(index, chunk(DATA, index), hash_bytes(chunk(DATA, index), algorithm))
        write.commit()
    assert (tmp_path / "a").read_bytes() == DATA


def test_abort_removes_everything(tmp_path: Path) -> None:
    write = open_write(tmp_path / "gone")
    fill(write, [0])
    write.abort()
    assert list(tmp_path.iterdir()) == []


def test_two_writers_of_one_file_conflict(tmp_path: Path) -> None:
    with open_write(tmp_path / "busy"), pytest.raises(Conflict, match="another transfer is writing 'busy'"):
        open_write(tmp_path / "busy")


def test_the_destination_must_not_be_a_directory_and_its_parent_must_exist(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(Conflict, match="is a directory"):
        open_write(tmp_path / "dir")
    with pytest.raises(NotFound, match="does not exist"):
        open_write(tmp_path / "no" / "such")


def test_partial_names_are_hidden_beside_the_file_and_fit_long_names(tmp_path: Path) -> None:
    assert partial_paths(tmp_path / "a b.h5") == (
        tmp_path / (".a b.h5" + PARTIAL_SUFFIX),
        tmp_path / (".a b.h5" + JOURNAL_SUFFIX),
    )
    long_name = "n" * 250
    partial, journal = partial_paths(tmp_path / long_name)
    assert len(partial.name) < 100
    assert is_internal_name(partial.name)
    assert is_internal_name(journal.name)
    with PartialWrite(tmp_path / long_name, size=3, source_mtime=1.0) as write:
        write.write_chunk(0, b"abc")
        write.commit()
    assert (tmp_path / long_name).read_bytes() == b"abc"


def test_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    dest = tmp_path / os.fsdecode(b"\xff\xfe data")
    with PartialWrite(dest, size=3, source_mtime=1.0) as write:
        write.write_chunk(0, b"abc")
        write.commit()
    assert os.listdir(os.fsencode(tmp_path)) == [b"\xff\xfe data"]


# -- resume ------------------------------------------------------------------------------------------------


def test_a_reopened_write_resumes_from_its_verified_chunks(tmp_path: Path) -> None:
    dest = tmp_path / "big"
    write = open_write(dest)
    fill(write, [0, 2, 3])
    write.close()  # what a crash leaves on disk
    del write
    with open_write(dest) as again:
        assert again.resumed_chunks == 3
        assert again.next_missing_chunks() == [1, 4, 5]
        assert not again.is_clean(1)  # may hold bytes of the unfinished attempt
        fill(again, again.next_missing_chunks())
        again.commit()
    assert hash_file(dest, "xxh3") == hash_bytes(DATA, "xxh3")


def test_an_agent_killed_mid_file_resumes_where_it_was(tmp_path: Path) -> None:
    dest = tmp_path / "killed.bin"
    source = tmp_path / "source.bin"
    source.write_bytes(DATA)
    script = textwrap.dedent(
        f"""
        import os, signal
        from beamlink.agents.collection.partial import PartialWrite
        data = open({str(source)!r}, "rb").read()
        write = PartialWrite({str(dest)!r}, size=len(data), source_mtime=1000.0, chunk_size={CHUNK})
        for index in (0, 1, 2):
            write.write_chunk(index, data[index * {CHUNK}:(index + 1) * {CHUNK}])
        # chunk 3 is half written, then the process dies without closing anything
        os.pwrite(write.fileno(), b"garbage" * 100, 3 * {CHUNK})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], check=False)
    assert result.returncode == -9
    with open_write(dest) as write:
        assert write.next_missing_chunks() == [3, 4, 5]
        fill(write, write.next_missing_chunks())
        write.commit()
    assert dest.read_bytes() == DATA


@pytest.mark.parametrize(
    "changed",
    [
        {"mtime": 2000.0},
        {"data": DATA + b"more"},
        {"source_checksum": "ab" * 16},
        {"algorithm": "sha256"},
    ],
)
def test_a_changed_source_starts_again_from_zero(tmp_path: Path, changed: dict[str, object]) -> None:
    dest = tmp_path / "f"
    with open_write(dest) as write:
        fill(write, [0, 1, 2])
    with open_write(dest, **changed) as again:  # type: ignore[arg-type]
        assert again.resumed_chunks == 0
        assert again.next_missing_chunks() == list(range(again.chunk_count))
        assert again.is_clean(0)


def test_a_torn_journal_line_costs_only_its_chunk(tmp_path: Path) -> None:
    dest = tmp_path / "torn"
    with open_write(dest) as write:
        fill(write, [0, 1])
        journal = write.journal_path
    with open(journal, "ab") as stream:
        stream.write(b'{"chunk": 2, "dig')  # the crash cut this line short
    with open_write(dest) as again:
        assert again.next_missing_chunks() == [2, 3, 4, 5]
        fill(again, [3])
    with open_write(dest) as third:  # the line after the torn one still counts
        assert third.next_missing_chunks() == [2, 4, 5]
        fill(third, [2, 4, 5])
        third.commit()
    assert dest.read_bytes() == DATA


def test_after_a_reboot_only_chunks_that_still_verify_are_kept(tmp_path: Path) -> None:
    """No chunk is fsynced: a journal from another boot may claim pages the crash lost, so each chunk
    is hashed again; one the machine lost (here: zeroed) and one recorded without a digest go again."""
    dest = tmp_path / "rebooted"
    with open_write(dest) as write:
        fill(write, [0, 1, 2])
        write.mark_chunk(3, None)  # a same-host copy without verify records no digest
        partial, journal = write.partial_path, write.journal_path
    header, *chunk_lines = journal.read_bytes().splitlines(keepends=True)
    this_boot = boot_id()
    assert this_boot is not None
    assert json.loads(header)["boot_id"] == this_boot
    journal.write_bytes(header.replace(this_boot.encode(), b"another-boot") + b"".join(chunk_lines))
    with open(partial, "r+b") as stream:  # chunk 1's pages never reached the disk
        stream.seek(CHUNK)
        stream.write(bytes(CHUNK))
    with open_write(dest) as again:
        assert again.resumed_chunks == 2
        assert again.next_missing_chunks() == [1, 3, 4, 5]
        fill(again, [1])
    with open_write(dest) as third:  # the rechecked journal is this boot's now
        assert third.next_missing_chunks() == [3, 4, 5]
        fill(third, [3, 4, 5])
        third.commit()
    assert dest.read_bytes() == DATA


def test_a_lost_partial_file_starts_again(tmp_path: Path) -> None:
    dest = tmp_path / "lost"
    with open_write(dest) as write:
        fill(write, [0, 1])
        partial = write.partial_path
    partial.unlink()
    with open_write(dest) as again:
        assert again.resumed_chunks == 0


# -- copy_local ------------------------------------------------------------------------------------------


def test_copy_local(tmp_path: Path) -> None:
    source = tmp_path / "src data ü.bin"
    source.write_bytes(DATA)
    os.utime(source, (1_500_000_000.5, 1_500_000_000.5))
    result = copy_local(source, tmp_path / "dst.bin", chunk_size=CHUNK, preserve_mtime=True)
    assert (result.size, result.chunks_copied, result.chunks_resumed) == (len(DATA), 6, 0)
    assert result.method == "copy_file_range"
    assert (tmp_path / "dst.bin").read_bytes() == DATA
    assert (tmp_path / "dst.bin").stat().st_mtime == pytest.approx(1_500_000_000.5, abs=1e-6)
    assert hidden(tmp_path) == []


def test_copy_local_of_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e").write_bytes(b"")
    result = copy_local(tmp_path / "e", tmp_path / "copy", durable=True)
    assert (result.size, result.chunks_copied, result.method) == (0, 0, "none")
    assert (tmp_path / "copy").read_bytes() == b""


def test_copy_local_resumes_an_interrupted_copy(tmp_path: Path) -> None:
    source = tmp_path / "s"
    source.write_bytes(DATA)
    mtime = source.stat().st_mtime
    with open_write(tmp_path / "d", mtime=mtime) as write:
        fill(write, [0, 1, 2, 3])
    result = copy_local(source, tmp_path / "d", chunk_size=CHUNK)
    assert (result.chunks_resumed, result.chunks_copied) == (4, 2)
    assert (tmp_path / "d").read_bytes() == DATA


def test_copy_local_refuses_bad_sources_and_itself(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFound):
        copy_local(tmp_path / "nope", tmp_path / "d")
    (tmp_path / "dir").mkdir()
    with pytest.raises(InvalidInput, match="not a regular file"):
        copy_local(tmp_path / "dir", tmp_path / "d")
    (tmp_path / "same").write_bytes(b"x")
    (tmp_path / "alias").symlink_to("same")
    with pytest.raises(TransferOntoItself):
        copy_local(tmp_path / "same", tmp_path / "same")
    with pytest.raises(TransferOntoItself):
        copy_local(tmp_path / "alias", tmp_path / "same")


@pytest.mark.parametrize(
    ("broken", "method"),
    [(["copy_file_range"], "sendfile"), (["copy_file_range", "sendfile"], "read/write")],
)
def test_copy_local_falls_back_when_kernel_copies_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: list[str], method: str
) -> None:
    def refuse(*_: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    for name in broken:
        monkeypatch.setattr(os, name, refuse)
    (tmp_path / "s").write_bytes(DATA)
    result = copy_local(tmp_path / "s", tmp_path / "d", chunk_size=CHUNK)
    assert result.method == method
    assert (tmp_path / "d").read_bytes() == DATA


def test_copy_local_notices_a_source_that_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "s"
    source.write_bytes(DATA)
    real = os.copy_file_range  # the same os module partial.py uses

    def copy_then_touch(*args: int) -> int:
        moved = real(*args)
        os.utime(source, (1.0, 1.0))
        return moved

    monkeypatch.setattr(os, "copy_file_range", copy_then_touch)
    with pytest.raises(SourceChanged, match="changed while it was copied"):
        copy_local(source, tmp_path / "d", chunk_size=CHUNK)
    assert not (tmp_path / "d").exists()


def test_copy_local_keeps_a_small_sparse_file_sparse_and_verified(tmp_path: Path) -> None:
    source = tmp_path / "sparse"
    with open(source, "wb") as stream:
        stream.truncate(64 << 20)
        stream.seek(20 << 20)
        stream.write(b"data in the middle")
    result = copy_local(source, tmp_path / "copy", chunk_size=1 << 20, verify=True)
    assert result.chunks_copied == 64
    assert hash_file(tmp_path / "copy", "xxh3") == hash_file(source, "xxh3")
    assert (tmp_path / "copy").stat().st_blocks * 512 < 4 << 20


@pytest.mark.slow
def test_copy_local_of_a_large_sparse_file(tmp_path: Path) -> None:
    # 1 GiB, not 3: on the 2-core test VM the first read of a fresh file's holes runs at ~300 MB/s (the
    # kernel fills the page cache with zero pages), so hashing two 3 GiB files took over 20 s.
    size = 1 << 30
    source = tmp_path / "sparse"
    with open(source, "wb") as stream:
        stream.truncate(size)
        for offset in (0, size // 3, size - 100):
            stream.seek(offset)
            stream.write(os.urandom(100))
    result = copy_local(source, tmp_path / "copy", verify=False)
    assert (result.size, result.chunks_copied) == (size, 16)
    assert (tmp_path / "copy").stat().st_blocks * 512 < 16 << 20
    assert hash_file(tmp_path / "copy", "xxh3") == hash_file(source, "xxh3")
