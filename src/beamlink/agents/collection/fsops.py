"""File operations inside one collection: ls (paged), stat, mkdir, rename, delete, and the transfer walk.

Every path is a collection path, confined by :class:`~beamlink.agents.collection.paths.CollectionRoot`;
errors never show the root's real location. Names are ``str`` in surrogateescape form (see
:mod:`~beamlink.agents.collection.paths`); call :func:`~beamlink.agents.collection.paths.to_wire` (or
:meth:`Entry.to_dict`) before putting them in JSON. Partial files of unfinished transfers are hidden.

Listing pages by name: entries come sorted by name (code point order) and a page ends with the name to
pass as ``after`` for the next one. A page scans the directory once with ``os.scandir`` and keeps only
the ``limit`` smallest names after the cursor in a heap — O(n log limit) time and O(limit) memory — so a
directory of millions of entries is never held whole, at the price of one scan per page.
"""

from __future__ import annotations

import heapq
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beamlink.agents.collection.partial import is_internal_name
from beamlink.agents.collection.paths import CollectionRoot, normalize, os_error, quoted, to_wire
from beamlink.agents.collection.plan import EntryType, FileInfo
from beamlink.errors import AlreadyExists, Conflict, InvalidInput, NotFound, SourceNotFound

__all__ = [
    "MAX_PAGE",
    "DeleteProgress",
    "Entry",
    "Page",
    "delete",
    "list_directory",
    "make_directory",
    "rename",
    "stat_path",
    "walk",
]

MAX_PAGE = 100_000


@dataclass(frozen=True, slots=True)
class Entry:
    """One directory entry as ls and stat report it; a symlink is described itself (type ``link``)."""

    name: str
    type: EntryType
    size: int
    mtime: float
    mode: int
    """Permission bits (``st_mode & 0o7777``)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, the name in wire form."""
        return {
            "name": to_wire(self.name),
            "type": self.type,
            "size": self.size,
            "mtime": self.mtime,
            "mode": self.mode,
        }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; ``next_after`` is the ``after`` of the next page (None: this is the last)."""

    path: str
    entries: list[Entry]
    next_after: str | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, names in wire form (a client passes ``next_after`` back through ``from_wire``)."""
        return {
            "path": to_wire(self.path),
            "entries": [entry.to_dict() for entry in self.entries],
            "next_after": None if self.next_after is None else to_wire(self.next_after),
        }


def _type(mode: int) -> EntryType:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


def _entry(name: str, st: os.stat_result) -> Entry:
    return Entry(name, _type(st.st_mode), st.st_size, st.st_mtime, stat.S_IMODE(st.st_mode))


def _lstat(path: Path, shown: str, *, follow: bool = False) -> os.stat_result:
    try:
        return os.stat(path) if follow else os.lstat(path)
    except OSError as exc:
        raise os_error(exc, shown) from None


def list_directory(
    root: CollectionRoot, path: str = "", *, after: str | None = None, limit: int = 1000
) -> Page:
    """One page of directory ``path``: at most ``limit`` entries with names after ``after``, by name."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}, got {limit}", details={"field": "limit"})
    shown = normalize(path)
    directory = root.resolve(shown)
    try:
        with os.scandir(directory) as scan:
            names = (e for e in scan if (after is None or e.name > after) and not is_internal_name(e.name))
            chosen = heapq.nsmallest(limit + 1, names, key=lambda e: e.name)
    except OSError as exc:
        raise os_error(exc, shown) from None
    entries: list[Entry] = []
    for item in chosen[:limit]:
        try:
            entries.append(_entry(item.name, item.stat(follow_symlinks=False)))
        except FileNotFoundError:
            continue  # removed since the scan
    next_after = chosen[limit - 1].name if len(chosen) > limit else None
    return Page(shown, entries, next_after)


def stat_path(root: CollectionRoot, path: str, *, follow: bool = False) -> Entry:
    """The entry at ``path`` (the link itself unless ``follow``; a followed link must stay inside)."""
    shown = normalize(path)
    real = root.resolve(shown, follow=follow)
    return _entry(shown.rsplit("/", 1)[-1], _lstat(real, shown, follow=follow))


def make_directory(
    root: CollectionRoot, path: str, *, parents: bool = False, exist_ok: bool = False
) -> Entry:
    """Create directory ``path`` (and missing parents with ``parents``); AlreadyExists unless ``exist_ok``."""
    shown = normalize(path)
    real = root.resolve(shown)
    try:
        if parents:
            os.makedirs(real, exist_ok=exist_ok)
        else:
            os.mkdir(real)
    except FileExistsError:
        if not (exist_ok and real.is_dir()):
            raise AlreadyExists(f"{quoted(shown)} already exists", details={"path": to_wire(shown)}) from None
    except FileNotFoundError:
        raise NotFound(
            f"the parent of {quoted(shown)} does not exist; create it first or pass parents",
            details={"path": to_wire(shown)},
        ) from None
    except OSError as exc:
        raise os_error(exc, shown) from None
    return stat_path(root, shown)


def rename(root: CollectionRoot, old: str, new: str, *, overwrite: bool = False) -> None:
    """Rename ``old`` to ``new`` in the collection; an existing ``new`` is replaced only with ``overwrite``.

    The existence check and the rename are two steps (Python has no ``RENAME_NOREPLACE``), so a file
    created at ``new`` in between is replaced.
    """
    old_shown, new_shown = normalize(old), normalize(new)
    if not old_shown or not new_shown:
        raise InvalidInput("the collection root itself cannot be renamed or replaced")
    source = root.resolve(old_shown, follow=False)
    target = root.resolve(new_shown, follow=False)
    if not os.path.lexists(source):
        raise NotFound(f"{quoted(old_shown)} does not exist", details={"path": to_wire(old_shown)})
    if _under(new_shown, old_shown):
        raise InvalidInput(f"{quoted(old_shown)} cannot be moved inside itself ({quoted(new_shown)})")
    if os.path.lexists(target) and not overwrite:
        raise AlreadyExists(
            f"{quoted(new_shown)} already exists; pass overwrite to replace it",
            details={"path": to_wire(new_shown)},
        )
    try:
        os.replace(source, target)
    except OSError as exc:
        raise os_error(exc, new_shown) from None


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


# -- delete ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeleteProgress:
    """Counts so far of one delete (each report repeats the totals)."""

    files: int = 0
    directories: int = 0
    bytes: int = 0


def delete(
    root: CollectionRoot,
    path: str,
    *,
    recursive: bool = False,
    ignore_missing: bool = False,
    report_every: int = 1000,
) -> Iterator[DeleteProgress]:
    """Delete ``path`` (a directory's contents too with ``recursive``), reporting progress as it goes.

    A generator: nothing is deleted until it is iterated, and it always ends with a final report.
    Symbolic links are removed, never followed. Memory stays small on any tree: directories are
    scanned again after each subdirectory instead of keeping a scan open per level.
    """
    shown = normalize(path)
    if not shown:
        raise InvalidInput("the collection root itself cannot be deleted; delete what is inside it")
    target = root.resolve(shown, follow=False)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        if not ignore_missing:
            raise NotFound(f"{quoted(shown)} does not exist", details={"path": to_wire(shown)}) from None
        yield DeleteProgress()
        return
    if not stat.S_ISDIR(info.st_mode):
        _remove(target, shown, directory=False)
        yield DeleteProgress(files=1, bytes=info.st_size)
        return
    if not recursive:
        with os.scandir(target) as scan:
            empty = next(scan, None) is None
        if not empty:
            raise Conflict(
                f"{quoted(shown)} is a directory that is not empty; delete it with recursive",
                details={"path": to_wire(shown)},
            )
        _remove(target, shown, directory=True)
        yield DeleteProgress(directories=1)
        return
    yield from _delete_tree(root, target, report_every)


def _delete_tree(root: CollectionRoot, top: Path, report_every: int) -> Iterator[DeleteProgress]:
    files = directories = size = 0
    stack = [top]
    while stack:
        directory = stack[-1]
        descended = False
        try:
            with os.scandir(directory) as scan:
                for entry in scan:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                        descended = True
                        break
                    length = entry.stat(follow_symlinks=False).st_size
                    _remove(Path(entry.path), root.relative(entry.path), directory=False)
                    files, size = files + 1, size + length
                    if (files + directories) % report_every == 0:
                        yield DeleteProgress(files, directories, size)
        except OSError as exc:
            raise os_error(exc, root.relative(directory)) from None
        if not descended:
            _remove(directory, root.relative(directory), directory=True)
            stack.pop()
            directories += 1
            if (files + directories) % report_every == 0:
                yield DeleteProgress(files, directories, size)
    yield DeleteProgress(files, directories, size)


def _remove(path: Path, shown: str, *, directory: bool) -> None:
    try:
        if directory:
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass  # gone already: the goal is reached
    except OSError as exc:
        raise os_error(exc, shown) from None


# -- the transfer walk ----------------------------------------------------------------------------------


def walk(root: CollectionRoot, path: str, *, recursive: bool, missing_ok: bool = False) -> Iterator[FileInfo]:
    """The listing of transfer item ``path`` that :func:`~beamlink.agents.collection.plan.plan_sync` takes.

    Walk order (a directory, then its entries sorted by name, depth first); paths are relative to the
    item. Symbolic links that stay inside the root count as what they point to, except that links to
    directories are not descended (no loops); links that lead out of the root or nowhere are reported
    as ``link`` and never read. SourceNotFound when the item is missing, unless ``missing_ok`` (a
    destination that does not exist yet lists nothing). Each directory's names are sorted in memory.
    """
    shown = normalize(path)
    try:
        item = root.resolve(shown)
        info = os.stat(item)
    except FileNotFoundError:
        if missing_ok:
            return
        raise SourceNotFound(f"{quoted(shown)} does not exist", details={"path": to_wire(shown)}) from None
    except OSError as exc:
        raise os_error(exc, shown) from None
    yield _info("", info)
    if recursive and stat.S_ISDIR(info.st_mode):
        yield from _walk_directory(root, item)


def _info(relative: str, st: os.stat_result) -> FileInfo:
    kind = _type(st.st_mode)
    return FileInfo(relative, kind, st.st_size if kind == "file" else 0, st.st_mtime)


def _walk_directory(root: CollectionRoot, top: Path) -> Iterator[FileInfo]:
    # A stack of (directory, its relative path + "/", its sorted names, the next index), not recursion:
    # trees deeper than Python's recursion limit exist. Plain strings, not Paths: with thousands of
    # small files the walk's own Python cost is a third of a same-host copy's, and pathlib was half of it.
    stack = [(f"{top}/", "", _sorted_names(root, str(top)), 0)]
    while stack:
        directory, prefix, names, start = stack[-1]
        for index in range(start, len(names)):  # resumed where the last visit stopped
            name = names[index]
            child = directory + name
            try:
                own = os.lstat(child)
            except FileNotFoundError:
                continue  # removed since the scan
            mode = own.st_mode
            if stat.S_ISREG(mode):
                yield FileInfo(prefix + name, "file", own.st_size, own.st_mtime)
            elif stat.S_ISDIR(mode):
                yield FileInfo(prefix + name, "dir", 0, own.st_mtime)
                stack[-1] = (directory, prefix, names, index + 1)
                stack.append((child + "/", f"{prefix}{name}/", _sorted_names(root, child), 0))
                break
            elif stat.S_ISLNK(mode):
                yield _link(root, Path(child), prefix + name, own)
            else:
                yield _info(prefix + name, own)
        else:
            stack.pop()


def _sorted_names(root: CollectionRoot, directory: str) -> list[str]:
    try:
        with os.scandir(directory) as scan:
            return sorted(e.name for e in scan if not is_internal_name(e.name))
    except FileNotFoundError:
        # Removed since it was listed, perhaps by the caller acting on the entry just yielded
        # (a DeleteExtra): the walk is live, so a vanished directory is simply empty.
        return []
    except OSError as exc:
        raise os_error(exc, root.relative(directory)) from None


def _link(root: CollectionRoot, link: Path, relative: str, own: os.stat_result) -> FileInfo:
    """A symlink as the walk reports it: its target's file if that is inside the root, else ``link``."""
    if not root.contains(root.relative(link)):
        return _info(relative, own)
    try:
        target = os.stat(link)
    except OSError:
        return _info(relative, own)  # dangling or a loop
    if stat.S_ISDIR(target.st_mode):
        return FileInfo(relative, "link", 0, own.st_mtime)
    return _info(relative, target)
