"""The pieces together on one host: walk both sides, plan, then copy and delete as planned."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest

from beamlink.agents.collection.checksums import hash_file
from beamlink.agents.collection.fsops import delete, make_directory, walk
from beamlink.agents.collection.partial import copy_local
from beamlink.agents.collection.paths import CollectionRoot
from beamlink.agents.collection.plan import (
    Action,
    CompareChecksum,
    Copy,
    DeleteExtra,
    Mkdir,
    Skip,
    SyncLevel,
    SyncOptions,
    TypeConflict,
    check_transfer_paths,
    plan_sync,
    settle_checksum,
)

ODD = os.fsdecode(b"caf\xe9 \xff")


def join(base: str, path: str) -> str:
    return f"{base}/{path}" if base and path else base or path


def sync(source: CollectionRoot, destination: CollectionRoot, options: SyncOptions) -> list[Action]:
    """A minimal transfer worker: what the collection agent will do, without the network."""
    src_path, dst_path = check_transfer_paths(
        "src", "data", "dst", "copy", recursive=options.recursive, delete_extra=options.delete_extra
    )
    done: list[Action] = []
    for action in plan_sync(
        walk(source, src_path, recursive=options.recursive),
        walk(destination, dst_path, recursive=options.recursive, missing_ok=True),
        options,
    ):
        src = source.resolve(join(src_path, action.path))
        dst = destination.resolve(join(dst_path, action.path))
        if isinstance(action, CompareChecksum):
            action = settle_checksum(action, hash_file(src, "xxh3"), hash_file(dst, "xxh3"))
        if isinstance(action, Mkdir):
            make_directory(destination, join(dst_path, action.path), exist_ok=True)
        elif isinstance(action, Copy):
            copy_local(src, dst, chunk_size=1 << 16, preserve_mtime=action.mtime is not None)
        elif isinstance(action, DeleteExtra):
            collections.deque(delete(destination, join(dst_path, action.path), recursive=True), maxlen=0)
        done.append(action)
    return done


def snapshot(root: CollectionRoot, path: str) -> dict[str, tuple[str, str]]:
    return {
        info.path: (
            info.type,
            hash_file(root.resolve(join(path, info.path)), "xxh3") if info.type == "file" else "",
        )
        for info in walk(root, path, recursive=True)
    }


@pytest.fixture
def sides(tmp_path: Path) -> tuple[CollectionRoot, CollectionRoot]:
    src = tmp_path / "src" / "data"
    (src / "nested" / "deeper").mkdir(parents=True)
    (src / "empty.dat").write_bytes(b"")
    (src / "with space ü.txt").write_text("unicode")
    (src / "nested" / "deeper" / "big.bin").write_bytes(os.urandom(300_000))  # several chunks
    (src / "nested" / "scratch.tmp").write_text("excluded")
    with open(os.path.join(os.fsencode(src), os.fsencode(ODD)), "wb") as stream:
        stream.write(b"latin-1 name")
    (tmp_path / "dst").mkdir()
    return CollectionRoot(tmp_path / "src"), CollectionRoot(tmp_path / "dst")


def kinds(actions: list[Action]) -> collections.Counter[str]:
    return collections.Counter(type(a).__name__ for a in actions)


def test_a_tree_is_mirrored_and_a_second_run_skips_everything(
    sides: tuple[CollectionRoot, CollectionRoot],
) -> None:
    source, destination = sides
    options = SyncOptions(sync_level=SyncLevel.MTIME, recursive=True, preserve_timestamps=True)
    first = sync(source, destination, options)
    assert kinds(first) == {"Mkdir": 3, "Copy": 5}
    assert snapshot(destination, "copy") == snapshot(source, "data")
    second = sync(source, destination, options)
    assert kinds(second) == {"Skip": 5}


def test_checksum_level_finds_a_change_of_the_same_size(sides: tuple[CollectionRoot, CollectionRoot]) -> None:
    source, destination = sides
    options = SyncOptions(sync_level=SyncLevel.CHECKSUM, recursive=True)
    sync(source, destination, options)
    (destination.resolve("copy/with space ü.txt")).write_text("UNICODE")  # same size, other bytes
    actions = sync(source, destination, options)
    copied = [a.path for a in actions if isinstance(a, Copy)]
    assert copied == ["with space ü.txt"]
    assert all(isinstance(a, Skip) for a in actions if not isinstance(a, Copy))
    assert snapshot(destination, "copy") == snapshot(source, "data")


def test_delete_extra_and_exclude(sides: tuple[CollectionRoot, CollectionRoot]) -> None:
    source, destination = sides
    sync(source, destination, SyncOptions(recursive=True))
    (destination.resolve("copy/extra.txt")).write_text("extra")
    (destination.resolve("copy/nested/old")).mkdir()
    (destination.resolve("copy/nested/old/file")).write_text("old")
    options = SyncOptions(sync_level=SyncLevel.SIZE, recursive=True, delete_extra=True, exclude=("*.tmp",))
    actions = sync(source, destination, options)
    assert sorted(a.path for a in actions if isinstance(a, DeleteExtra)) == ["extra.txt", "nested/old"]
    assert not destination.resolve("copy/extra.txt").exists()
    assert destination.resolve("copy/nested/scratch.tmp").exists()  # excluded: protected, not deleted


def test_a_file_in_the_way_of_a_directory_is_reported(sides: tuple[CollectionRoot, CollectionRoot]) -> None:
    source, destination = sides
    destination.resolve("copy").mkdir()
    destination.resolve("copy/nested").write_text("a file, not a directory")
    actions = sync(source, destination, SyncOptions(recursive=True))
    assert TypeConflict("nested", "dir", "file") in actions
    assert destination.resolve("copy/nested").read_text() == "a file, not a directory"
