"""Sync planning: every decision, filters, delete_extra, and the checks on transfer paths."""

from __future__ import annotations

import pytest

from beamlink.agents.collection.plan import (
    Action,
    CompareChecksum,
    Copy,
    DeleteExtra,
    FileInfo,
    Filters,
    Mkdir,
    Reason,
    Skip,
    SyncLevel,
    SyncOptions,
    TypeConflict,
    check_transfer_paths,
    plan_sync,
    settle_checksum,
)
from beamlink.errors import (
    DestinationInsideSource,
    InvalidInput,
    PathOutsideCollection,
    SourceNotFound,
    TransferOntoItself,
)

ROOT = FileInfo("", "dir", 0, 100.0)


def file(path: str, size: int = 10, mtime: float = 100.0) -> FileInfo:
    return FileInfo(path, "file", size, mtime)


def folder(path: str) -> FileInfo:
    return FileInfo(path, "dir", 0, 100.0)


def plan(source: list[FileInfo], destination: list[FileInfo], **options: object) -> list[Action]:
    options.setdefault("recursive", True)
    return list(plan_sync(source, destination, SyncOptions(**options)))  # type: ignore[arg-type]


def one_file(src: FileInfo, dst: FileInfo | None, level: SyncLevel | None) -> Action:
    """The action for a single-file item (paths are relative to the item: '')."""
    actions = list(plan_sync([src], [dst] if dst else [], SyncOptions(sync_level=level)))
    assert len(actions) == 1
    return actions[0]


# -- each sync level ------------------------------------------------------------------------------------

SAME = file("", 10, 100.0)
LEVELS = [None, SyncLevel.EXISTS, SyncLevel.SIZE, SyncLevel.MTIME, SyncLevel.CHECKSUM]


@pytest.mark.parametrize("level", LEVELS)
def test_a_missing_destination_is_always_copied(level: SyncLevel | None) -> None:
    assert one_file(SAME, None, level) == Copy("", 10, Reason.MISSING)


@pytest.mark.parametrize(
    ("level", "destination", "expected"),
    [
        # no sync level: always copy
        (None, SAME, Copy("", 10, Reason.ALWAYS)),
        # exists: anything there is enough
        (SyncLevel.EXISTS, file("", 99, 1.0), Skip("", Reason.EXISTS)),
        # size
        (SyncLevel.SIZE, file("", 10, 1.0), Skip("", Reason.SAME_SIZE)),
        (SyncLevel.SIZE, file("", 11, 100.0), Copy("", 10, Reason.SIZE_DIFFERS)),
        # mtime: source newer, or sizes differ
        (SyncLevel.MTIME, file("", 10, 100.0), Skip("", Reason.NOT_NEWER)),
        (SyncLevel.MTIME, file("", 10, 200.0), Skip("", Reason.NOT_NEWER)),
        (SyncLevel.MTIME, file("", 10, 99.9995), Skip("", Reason.NOT_NEWER)),  # within the tolerance
        (SyncLevel.MTIME, file("", 10, 50.0), Copy("", 10, Reason.SOURCE_NEWER)),
        (SyncLevel.MTIME, file("", 3, 200.0), Copy("", 10, Reason.SIZE_DIFFERS)),
        # checksum: sizes first, then a comparison the caller settles
        (SyncLevel.CHECKSUM, file("", 3, 100.0), Copy("", 10, Reason.SIZE_DIFFERS)),
        (SyncLevel.CHECKSUM, file("", 10, 5.0), CompareChecksum("", 10)),
    ],
)
def test_each_sync_level_decides(level: SyncLevel | None, destination: FileInfo, expected: Action) -> None:
    assert one_file(SAME, destination, level) == expected


def test_checksum_comparisons_are_settled_by_the_digests() -> None:
    compare = CompareChecksum("a", 10, 100.0)
    assert settle_checksum(compare, "ABC", "abc") == Skip("a", Reason.SAME_CHECKSUM)
    assert settle_checksum(compare, "abc", "abd") == Copy("a", 10, Reason.CHECKSUM_DIFFERS, 100.0)


def test_empty_files_need_no_checksum() -> None:
    empty = file("", 0)
    assert one_file(empty, file("", 0), SyncLevel.CHECKSUM) == Skip("", Reason.BOTH_EMPTY)
    assert one_file(empty, None, SyncLevel.CHECKSUM) == Copy("", 0, Reason.MISSING)
    assert one_file(empty, file("", 5), SyncLevel.SIZE) == Copy("", 0, Reason.SIZE_DIFFERS)


def test_preserve_timestamps_carries_the_source_mtime() -> None:
    actions = list(plan_sync([file("", 10, 123.5)], [], SyncOptions(preserve_timestamps=True)))
    assert actions == [Copy("", 10, Reason.MISSING, 123.5)]


# -- trees ------------------------------------------------------------------------------------------------


def test_a_tree_into_an_empty_destination() -> None:
    source = [ROOT, folder("a"), file("a/x"), folder("a/y"), file("a/y/z", 0), file("b")]
    assert plan(source, []) == [
        Mkdir(""),
        Mkdir("a"),
        Copy("a/x", 10, Reason.MISSING),
        Mkdir("a/y"),
        Copy("a/y/z", 0, Reason.MISSING),
        Copy("b", 10, Reason.MISSING),
    ]


def test_a_tree_onto_a_partial_copy() -> None:
    source = [ROOT, folder("a"), file("a/x"), file("a/y", 5), file("b")]
    destination = [ROOT, folder("a"), file("a/x"), file("a/y", 4)]
    assert plan(source, destination, sync_level=SyncLevel.SIZE) == [
        Skip("a/x", Reason.SAME_SIZE),
        Copy("a/y", 5, Reason.SIZE_DIFFERS),
        Copy("b", 10, Reason.MISSING),
    ]


def test_delete_extra_removes_what_the_source_lacks_once_per_subtree() -> None:
    source = [ROOT, folder("a"), file("a/x")]
    destination = [
        ROOT,
        folder("a"),
        file("a/old"),
        file("a/x"),
        folder("gone"),
        file("gone/1"),
        file("gone/2"),
    ]
    assert plan(source, destination, sync_level=SyncLevel.EXISTS, delete_extra=True) == [
        DeleteExtra("a/old", "file"),
        Skip("a/x", Reason.EXISTS),
        DeleteExtra("gone", "dir"),  # once: its contents go with it
    ]


def test_without_delete_extra_nothing_is_deleted() -> None:
    source = [ROOT, file("x")]
    destination = [ROOT, file("extra"), file("x")]
    assert plan(source, destination, sync_level=SyncLevel.EXISTS) == [Skip("x", Reason.EXISTS)]
    assert plan(source, destination, sync_level=SyncLevel.EXISTS, delete_extra=True) == [
        DeleteExtra("extra", "file"),
        Skip("x", Reason.EXISTS),
    ]


def test_a_file_where_a_directory_is_is_a_conflict_that_touches_neither() -> None:
    source = [ROOT, file("a"), folder("b"), file("b/inner")]
    destination = [ROOT, folder("a"), file("a/keep"), file("b")]
    assert plan(source, destination, delete_extra=True) == [
        TypeConflict("a", "file", "dir"),
        TypeConflict("b", "dir", "file"),
    ]


def test_links_and_special_files_are_skipped() -> None:
    source = [ROOT, FileInfo("fifo", "other"), FileInfo("out", "link")]
    destination = [ROOT, folder("out"), file("out/keep")]
    assert plan(source, destination, delete_extra=True) == [
        Skip("fifo", Reason.NOT_REGULAR),
        Skip("out", Reason.NOT_REGULAR),
    ]


def test_names_with_odd_characters_sort_by_component() -> None:
    # "a b" < "a/..." by character, but a directory's contents come right after it in walk order.
    source = [ROOT, folder("a"), file("a/z"), file("a b"), file("a-c")]
    assert [a.path for a in plan(source, [])] == ["", "a", "a/z", "a b", "a-c"]


# -- filters ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("include", "exclude", "path", "type_", "selected"),
    [
        ((), (), "any/thing", "file", True),
        (("*.h5",), (), "deep/down/scan.h5", "file", True),
        (("*.h5",), (), "deep/down/scan.tif", "file", False),
        (("*.h5",), (), "deep", "dir", True),  # directories are still walked
        ((), ("*.tmp",), "a/b/c.tmp", "file", False),
        ((), ("cache",), "x/cache", "dir", False),
        ((), ("cache/",), "x/cache", "file", True),  # a trailing / means directories only
        ((), ("cache/",), "x/cache", "dir", False),
        ((), ("raw/*.tif",), "raw/a.tif", "file", False),
        ((), ("raw/*.tif",), "raw/sub/a.tif", "file", True),  # * stays within a component
        ((), ("raw/**/*.tif",), "raw/sub/deeper/a.tif", "file", False),
        ((), ("raw/**/*.tif",), "raw/a.tif", "file", False),
        ((), ("/top.txt",), "top.txt", "file", False),
        ((), ("/top.txt",), "sub/top.txt", "file", True),  # path globs are anchored at the item
        ((), ("data[0-9].bin",), "data7.bin", "file", False),
        ((), ("x/data[!0-9].bin",), "x/data7.bin", "file", True),
        (("*.h5",), ("bad*",), "bad.h5", "file", False),  # exclude wins
        (("*.H5",), (), "scan.h5", "file", False),  # case-sensitive
    ],
)
def test_filter_semantics(
    include: tuple[str, ...], exclude: tuple[str, ...], path: str, type_: str, selected: bool
) -> None:
    assert Filters(include, exclude).selects(path, type_) is selected  # type: ignore[arg-type]


def test_the_item_itself_is_never_filtered() -> None:
    assert Filters((), ("*",)).selects("", "dir")


def test_an_empty_pattern_is_refused() -> None:
    with pytest.raises(InvalidInput, match="matches nothing useful"):
        Filters((), ("",))


def test_excluded_subtrees_are_left_out_and_protected_from_delete_extra() -> None:
    source = [ROOT, folder("cache"), file("cache/big"), file("keep.h5"), file("skip.txt")]
    destination = [ROOT, folder("cache"), file("cache/old"), file("notes.txt"), file("stale.h5")]
    actions = plan(source, destination, include=("*.h5",), exclude=("cache",), delete_extra=True)
    assert actions == [Copy("keep.h5", 10, Reason.MISSING), DeleteExtra("stale.h5", "file")]


# -- bad input --------------------------------------------------------------------------------------------


def test_a_missing_source() -> None:
    with pytest.raises(SourceNotFound):
        plan([], [ROOT])


def test_recursive_must_match_the_source() -> None:
    with pytest.raises(InvalidInput, match="--recursive"):
        list(plan_sync([ROOT], [], SyncOptions(recursive=False)))
    with pytest.raises(InvalidInput, match="without recursive"):
        list(plan_sync([file("")], [], SyncOptions(recursive=True)))


@pytest.mark.parametrize(
    "listing", [[ROOT, file("b"), file("a")], [ROOT, file("a"), file("a")], [ROOT, file("a/x"), folder("a")]]
)
def test_a_listing_out_of_walk_order_is_refused_before_deleting_anything(listing: list[FileInfo]) -> None:
    with pytest.raises(ValueError, match="out of walk order"):
        plan([ROOT, file("a")], listing, delete_extra=True)


def test_a_listing_must_start_with_the_item() -> None:
    with pytest.raises(ValueError, match="starts with the item"):
        plan([file("a")], [])


# -- transfer paths ---------------------------------------------------------------------------------------


def test_check_transfer_paths_normalizes() -> None:
    assert check_transfer_paths("c1", "/a//b/", "c1", "c", recursive=True) == ("a/b", "c")
    assert check_transfer_paths("c1", "a", "c2", "a", recursive=True) == ("a", "a")


@pytest.mark.parametrize(("source", "destination"), [("a/b", "/a/b/"), ("", "/"), ("x/../a", "a")])
def test_a_transfer_onto_itself(source: str, destination: str) -> None:
    with pytest.raises(TransferOntoItself, match="choose another destination"):
        check_transfer_paths("c1", source, "c1", destination, recursive=False)


@pytest.mark.parametrize(("source", "destination"), [("a", "a/b"), ("", "x"), ("a/b", "a/b/c/d")])
def test_a_destination_inside_a_recursive_source(source: str, destination: str) -> None:
    with pytest.raises(DestinationInsideSource, match="choose a destination outside the source"):
        check_transfer_paths("c1", source, "c1", destination, recursive=True)
    check_transfer_paths("c1", source, "c2", destination, recursive=True)  # another collection: fine


def test_a_sibling_with_a_common_prefix_is_not_inside() -> None:
    assert check_transfer_paths("c1", "a", "c1", "ab", recursive=True) == ("a", "ab")


def test_delete_extra_may_not_delete_its_own_source() -> None:
    with pytest.raises(InvalidInput, match="delete the source itself"):
        check_transfer_paths("c1", "a/b", "c1", "a", recursive=True, delete_extra=True)
    check_transfer_paths("c1", "a/b", "c1", "a", recursive=True)


@pytest.mark.parametrize(
    ("source", "destination"),
    [("../x", "y"), ("x", "../y"), ("/../x", "y"), ("x", "a/../../y"), ("a\x00", "b")],
)
def test_traversal_in_any_path_is_refused(source: str, destination: str) -> None:
    with pytest.raises(PathOutsideCollection):
        check_transfer_paths("c1", source, "c2", destination, recursive=True)
