"""ls, stat, mkdir, rename, delete and the transfer walk, confined to the root."""

from __future__ import annotations

import collections
import json
import os
import stat
import time
import tracemalloc
from pathlib import Path

import pytest

from beamlink.agents.collection.fsops import (
    DeleteProgress,
    delete,
    list_directory,
    make_directory,
    rename,
    stat_path,
    walk,
)
from beamlink.agents.collection.partial import PartialWrite
from beamlink.agents.collection.paths import CollectionRoot, from_wire
from beamlink.agents.collection.plan import FileInfo
from beamlink.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotFound,
    PathOutsideCollection,
    SourceNotFound,
)

ODD = os.fsdecode(b"odd \xff\xfe name")


@pytest.fixture
def root(tmp_path: Path) -> CollectionRoot:
    base = tmp_path / "root"
    (base / "d" / "sub").mkdir(parents=True)
    (base / "d" / "a.txt").write_bytes(b"aaa")
    (base / "d" / "sub" / "deep.bin").write_bytes(b"x" * 10)
    (base / "d" / "with space ü.txt").write_bytes(b"u")
    with open(os.path.join(os.fsencode(base / "d"), os.fsencode(ODD)), "wb") as stream:
        stream.write(b"odd")
    (base / "d" / "link_in").symlink_to("a.txt")
    (base / "d" / "link_dir").symlink_to("sub")
    (tmp_path / "secret").write_text("outside")
    (base / "d" / "link_out").symlink_to(tmp_path / "secret")
    (base / "d" / "dangling").symlink_to("nowhere")
    os.mkfifo(base / "d" / "fifo")
    return CollectionRoot(base)


def names(root: CollectionRoot, path: str, **kw: object) -> list[str]:
    return [e.name for e in list_directory(root, path, **kw).entries]  # type: ignore[arg-type]


# -- ls --------------------------------------------------------------------------------------------------


def test_ls_lists_sorted_entries_with_their_types(root: CollectionRoot) -> None:
    page = list_directory(root, "/d")
    by_name = {e.name: e for e in page.entries}
    assert [e.name for e in page.entries] == sorted(by_name)
    assert page.next_after is None
    assert by_name["a.txt"].type == "file"
    assert by_name["a.txt"].size == 3
    assert by_name["a.txt"].mode == stat.S_IMODE(os.stat(root.resolve("d/a.txt")).st_mode)
    assert by_name["sub"].type == "dir"
    assert by_name["link_out"].type == "link"
    assert by_name["fifo"].type == "other"
    assert by_name[ODD].type == "file"
    assert by_name["with space ü.txt"].size == 1
    assert by_name["a.txt"].mtime == pytest.approx(time.time(), abs=60)


def test_ls_pages_by_name(root: CollectionRoot) -> None:
    seen: list[str] = []
    after = None
    while True:
        page = list_directory(root, "d", after=after, limit=3)
        assert len(page.entries) <= 3
        seen += [e.name for e in page.entries]
        after = page.next_after
        if after is None:
            break
    assert seen == sorted(names(root, "d"))
    assert len(seen) == 9


def test_ls_of_the_root_and_through_a_link_inside(root: CollectionRoot) -> None:
    assert names(root, "") == ["d"]
    assert names(root, "/") == ["d"]
    assert names(root, "d/link_dir") == ["deep.bin"]


def test_ls_hides_partial_files(root: CollectionRoot) -> None:
    with PartialWrite(root.resolve("d/sub/big"), size=10, source_mtime=1.0, chunk_size=4):
        pass
    assert names(root, "d/sub") == ["deep.bin"]


def test_ls_refuses_escapes_and_reports_missing_or_files(root: CollectionRoot) -> None:
    with pytest.raises(PathOutsideCollection):
        list_directory(root, "../")
    with pytest.raises(PathOutsideCollection):
        list_directory(root, "d/link_out")
    with pytest.raises(NotFound, match="'nope' does not exist"):
        list_directory(root, "nope")
    with pytest.raises(InvalidInput, match=r"'d/a\.txt' is not a directory"):
        list_directory(root, "d/a.txt")
    with pytest.raises(InvalidInput, match="limit"):
        list_directory(root, "d", limit=0)


def test_entries_serialize_names_in_wire_form(root: CollectionRoot) -> None:
    entry = next(e for e in list_directory(root, "d").entries if e.name == ODD)
    wire = entry.to_dict()
    assert wire["name"] == "odd \\xff\\xfe name"
    assert from_wire(wire["name"]) == ODD
    assert stat_path(root, "d/" + from_wire(wire["name"])).size == 3
    first = list_directory(root, "d", limit=7)
    assert first.entries[-1].name == ODD
    cursor = first.to_dict()["next_after"]
    assert cursor == "odd \\xff\\xfe name"
    json.dumps(first.to_dict()).encode("utf-8")  # strictly valid JSON text
    rest = list_directory(root, "d", after=from_wire(cursor), limit=6)
    assert [e.name for e in rest.entries] == ["sub", "with space ü.txt"]


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> CollectionRoot:
    base = tmp_path_factory.mktemp("huge")
    directory = base / "many"
    directory.mkdir()
    fd_dir = os.open(directory, os.O_RDONLY)
    try:
        for index in range(100_000):
            os.close(os.open(f"f{index:06d}", os.O_CREAT | os.O_WRONLY, dir_fd=fd_dir))
    finally:
        os.close(fd_dir)
    return CollectionRoot(base)


@pytest.mark.slow
def test_a_directory_of_100000_entries_is_listed_in_pages(huge: CollectionRoot) -> None:
    total = 0
    after = None
    previous = ""
    while True:
        page = list_directory(huge, "many", after=after, limit=10_000)
        assert page.entries
        assert page.entries[0].name > previous
        assert [e.name for e in page.entries] == sorted(e.name for e in page.entries)
        total += len(page.entries)
        previous = page.entries[-1].name
        after = page.next_after
        if after is None:
            break
    assert total == 100_000
    assert previous == "f099999"


@pytest.mark.slow
def test_a_page_of_a_huge_directory_takes_memory_for_the_page_only(huge: CollectionRoot) -> None:
    tracemalloc.start()
    try:
        page = list_directory(huge, "many", after="f050000", limit=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [e.name for e in page.entries] == [f"f{i:06d}" for i in range(50_001, 50_101)]
    # Holding 100,000 entries would take well over 10 MB; a page of 100 takes a few tens of kB.
    assert peak < 1_000_000


# -- stat, mkdir, rename ----------------------------------------------------------------------------------


def test_stat_describes_a_link_itself_unless_followed(root: CollectionRoot) -> None:
    assert stat_path(root, "d/link_in").type == "link"
    followed = stat_path(root, "d/link_in", follow=True)
    assert (followed.type, followed.size, followed.name) == ("file", 3, "link_in")
    assert stat_path(root, "d/link_out").type == "link"
    with pytest.raises(PathOutsideCollection):
        stat_path(root, "d/link_out", follow=True)
    assert stat_path(root, "").type == "dir"
    with pytest.raises(NotFound):
        stat_path(root, "d/nope")


def test_mkdir(root: CollectionRoot) -> None:
    made = make_directory(root, "d/new ü")
    assert (made.name, made.type) == ("new ü", "dir")
    with pytest.raises(AlreadyExists, match="'d/new ü' already exists"):
        make_directory(root, "d/new ü")
    make_directory(root, "d/new ü", exist_ok=True)
    with pytest.raises(NotFound, match="pass parents"):
        make_directory(root, "x/y/z")
    assert make_directory(root, "x/y/z", parents=True).type == "dir"
    with pytest.raises(PathOutsideCollection):
        make_directory(root, "d/../../escape")
    with pytest.raises(AlreadyExists):
        make_directory(root, "d/a.txt", exist_ok=True)  # a file is there, not a directory


def test_rename(root: CollectionRoot) -> None:
    rename(root, "d/a.txt", "d/sub/moved.txt")
    assert stat_path(root, "d/sub/moved.txt").size == 3
    with pytest.raises(AlreadyExists, match="pass overwrite"):
        rename(root, "d/sub/moved.txt", "d/sub/deep.bin")
    rename(root, "d/sub/moved.txt", "d/sub/deep.bin", overwrite=True)
    assert stat_path(root, "d/sub/deep.bin").size == 3
    rename(root, "d/" + ODD, "d/renamed")
    assert stat_path(root, "d/renamed").size == 3
    with pytest.raises(NotFound):
        rename(root, "d/nope", "d/x")
    with pytest.raises(InvalidInput, match="inside itself"):
        rename(root, "d", "d/sub/d")
    with pytest.raises(InvalidInput, match="root"):
        rename(root, "/", "elsewhere")


def test_rename_keeps_both_ends_inside(root: CollectionRoot, tmp_path: Path) -> None:
    with pytest.raises(PathOutsideCollection):
        rename(root, "d/a.txt", "../stolen")
    with pytest.raises(PathOutsideCollection):
        rename(root, "../secret", "d/stolen")
    rename(root, "d/link_out", "d/link_out_renamed")  # the link itself moves; its target is untouched
    assert (tmp_path / "secret").read_text() == "outside"


# -- delete ------------------------------------------------------------------------------------------------


def final(progress: collections.abc.Iterator[DeleteProgress]) -> DeleteProgress:
    return collections.deque(progress, maxlen=1)[0]


def test_delete_a_file_and_an_empty_directory(root: CollectionRoot) -> None:
    assert final(delete(root, "d/a.txt")) == DeleteProgress(files=1, bytes=3)
    make_directory(root, "empty")
    assert final(delete(root, "empty")) == DeleteProgress(directories=1)
    with pytest.raises(NotFound):
        final(delete(root, "d/a.txt"))
    assert final(delete(root, "d/a.txt", ignore_missing=True)) == DeleteProgress()


def test_a_full_directory_needs_recursive(root: CollectionRoot) -> None:
    with pytest.raises(Conflict, match="not empty; delete it with recursive"):
        final(delete(root, "d"))


def test_recursive_delete_removes_links_not_their_targets(root: CollectionRoot, tmp_path: Path) -> None:
    done = final(delete(root, "d", recursive=True))
    assert done.directories == 2
    assert done.files == 9
    assert not root.resolve("d").exists()
    assert (tmp_path / "secret").read_text() == "outside"


def test_recursive_delete_reports_progress_on_a_deep_tree(root: CollectionRoot) -> None:
    deep = root.resolve("deep")
    path = deep
    for level in range(50):
        path = path / f"l{level}"
    path.mkdir(parents=True)
    for index in range(30):
        (path / f"f{index}").write_bytes(b"z")
    reports = list(delete(root, "deep", recursive=True, report_every=10))
    assert len(reports) > 3
    assert reports[-1] == DeleteProgress(files=30, directories=51, bytes=30)
    assert not deep.exists()


def test_delete_refuses_the_root_and_escapes(root: CollectionRoot) -> None:
    with pytest.raises(InvalidInput, match="root"):
        final(delete(root, "/", recursive=True))
    with pytest.raises(PathOutsideCollection):
        final(delete(root, "../secret"))


# -- walk --------------------------------------------------------------------------------------------------


def test_walk_lists_a_tree_in_walk_order(root: CollectionRoot) -> None:
    listed = list(walk(root, "d", recursive=True))
    paths = [i.path for i in listed]
    assert paths[0] == ""
    assert paths == sorted(paths, key=lambda p: tuple(p.split("/")) if p else ())
    by_path = {i.path: i for i in listed}
    assert by_path["sub/deep.bin"] == FileInfo("sub/deep.bin", "file", 10, by_path["sub/deep.bin"].mtime)
    assert by_path["link_in"].type == "file"  # a link inside counts as its target
    assert by_path["link_in"].size == 3
    assert by_path["link_dir"].type == "link"  # links to directories are not descended
    assert by_path["link_out"].type == "link"  # never read
    assert by_path["dangling"].type == "link"
    assert by_path["fifo"].type == "other"
    assert by_path[ODD].type == "file"


def test_walk_of_a_file_and_of_a_missing_item(root: CollectionRoot) -> None:
    assert [i.path for i in walk(root, "d/a.txt", recursive=False)] == [""]
    assert [i.path for i in walk(root, "d", recursive=False)] == [""]
    with pytest.raises(SourceNotFound):
        list(walk(root, "d/nope", recursive=True))
    assert list(walk(root, "d/nope", recursive=True, missing_ok=True)) == []
    with pytest.raises(PathOutsideCollection):
        list(walk(root, "d/link_out", recursive=False))
