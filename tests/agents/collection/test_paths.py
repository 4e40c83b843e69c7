"""Confinement to the collection root, and names that are not UTF-8."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from beamlink.agents.collection.paths import CollectionRoot, from_wire, normalize, os_error, to_wire
from beamlink.errors import AlreadyExists, InvalidInput, NotFound, PathOutsideCollection, PermissionDenied


@pytest.fixture
def tree(tmp_path: Path) -> tuple[CollectionRoot, Path]:
    """A root with a/b/file, a secret file beside the root, and symlinks in and out."""
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "file").write_text("inside")
    (tmp_path / "secret").write_text("outside")
    (tmp_path / "outside_dir").mkdir()
    (root / "in_link").symlink_to("a/b")
    (root / "out_dir_link").symlink_to(tmp_path / "outside_dir")
    (root / "out_file_link").symlink_to(tmp_path / "secret")
    (root / "a" / "up_link").symlink_to("../..")
    (root / "dangling_out").symlink_to(tmp_path / "nowhere")
    return CollectionRoot(root), root


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", ""),
        ("/", ""),
        (".", ""),
        ("a/b", "a/b"),
        ("/a/b", "a/b"),
        ("//a//b/./", "a/b"),
        ("a/../b", "b"),
        ("a/b/../../c", "c"),
        (b"a/b", "a/b"),
    ],
)
def test_paths_are_relative_to_the_root(given: str | bytes, expected: str) -> None:
    assert normalize(given) == expected


@pytest.mark.parametrize(
    "given", ["..", "../x", "/../x", "a/../../x", "a/b/../../..", "./..", "/..//etc/passwd"]
)
def test_climbing_above_the_root_is_refused(tree: tuple[CollectionRoot, Path], given: str) -> None:
    root, _ = tree
    with pytest.raises(PathOutsideCollection, match="leads out of the collection"):
        root.resolve(given)


def test_an_absolute_path_is_read_inside_the_root(tree: tuple[CollectionRoot, Path]) -> None:
    root, real = tree
    assert root.resolve("/etc/passwd") == real / "etc" / "passwd"
    assert root.resolve("/a/b/file").read_text() == "inside"


def test_a_nul_byte_is_refused(tree: tuple[CollectionRoot, Path]) -> None:
    root, _ = tree
    with pytest.raises(PathOutsideCollection, match="NUL"):
        root.resolve("a/b\x00/../../etc")


@pytest.mark.parametrize(
    "given", ["out_dir_link", "out_dir_link/x", "out_file_link", "a/up_link", "dangling_out"]
)
def test_symlinks_out_of_the_root_are_refused(tree: tuple[CollectionRoot, Path], given: str) -> None:
    root, real = tree
    with pytest.raises(PathOutsideCollection) as caught:
        root.resolve(given)
    assert given in caught.value.message
    assert str(real) in caught.value.message
    assert caught.value.details["root"] == str(real)
    assert not root.contains(given)


def test_a_symlink_out_may_be_addressed_itself_without_following(tree: tuple[CollectionRoot, Path]) -> None:
    root, real = tree
    assert root.resolve("out_file_link", follow=False) == real / "out_file_link"
    with pytest.raises(PathOutsideCollection):
        root.resolve("out_dir_link/x", follow=False)  # the way there still leaves the root


def test_symlinks_that_stay_inside_are_followed(tree: tuple[CollectionRoot, Path]) -> None:
    root, real = tree
    assert root.resolve("in_link/file") == real / "a" / "b" / "file"
    assert root.resolve("in_link") == real / "a" / "b"


def test_a_root_that_is_itself_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    root = CollectionRoot(tmp_path / "alias")
    assert root.path == tmp_path / "data"
    assert root.resolve("x") == tmp_path / "data" / "x"


def test_the_root_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(InvalidInput, match="not a directory"):
        CollectionRoot(tmp_path / "f")


def test_names_with_spaces_and_unicode(tree: tuple[CollectionRoot, Path]) -> None:
    root, real = tree
    assert root.resolve("a/my file ü 数据.h5") == real / "a" / "my file ü 数据.h5"
    assert root.relative(real / "a" / "my file ü 数据.h5") == "a/my file ü 数据.h5"
    assert root.relative(real) == ""


def test_a_name_that_is_not_utf8_resolves_from_bytes_or_surrogateescape(
    tree: tuple[CollectionRoot, Path],
) -> None:
    root, real = tree
    raw = b"caf\xe9 \xff.dat"
    with open(os.path.join(os.fsencode(real), raw), "wb") as stream:
        stream.write(b"latin-1")
    name = os.fsdecode(raw)
    assert root.resolve(raw).read_bytes() == b"latin-1"
    assert root.resolve(name).read_bytes() == b"latin-1"
    assert root.resolve(from_wire(to_wire(name))).read_bytes() == b"latin-1"


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("plain.txt", "plain.txt"),
        ("ü 数据 100%.h5", "ü 数据 100%.h5"),
        (os.fsdecode(b"caf\xe9"), "caf\\xe9"),
        (os.fsdecode(b"\xff\xfe"), "\\xff\\xfe"),
        ("back\\slash", "back\\\\slash"),
        (os.fsdecode(b"x\\xe9\xe9"), "x\\\\xe9\\xe9"),
    ],
)
def test_wire_form_is_valid_unicode_and_round_trips(name: str, wire: str) -> None:
    assert to_wire(name) == wire
    wire.encode("utf-8")  # valid UTF-8, so JSON and pydantic accept it
    assert from_wire(wire) == name


@pytest.mark.parametrize("bad", ["a\\b", "end\\", "\\x41", "\\xg0"])
def test_a_stray_backslash_on_the_wire_is_an_error(bad: str) -> None:
    with pytest.raises(InvalidInput, match="stray backslash"):
        from_wire(bad)


def test_text_no_file_name_can_hold_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not text a file name can hold"):
        normalize("a\ud800b")


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (FileNotFoundError(2, "x"), NotFound),
        (FileExistsError(17, "x"), AlreadyExists),
        (PermissionError(13, "x"), PermissionDenied),
    ],
)
def test_os_errors_become_beamlink_errors_without_the_root(error: OSError, cls: type[Exception]) -> None:
    translated = os_error(error, os.fsdecode(b"dir/\xff"))
    assert isinstance(translated, cls)
    assert "'dir/\\xff'" in translated.message
    assert translated.details["path"] == "dir/\\xff"
