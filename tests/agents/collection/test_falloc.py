"""fallocate(2) through ctypes: allocation, holes, and filesystems without it."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from beamlink.agents.collection import falloc
from beamlink.agents.collection.falloc import allocate, punch_hole

MIB = 1 << 20


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    descriptor = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    os.ftruncate(descriptor, 8 * MIB)
    yield descriptor
    os.close(descriptor)


def test_allocated_blocks_read_as_zeros_and_keep_the_size(fd: int) -> None:
    assert allocate(fd, MIB, 2 * MIB)
    st = os.fstat(fd)
    assert st.st_size == 8 * MIB
    assert st.st_blocks * 512 == 2 * MIB
    assert os.pread(fd, 2 * MIB, MIB) == bytes(2 * MIB)


def test_a_punched_hole_frees_written_blocks(fd: int) -> None:
    os.pwrite(fd, os.urandom(4 * MIB), 0)
    assert punch_hole(fd, MIB, 2 * MIB)
    assert os.fstat(fd).st_blocks * 512 == 2 * MIB
    assert os.pread(fd, 2 * MIB, MIB) == bytes(2 * MIB)
    assert os.fstat(fd).st_size == 8 * MIB


def _failing(code: int) -> object:
    def fallocate(fd: int, mode: int, offset: int, length: int) -> int:
        ctypes.set_errno(code)
        return -1

    return fallocate


def test_a_filesystem_without_fallocate_answers_false(fd: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(falloc, "_fallocate", _failing(errno.EOPNOTSUPP))
    assert not allocate(fd, 0, MIB)
    assert not punch_hole(fd, 0, MIB)
    assert os.fstat(fd).st_blocks == 0


def test_a_full_disk_is_an_error_naming_it(fd: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(falloc, "_fallocate", _failing(errno.ENOSPC))
    with pytest.raises(OSError, match="No space left on device") as caught:
        allocate(fd, 0, MIB)
    assert caught.value.errno == errno.ENOSPC


def test_a_bad_descriptor_is_an_error() -> None:
    with pytest.raises(OSError, match="Bad file descriptor"):
        allocate(-1, 0, MIB)
