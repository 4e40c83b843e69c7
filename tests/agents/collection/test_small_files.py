"""write_small: a small file appears whole under its name or not at all, new or replacing another."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest

from beamlink.agents.collection import small_files
from beamlink.agents.collection.checksums import hash_bytes
from beamlink.agents.collection.small_files import write_small
from beamlink.errors import ChecksumMismatch

DATA = os.urandom(4096)


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


@pytest.fixture(params=["unnamed file", "partial name"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of writing: O_TMPFILE + link, and the partial name + rename (no O_TMPFILE here)."""
    if request.param == "partial name":
        real_open = os.open

        def no_tmpfile(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & os.O_TMPFILE == os.O_TMPFILE:
                raise OSError(errno.EOPNOTSUPP, "not supported")
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", no_tmpfile)
        monkeypatch.setattr(small_files, "_no_tmpfile_devices", set())
    return str(request.param)


def test_a_new_file_appears_whole_with_its_mtime(tmp_path: Path, directory: int, way: str) -> None:
    write_small(
        directory, "new ü.bin", DATA, mtime=1_700_000_000.5, expected=("xxh3", hash_bytes(DATA, "xxh3"))
    )
    assert names(tmp_path) == ["new ü.bin"]  # nothing hidden left beside it
    assert (tmp_path / "new ü.bin").read_bytes() == DATA
    assert (tmp_path / "new ü.bin").stat().st_mtime_ns == 1_700_000_000_500_000_000


def test_an_existing_file_is_replaced(tmp_path: Path, directory: int, way: str) -> None:
    (tmp_path / "f").write_bytes(b"old contents, longer than the new ones" * 200)
    write_small(directory, "f", b"new")
    assert (tmp_path / "f").read_bytes() == b"new"
    assert names(tmp_path) == ["f"]


def test_a_symlink_at_the_name_is_replaced_not_followed(tmp_path: Path, directory: int, way: str) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(b"keep")
    (tmp_path / "f").symlink_to(outside)
    write_small(directory, "f", DATA)
    assert not (tmp_path / "f").is_symlink()
    assert (tmp_path / "f").read_bytes() == DATA
    assert outside.read_bytes() == b"keep"


def test_a_damaged_file_leaves_nothing(tmp_path: Path, directory: int, way: str) -> None:
    with pytest.raises(ChecksumMismatch, match="arrived damaged"):
        write_small(directory, "f", DATA, expected=("xxh3", "0" * 32))
    assert names(tmp_path) == []


def test_a_filesystem_without_unnamed_files_does_not_turn_them_off_for_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second filesystem (/dev/shm)")
    monkeypatch.setattr(small_files, "_no_tmpfile_devices", set())
    real_open = os.open
    tmpfiles: list[int] = []

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            device = os.fstat(kwargs["dir_fd"]).st_dev
            tmpfiles.append(device)
            if device == tmp_path.stat().st_dev:
                raise OSError(errno.EOPNOTSUPP, "not supported")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    with TemporaryDirectory(dir=other) as elsewhere:
        for place in (tmp_path, Path(elsewhere), tmp_path, Path(elsewhere)):
            fd = real_open(place, os.O_RDONLY | os.O_DIRECTORY)
            try:
                write_small(fd, "f", DATA)
            finally:
                os.close(fd)
            assert (place / "f").read_bytes() == DATA
        # The failing filesystem was tried once, then written by partial name; the other kept unnamed files.
        assert tmpfiles == [
            tmp_path.stat().st_dev,
            Path(elsewhere).stat().st_dev,
            Path(elsewhere).stat().st_dev,
        ]
