"""The transfer worker end to end: a real data server on a free port, two temporary collections.

Behaviour that does not depend on where bytes come from runs twice, pulling from a data server
("remote") and from a collection on this host ("local", the copy_file_range fast path).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from beamlink.agents.collection.checksums import hash_file
from beamlink.agents.collection.dataserver import DataServer
from beamlink.agents.collection.fsops import walk
from beamlink.agents.collection.partial import PARTIAL_SUFFIX
from beamlink.agents.collection.paths import CollectionRoot
from beamlink.agents.collection.plan import FileInfo, SyncLevel
from beamlink.agents.collection.pull import (
    SMALL_FILE,
    EventCode,
    Progress,
    TransferEvent,
    TransferSpec,
    TransferStatus,
    TransferSummary,
    run_transfer,
)
from beamlink.agents.collection.sources import (
    BatchFile,
    DataServerUnreachable,
    LocalSource,
    RangeReply,
    RangeSink,
    RetryPolicy,
    SourceClient,
)
from beamlink.protocol.data_tokens import sign

KEY = b"p" * 32
FAST = RetryPolicy(attempts=4, initial=0.01, maximum=0.02)
CHUNK = 64 << 10
BIG = os.urandom(CHUNK * 20 + 123)  # 21 chunks, more than SMALL_FILE: fetched by ranges
ODD = os.fsdecode(b"r\xe9sum\xe9 \xff.txt")
ALL = ("read", "list", "checksum")
assert len(BIG) > SMALL_FILE


@dataclass
class Pulled:
    summary: TransferSummary
    events: list[TransferEvent] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)

    @property
    def status(self) -> TransferStatus:
        return self.summary.status

    @property
    def final(self) -> Progress:
        return self.summary.progress

    def codes(self) -> list[EventCode]:
        return [event.code for event in self.events]

    def of(self, code: EventCode) -> list[TransferEvent]:
        return [event for event in self.events if event.code is code]


def pull(
    source: Path,
    destination: Path,
    spec: TransferSpec,
    *,
    local: bool = False,
    client: type[SourceClient] = SourceClient,
    operations: tuple[str, ...] = ALL,
) -> Pulled:
    """Serve ``source`` on a free port (unless ``local``) and pull ``spec`` into ``destination``."""

    async def main() -> Pulled:
        events: list[TransferEvent] = []
        progress: list[Progress] = []
        cancel = asyncio.Event()
        server = None
        origin: SourceClient | LocalSource
        if local:
            origin = LocalSource(CollectionRoot(source), retry=FAST)
        else:
            server = DataServer(CollectionRoot(source), collection_id="src", key=KEY)
            port = await server.start()
            token = sign(KEY, collection_id="src", path="", operations=operations, ttl_seconds=60)
            origin = client(f"http://127.0.0.1:{port}", token, retry=FAST)
            if isinstance(origin, _Cancelling):
                loop = asyncio.get_running_loop()
                origin.cancel = lambda: loop.call_soon_threadsafe(cancel.set)
        try:
            summary = await run_transfer(
                spec,
                local=CollectionRoot(destination),
                source=origin,
                on_event=events.append,
                on_progress=progress.append,
                cancel=cancel,
                progress_period=0.05,
            )
        finally:
            origin.close()
            if server is not None:
                await server.stop()
        return Pulled(summary, events, progress)

    return asyncio.run(main())


def tree(root: Path, path: str) -> dict[str, tuple[str, str]]:
    """Each entry of ``path`` with its type and content hash."""
    collection = CollectionRoot(root)
    return {
        info.path: (info.type, hash_file(collection.resolve(f"{path}/{info.path}".rstrip("/")), "xxh3"))
        if info.type == "file"
        else (info.type, "")
        for info in walk(collection, path, recursive=True)
    }


def spec(*items: tuple[str, str, bool], **options: Any) -> TransferSpec:
    return TransferSpec(items=items, **{"chunk_size": CHUNK, "concurrency": 4, **options})


@pytest.fixture(params=["remote", "local"])
def local(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "local")


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    source, destination = tmp_path / "src", tmp_path / "dst"
    data = source / "data"
    for d in range(3):
        for f in range(40):
            (data / f"d{d}" / "deeper").mkdir(parents=True, exist_ok=True)
            (data / f"d{d}" / f"small{f:02d}.txt").write_bytes(os.urandom(f * 37))  # some are empty
    (data / "d1" / "deeper" / "big.bin").write_bytes(BIG)
    (data / "empty").mkdir()
    (data / "zero.dat").write_bytes(b"")
    (data / "notes.md").write_text("# notes")
    with open(os.path.join(os.fsencode(data), os.fsencode(ODD)), "wb") as stream:
        stream.write(b"not UTF-8 in the name")
    destination.mkdir()
    return source, destination


# -- copying --------------------------------------------------------------------------------------------


def test_a_tree_is_pulled_whole(roots: tuple[Path, Path], local: bool) -> None:
    source, destination = roots
    result = pull(source, destination, spec(("data", "copy", True), verify_checksum=True), local=local)
    assert result.status is TransferStatus.SUCCEEDED, result.summary
    assert tree(destination, "copy") == tree(source, "data")
    assert result.codes() == [EventCode.STARTED, EventCode.SUCCEEDED]
    files = 3 * 40 + 4
    expected = sum(p.stat().st_size for p in (source / "data").rglob("*") if p.is_file())
    assert result.final == Progress(
        files=files,
        directories=1 + 3 * 2 + 1,
        files_planned=files,
        bytes_planned=expected,
        bytes_transferred=expected,
    )
    assert result.progress[-1] == result.final
    leftovers = [p for p in destination.rglob("*") if p.name.endswith((PARTIAL_SUFFIX, ".jsonl"))]
    assert leftovers == []


def test_a_second_run_with_a_sync_level_skips_what_is_current(roots: tuple[Path, Path], local: bool) -> None:
    source, destination = roots
    options = {"sync_level": SyncLevel.MTIME, "preserve_timestamps": True}
    pull(source, destination, spec(("data", "copy", True), **options), local=local)
    big = source / "data" / "d1" / "deeper" / "big.bin"
    # Float seconds carry ~0.2 µs of precision at today's dates: equal to well under a microsecond.
    assert (
        abs((destination / "copy" / "d1" / "deeper" / "big.bin").stat().st_mtime - big.stat().st_mtime) < 1e-6
    )
    again = pull(source, destination, spec(("data", "copy", True), **options), local=local)
    assert (again.final.files, again.final.skipped, again.final.bytes_transferred) == (0, 124, 0)
    # Same size, other bytes: only the checksum level notices.
    (destination / "copy" / "notes.md").write_text("# NOTES")
    size_level = pull(
        source, destination, spec(("data", "copy", True), sync_level=SyncLevel.SIZE), local=local
    )
    assert size_level.final.files == 0
    checksum_level = pull(
        source, destination, spec(("data", "copy", True), sync_level=SyncLevel.CHECKSUM), local=local
    )
    assert (checksum_level.final.files, checksum_level.final.skipped) == (1, 123)
    assert (destination / "copy" / "notes.md").read_text() == "# notes"


def test_delete_extra_and_filters(roots: tuple[Path, Path], local: bool) -> None:
    source, destination = roots
    pull(source, destination, spec(("data", "copy", True)), local=local)
    (destination / "copy" / "extra.txt").write_text("extra")
    (destination / "copy" / "gone").mkdir()
    (destination / "copy" / "gone" / "inside").write_text("x")
    (destination / "copy" / "keep.log").write_text("excluded: protected")
    result = pull(
        source,
        destination,
        spec(("data", "copy", True), sync_level=SyncLevel.SIZE, delete_extra=True, exclude=("*.log",)),
        local=local,
    )
    assert result.status is TransferStatus.SUCCEEDED
    assert sorted(e.details["path"] for e in result.of(EventCode.DELETED_EXTRA)) == [
        "copy/extra.txt",
        "copy/gone",
    ]
    assert result.final.deleted == 2
    assert not (destination / "copy" / "gone").exists()
    assert (destination / "copy" / "keep.log").exists()


def test_include_and_exclude_choose_the_files(roots: tuple[Path, Path], local: bool) -> None:
    source, destination = roots
    result = pull(source, destination, spec(("data", "copy", True), include=("*.md", "big.*")), local=local)
    copied = sorted(
        str(p.relative_to(destination / "copy")) for p in (destination / "copy").rglob("*") if p.is_file()
    )
    assert copied == ["d1/deeper/big.bin", "notes.md"]
    assert result.final.files == 2


def test_a_single_file_goes_to_its_full_destination_path(roots: tuple[Path, Path], local: bool) -> None:
    source, destination = roots
    result = pull(
        source,
        destination,
        spec(("data/d1/deeper/big.bin", "new/place/big.copy", False), ("data/zero.dat", "zero", False)),
        local=local,
    )
    assert result.status is TransferStatus.SUCCEEDED
    assert (destination / "new" / "place" / "big.copy").read_bytes() == BIG
    assert (destination / "zero").read_bytes() == b""


# -- source and destination problems --------------------------------------------------------------------


def test_a_missing_source_fails_the_transfer(roots: tuple[Path, Path], local: bool) -> None:
    source, destination = roots
    result = pull(
        source, destination, spec(("nothing", "copy", True), ("data/notes.md", "n.md", False)), local=local
    )
    assert result.status is TransferStatus.FAILED
    assert result.codes() == [
        EventCode.STARTED,
        EventCode.SOURCE_NOT_FOUND,
        EventCode.FAULT,
        EventCode.FAILED,
    ]
    assert result.summary.faults[0].code == "SOURCE_NOT_FOUND"
    assert result.summary.reason is not None
    assert "'nothing' does not exist" in result.summary.reason
    assert (destination / "n.md").exists()  # the other item still went


def test_skip_source_errors_lets_it_succeed(roots: tuple[Path, Path], local: bool) -> None:
    source, destination = roots
    result = pull(
        source,
        destination,
        spec(("nothing", "copy", True), ("data/notes.md", "n.md", False), skip_source_errors=True),
        local=local,
    )
    assert result.status is TransferStatus.SUCCEEDED
    assert result.of(EventCode.SKIPPED_SOURCE_ERROR)[0].details == {
        "path": "nothing",
        "error_code": "SOURCE_NOT_FOUND",
    }
    assert (result.final.skipped, result.final.files) == (1, 1)


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """Make a directory unwritable even for root (``chattr +i``); skip where that is impossible."""
    frozen: list[Path] = []

    def freeze(path: Path) -> None:
        if os.geteuid() != 0:
            path.chmod(0o555)
        elif (
            shutil.which("chattr") is None
            or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode
        ):
            pytest.skip("cannot make a directory unwritable for root here (chattr +i)")
        frozen.append(path)

    yield freeze
    for path in frozen:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=False)
        path.chmod(0o755)


def test_an_unwritable_destination_is_a_fault_naming_the_path(
    roots: tuple[Path, Path], local: bool, immutable: Callable[[Path], None]
) -> None:
    source, destination = roots
    (destination / "copy").mkdir()
    immutable(destination / "copy")
    result = pull(
        source,
        destination,
        spec(("data/notes.md", "copy/notes.md", False), ("data/d1/deeper/big.bin", "copy/big", False)),
        local=local,
    )
    assert result.status is TransferStatus.FAILED
    faults = {fault.path: fault for fault in result.summary.faults}
    assert set(faults) == {"copy/notes.md", "copy/big"}
    for path, fault in faults.items():
        assert fault.code == "DESTINATION_NOT_WRITABLE"
        assert f"'{path}'" in fault.message
    assert all(e.details["error_code"] == "DESTINATION_NOT_WRITABLE" for e in result.of(EventCode.FAULT))


def test_a_type_conflict_and_a_transfer_onto_itself_are_faults(roots: tuple[Path, Path], local: bool) -> None:
    source, destination = roots
    (destination / "copy").mkdir()
    (destination / "copy" / "d0").write_text("a file where the source has a directory")
    conflict = pull(source, destination, spec(("data", "copy", True)), local=local)
    assert [f.code for f in conflict.summary.faults] == ["CONFLICT"]
    assert (destination / "copy" / "d0").read_text().startswith("a file")
    itself = pull(
        source,
        destination,
        spec(("data", "data", True), source_collection_id="c", destination_collection_id="c"),
        local=local,
    )
    assert [f.code for f in itself.summary.faults] == ["TRANSFER_ONTO_ITSELF"]


def test_a_deadline_already_past_fails_at_once(roots: tuple[Path, Path], local: bool) -> None:
    source, destination = roots
    result = pull(source, destination, spec(("data", "copy", True), deadline=1.0), local=local)
    assert result.status is TransferStatus.FAILED
    assert result.summary.reason is not None
    assert result.summary.reason.startswith("the deadline 1970-01-01T00:00:01+00:00 passed")
    assert result.codes() == [EventCode.STARTED, EventCode.DEADLINE_EXCEEDED, EventCode.FAILED]
    assert not (destination / "copy").exists()


class _Slow(SourceClient):
    """Takes a while over every chunk."""

    def read_range(self, path: str, offset: int, length: int, sink: RangeSink, **kw: Any) -> RangeReply:
        time.sleep(0.1)
        return super().read_range(path, offset, length, sink, **kw)


def test_a_deadline_passing_mid_transfer_stops_it(roots: tuple[Path, Path]) -> None:
    source, destination = roots
    item = ("data/d1/deeper/big.bin", "big", False)
    result = pull(source, destination, spec(item, concurrency=1, deadline=time.time() + 0.5), client=_Slow)
    assert result.status is TransferStatus.FAILED
    assert result.codes()[-2:] == [EventCode.DEADLINE_EXCEEDED, EventCode.FAILED]
    assert 0 < result.final.bytes_transferred < len(BIG)
    assert not (destination / "big").exists()


# -- integrity and recovery (remote) --------------------------------------------------------------------


class _Corrupting(SourceClient):
    """Flips a byte of what arrives: in the first ``times`` range reads and batches (forever with -1)."""

    times = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.left = {"range": self.times, "batch": self.times}
        self.lock = threading.Lock()

    def _take(self, kind: str) -> bool:
        with self.lock:
            if self.left[kind] == 0:
                return False
            self.left[kind] -= 1
            return True

    def read_range(self, path: str, offset: int, length: int, sink: RangeSink, **kw: Any) -> RangeReply:
        if not self._take("range"):
            return super().read_range(path, offset, length, sink, **kw)

        def damaged(buffer: bytearray, count: int) -> None:
            buffer[0] ^= 0xFF
            sink(buffer, count)

        return super().read_range(path, offset, length, damaged, **kw)

    def read_batch(self, paths: list[str], **kw: Any) -> Iterator[BatchFile]:
        corrupt = self._take("batch")
        for item in super().read_batch(paths, **kw):
            if corrupt and item.size:
                item = BatchFile(item.path, item.size, item.mtime, b"\x00" + item.data[1:], item.digest)
                corrupt = False
            yield item


class _AlwaysCorrupting(_Corrupting):
    times = -1


def test_a_damaged_chunk_or_file_is_sent_again(roots: tuple[Path, Path]) -> None:
    source, destination = roots
    result = pull(source, destination, spec(("data", "copy", True), verify_checksum=True), client=_Corrupting)
    assert result.status is TransferStatus.SUCCEEDED, result.summary
    assert tree(destination, "copy") == tree(source, "data")
    mismatches = result.of(EventCode.CHECKSUM_MISMATCH)
    assert len(mismatches) == 2  # one chunk of big.bin, one small file
    assert {"chunk" in e.details for e in mismatches} == {True, False}
    assert result.final.retried == 2


def test_a_file_that_never_arrives_intact_is_a_fault_after_bounded_retries(roots: tuple[Path, Path]) -> None:
    source, destination = roots
    result = pull(
        source,
        destination,
        spec(("data/d1/deeper/big.bin", "big", False), verify_checksum=True, max_file_retries=2),
        client=_AlwaysCorrupting,
    )
    assert result.status is TransferStatus.FAILED
    assert len(result.of(EventCode.CHECKSUM_MISMATCH)) == 3
    assert [f.code for f in result.summary.faults] == ["CHECKSUM_MISMATCH"]
    assert "sent 3 times" in result.summary.faults[0].message
    assert not (destination / "big").exists()


def test_without_verification_damage_goes_unnoticed(roots: tuple[Path, Path]) -> None:
    """The control for the two tests above: it is verify_checksum that catches the damage."""
    source, destination = roots
    result = pull(source, destination, spec(("data/d1/deeper/big.bin", "big", False)), client=_Corrupting)
    assert result.status is TransferStatus.SUCCEEDED
    assert (destination / "big").read_bytes() != BIG


class _Flaky(SourceClient):
    """The connection breaks on the first walk, range read and batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.broken: set[str] = set()

    def _once(self, kind: str) -> None:
        if kind not in self.broken:
            self.broken.add(kind)
            raise DataServerUnreachable(f"injected: the connection broke during a {kind}")

    def walk(self, path: str, *, recursive: bool) -> Iterator[FileInfo]:
        for count, info in enumerate(super().walk(path, recursive=recursive)):
            if count == 5:
                self._once("walk")
            yield info

    def read_range(self, path: str, offset: int, length: int, sink: RangeSink, **kw: Any) -> RangeReply:
        self._once("range")
        return super().read_range(path, offset, length, sink, **kw)

    def read_batch(self, paths: list[str], **kw: Any) -> Iterator[BatchFile]:
        for count, item in enumerate(super().read_batch(paths, **kw)):
            if count == 3:
                self._once("batch")
            yield item


def test_transient_errors_are_retried_with_backoff(roots: tuple[Path, Path]) -> None:
    source, destination = roots
    result = pull(source, destination, spec(("data", "copy", True)), client=_Flaky)
    assert result.status is TransferStatus.SUCCEEDED, result.summary
    assert tree(destination, "copy") == tree(source, "data")
    retries = result.of(EventCode.RETRY)
    assert len(retries) == 3
    assert {e.details["error_code"] for e in retries} == {"DATA_SERVER_UNREACHABLE"}
    assert result.final.files == 124  # nothing twice, nothing lost


def test_client_errors_are_not_retried(roots: tuple[Path, Path]) -> None:
    source, destination = roots
    result = pull(
        source,
        destination,
        spec(("data/d1/deeper/big.bin", "big", False), verify_checksum=True),
        operations=("read", "list"),  # no checksum: verification is refused
    )
    assert result.status is TransferStatus.FAILED
    assert result.of(EventCode.RETRY) == []
    assert [f.code for f in result.summary.faults] == ["PERMISSION_DENIED"]


class _Cancelling(SourceClient):
    """Cancels the transfer once a few chunks have arrived."""

    cancel: Callable[[], object] = staticmethod(lambda: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = 0
        self.lock = threading.Lock()

    def read_range(self, path: str, offset: int, length: int, sink: RangeSink, **kw: Any) -> RangeReply:
        reply = super().read_range(path, offset, length, sink, **kw)
        with self.lock:
            self.reads += 1
            if self.reads == 5:
                self.cancel()
                time.sleep(0.2)  # let the worker see the stop before it asks for more
        return reply


def test_an_interrupted_pull_resumes_from_its_verified_chunks(roots: tuple[Path, Path]) -> None:
    source, destination = roots
    item = ("data/d1/deeper/big.bin", "big", False)
    first = pull(source, destination, spec(item, verify_checksum=True, concurrency=1), client=_Cancelling)
    assert first.status is TransferStatus.CANCELLED
    assert first.codes()[-1] is EventCode.CANCELLED
    assert not (destination / "big").exists()
    assert (destination / f".big{PARTIAL_SUFFIX}").exists()  # kept for the resume
    fetched_before = first.final.bytes_transferred
    assert CHUNK * 5 <= fetched_before < len(BIG)
    second = pull(source, destination, spec(item, verify_checksum=True))
    assert second.status is TransferStatus.SUCCEEDED
    assert second.final.bytes_resumed >= CHUNK * 5
    assert second.final.bytes_transferred + second.final.bytes_resumed == len(BIG)
    assert (destination / "big").read_bytes() == BIG
    assert not (destination / f".big{PARTIAL_SUFFIX}").exists()


def test_a_source_changed_since_the_listing_is_fetched_again(roots: tuple[Path, Path]) -> None:
    source, destination = roots
    big = source / "data" / "d1" / "deeper" / "big.bin"

    class Changing(SourceClient):
        changed = False

        def read_range(self, path: str, offset: int, length: int, sink: RangeSink, **kw: Any) -> RangeReply:
            if not Changing.changed:
                Changing.changed = True
                big.write_bytes(BIG[::-1])
            return super().read_range(path, offset, length, sink, **kw)

    result = pull(
        source, destination, spec(("data/d1/deeper/big.bin", "big", False), concurrency=1), client=Changing
    )
    assert result.status is TransferStatus.SUCCEEDED, result.summary
    assert (destination / "big").read_bytes() == BIG[::-1]
    assert [e.details["error_code"] for e in result.of(EventCode.RETRY)] == ["SOURCE_CHANGED"]


@pytest.mark.parametrize("direct", [True, False])
def test_direct_writes_can_be_turned_off(
    roots: tuple[Path, Path], direct: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole blocks of a large file go O_DIRECT unless the collection's direct_writes is false."""
    source, destination = roots
    flags: list[bool] = []
    real = os.pwrite

    def spy(fd: int, data: memoryview, offset: int) -> int:
        flags.append(bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", spy)
    result = pull(
        source, destination, spec(("data/d1/deeper/big.bin", "copy.bin", False), direct_writes=direct)
    )
    assert result.status is TransferStatus.SUCCEEDED
    assert (destination / "copy.bin").read_bytes() == BIG
    assert any(flags) is direct
    assert not all(flags)  # the file's last, partial block goes through the page cache either way


# -- sparse files ---------------------------------------------------------------------------------------


def _sparse(path: Path, size: int) -> list[int]:
    offsets = [0, size // 3, size - 10]
    with open(path, "wb") as stream:
        stream.truncate(size)
        for offset in offsets:
            stream.seek(offset)
            stream.write(b"data here!")
    return offsets


@pytest.mark.parametrize(
    "on_this_host",
    [pytest.param(True, id="local"), pytest.param(False, id="remote", marks=pytest.mark.slow)],
)
def test_a_sparse_file_over_2_gib_arrives_right_and_stays_sparse(tmp_path: Path, on_this_host: bool) -> None:
    """Over HTTP the holes arrive as zeros; pieces of zeros over a fresh file are not written."""
    source, destination = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    destination.mkdir()
    size = (2 << 30) + 12345
    offsets = _sparse(source / "sparse", size)
    result = pull(source, destination, TransferSpec(items=[("sparse", "sparse", False)]), local=on_this_host)
    assert result.status is TransferStatus.SUCCEEDED
    copy = destination / "sparse"
    assert copy.stat().st_size == size
    assert copy.stat().st_blocks * 512 < 64 << 20  # the holes were not written
    with open(copy, "rb") as stream:
        for offset in offsets:
            stream.seek(offset)
            assert stream.read(10) == b"data here!"
