"""Sync planning, pure: source and destination listings in, one action per path out.

:func:`plan_sync` merges two listings of one transfer item (its source and its destination, each path
relative to the item, ``""`` being the item itself) and yields :class:`Mkdir`, :class:`Copy`,
:class:`Skip`, :class:`CompareChecksum`, :class:`DeleteExtra` or :class:`TypeConflict`. Both listings
must be in *walk order*: a directory before its contents, siblings sorted by name (what
:func:`beamlink.agents.collection.fsops.walk` yields). The two are merged like sorted files, so memory
stays constant however large the tree; a listing out of order is a ValueError, never a wrong deletion.

Sync levels (Globus's ``sync_level``), for a file present on both sides:

========== =========================================================================================
None       always copy
exists     skip: the destination file exists
size       copy when the sizes differ
mtime      copy when the sizes differ or the source is newer (by more than ``mtime_tolerance``)
checksum   copy when the sizes differ; equal sizes (not empty) yield CompareChecksum, which the caller
           settles with :func:`settle_checksum` once both digests are known
========== =========================================================================================

Each level also checks the size where that is cheaper than its own test, since different sizes always
mean different content: a destination cut short by an earlier failure is never taken as up to date.

Filters: ``include`` and ``exclude`` are lists of globs. A glob without ``/`` is matched (``fnmatch``,
case-sensitive) against the *name* of every entry at any depth (``*.h5``); a glob with ``/`` is matched
against the whole path from the item's root, where ``*`` and ``?`` stay within one component and ``**``
crosses them (``raw/**/*.tif``); a trailing ``/`` limits a glob to directories (``cache/``). An entry
matching any exclude glob is left out (a directory with everything below it). When include globs are
given, a file must match one of them; directories are not subject to include globs, so
``--include '*.h5'`` still finds ``.h5`` files in subdirectories. Filtered-out paths yield no action at
all, and ``delete_extra`` never deletes a destination path the filters leave out (as rsync protects
excluded files).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Literal

from beamlink.agents.collection.paths import normalize, to_wire
from beamlink.errors import DestinationInsideSource, InvalidInput, SourceNotFound, TransferOntoItself

__all__ = [
    "Action",
    "CompareChecksum",
    "Copy",
    "DeleteExtra",
    "EntryType",
    "FileInfo",
    "Filters",
    "Mkdir",
    "Reason",
    "Skip",
    "SyncLevel",
    "SyncOptions",
    "TypeConflict",
    "check_transfer_paths",
    "plan_sync",
    "settle_checksum",
]

EntryType = Literal["file", "dir", "link", "other"]


class SyncLevel(StrEnum):
    """When a file already at the destination is left alone (None in :class:`SyncOptions`: never)."""

    EXISTS = "exists"
    """It exists."""
    SIZE = "size"
    """It has the source's size."""
    MTIME = "mtime"
    """It has the source's size and is not older than the source."""
    CHECKSUM = "checksum"
    """It has the source's size and checksum."""


class Reason(StrEnum):
    """Why a path is copied or skipped (stable words for task events)."""

    MISSING = "missing at the destination"
    ALWAYS = "no sync level: always copied"
    SIZE_DIFFERS = "sizes differ"
    SOURCE_NEWER = "source is newer"
    CHECKSUM_DIFFERS = "checksums differ"
    EXISTS = "exists at the destination"
    SAME_SIZE = "same size"
    NOT_NEWER = "same size, destination not older"
    SAME_CHECKSUM = "same checksum"
    BOTH_EMPTY = "both empty"
    NOT_REGULAR = "not a regular file or directory (a symbolic link leading out or nowhere, a device, ...)"


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One entry of a listing: ``path`` relative to the transfer item (``""``: the item itself)."""

    path: str
    type: EntryType
    size: int = 0
    mtime: float = 0.0


@dataclass(frozen=True, slots=True)
class Mkdir:
    path: str


@dataclass(frozen=True, slots=True)
class Copy:
    path: str
    size: int
    reason: Reason
    mtime: float | None = None
    """The source's mtime to set on the copy (only with ``preserve_timestamps``)."""


@dataclass(frozen=True, slots=True)
class Skip:
    path: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class CompareChecksum:
    """Both files have ``size`` bytes; hash both, then :func:`settle_checksum`."""

    path: str
    size: int
    mtime: float | None = None


@dataclass(frozen=True, slots=True)
class DeleteExtra:
    """Delete this destination path (recursively for a directory): the source has no such path."""

    path: str
    type: EntryType


@dataclass(frozen=True, slots=True)
class TypeConflict:
    """Source and destination hold different kinds of entry at one path; neither is touched."""

    path: str
    source_type: EntryType
    destination_type: EntryType


Action = Mkdir | Copy | Skip | CompareChecksum | DeleteExtra | TypeConflict


class Filters:
    """Include and exclude globs with the semantics of the module docstring."""

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self._include = [_compile(p) for p in self.include]
        self._exclude = [_compile(p) for p in self.exclude]

    def selects(self, path: str, type: EntryType) -> bool:
        """Whether the entry at ``path`` takes part in the transfer (the item itself always does)."""
        if not path or not (self._exclude or self._include):
            return True
        is_dir = type == "dir"
        if any(match(path, is_dir) for match in self._exclude):
            return False
        return is_dir or not self._include or any(match(path, is_dir) for match in self._include)


def _compile(pattern: str) -> _Matcher:
    if not pattern or pattern in ("/", "**/"):
        raise InvalidInput(f"the filter pattern {pattern!r} matches nothing useful; give a name or path glob")
    dirs_only = pattern.endswith("/")
    body = pattern.rstrip("/")
    if "/" not in body:
        name = re.compile(fnmatch.translate(body))
        return _Matcher(lambda path: name.match(path.rsplit("/", 1)[-1]) is not None, dirs_only)
    whole = re.compile(_path_glob(body.lstrip("/")))
    return _Matcher(lambda path: whole.fullmatch(path) is not None, dirs_only)


@dataclass(frozen=True)
class _Matcher:
    test: Callable[[str], bool]
    dirs_only: bool

    def __call__(self, path: str, is_dir: bool) -> bool:
        return (is_dir or not self.dirs_only) and self.test(path)


def _path_glob(pattern: str) -> str:
    """A regex for a path glob: ``**`` any depth, ``*``/``?`` within a component, ``[...]`` a class."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class SyncOptions:
    """The transfer item's options that decide what happens to each path."""

    sync_level: SyncLevel | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    delete_extra: bool = False
    recursive: bool = False
    preserve_timestamps: bool = False
    mtime_tolerance: float = 0.001
    """Seconds by which a source must be newer to count as newer (2.0 suits FAT's coarse clock)."""

    @cached_property
    def filters(self) -> Filters:
        return Filters(self.include, self.exclude)


# -- planning -------------------------------------------------------------------------------------------


def plan_sync(
    source: Iterable[FileInfo], destination: Iterable[FileInfo], options: SyncOptions
) -> Iterator[Action]:
    """The actions that bring the destination in line with the source, path by path, in walk order.

    SourceNotFound when the source listing is empty; InvalidInput when the item is a directory without
    ``recursive`` (or a file with it).
    """
    sources = _in_walk_order(source, "source")
    destinations = _in_walk_order(destination, "destination")
    first = next(sources, None)
    if first is None:
        raise SourceNotFound("the source does not exist (its listing is empty)")
    if first.path:
        raise ValueError(f"a listing starts with the item itself (path ''), not {first.path!r}")
    _check_item(first, options)
    merge = _Merge(options)
    yield from merge.run(first, sources, destinations)


def settle_checksum(action: CompareChecksum, source_digest: str, destination_digest: str) -> Copy | Skip:
    """The outcome of a CompareChecksum once both files are hashed (with the same algorithm)."""
    if source_digest.lower() == destination_digest.lower():
        return Skip(action.path, Reason.SAME_CHECKSUM)
    return Copy(action.path, action.size, Reason.CHECKSUM_DIFFERS, action.mtime)


def _check_item(item: FileInfo, options: SyncOptions) -> None:
    if item.type == "dir" and not options.recursive:
        raise InvalidInput("the source is a directory: transfer it with recursive (--recursive)")
    if item.type != "dir" and options.recursive:
        raise InvalidInput("the source is a file, not a directory: transfer it without recursive")


def _key(path: str) -> tuple[str, ...]:
    return tuple(path.split("/")) if path else ()


def _in_walk_order(entries: Iterable[FileInfo], side: str) -> Iterator[FileInfo]:
    previous: tuple[str, ...] | None = None
    for entry in entries:
        key = _key(entry.path)
        if previous is not None and key <= previous:
            raise ValueError(
                f"the {side} listing is out of walk order: {entry.path!r} after {'/'.join(previous)!r}; list "
                "each directory before its contents and siblings sorted by name"
            )
        previous = key
        yield entry


def _under(path: str, prefix: str | None) -> bool:
    return prefix is not None and (prefix == "" or path.startswith(prefix + "/"))


class _Merge:
    """The merge of the two listings, with the subtrees whose entries need no action of their own."""

    def __init__(self, options: SyncOptions) -> None:
        self.options = options
        self.filters = options.filters
        self.prune_source: str | None = None
        self.prune_destination: str | None = None

    def run(
        self, first: FileInfo, sources: Iterator[FileInfo], destinations: Iterator[FileInfo]
    ) -> Iterator[Action]:
        s: FileInfo | None = first
        d = next(destinations, None)
        while s is not None or d is not None:
            action: Action | None
            if s is not None and _under(s.path, self.prune_source):
                s = next(sources, None)
                continue
            if d is not None and _under(d.path, self.prune_destination):
                d = next(destinations, None)
                continue
            if d is None or (s is not None and _key(s.path) < _key(d.path)):
                assert s is not None
                action = self.source_only(s)
                s = next(sources, None)
            elif s is None or _key(d.path) < _key(s.path):
                action = self.destination_only(d)
                d = next(destinations, None)
            else:
                action = self.both(s, d)
                s, d = next(sources, None), next(destinations, None)
            if action is not None:
                yield action

    # Each entry (or pair) gives at most one action: returned, not yielded (a generator per entry was a
    # third of planning's cost with thousands of small files).

    def source_only(self, s: FileInfo) -> Action | None:
        if not self.filters.selects(s.path, s.type):
            self._prune(source=s)
            return None
        if s.type == "file":
            return self._copy(s, Reason.MISSING)
        if s.type == "dir":
            return Mkdir(s.path)
        return Skip(s.path, Reason.NOT_REGULAR)

    def destination_only(self, d: FileInfo) -> Action | None:
        if not d.path:
            return None  # the item's destination exists and the source does not: plan_sync refused already
        if not self.filters.selects(d.path, d.type):
            self._prune(destination=d)
        elif self.options.delete_extra:
            self._prune(destination=d)
            return DeleteExtra(d.path, d.type)
        return None

    def both(self, s: FileInfo, d: FileInfo) -> Action | None:
        if not self.filters.selects(s.path, s.type):
            self._prune(source=s, destination=d)
            return None
        if s.type == "dir" and d.type == "dir":
            return None
        if s.type == "file" and d.type == "file":
            return self._compare(s, d)
        if s.type not in ("file", "dir"):
            self._prune(destination=d)
            return Skip(s.path, Reason.NOT_REGULAR)
        # A file where a directory is, or the reverse: refusing keeps both sides' data.
        self._prune(source=s, destination=d)
        return TypeConflict(s.path, s.type, d.type)

    def _compare(self, s: FileInfo, d: FileInfo) -> Action:
        level = self.options.sync_level
        if level is None:
            return self._copy(s, Reason.ALWAYS)
        if level is SyncLevel.EXISTS:
            return Skip(s.path, Reason.EXISTS)
        if s.size != d.size:
            return self._copy(s, Reason.SIZE_DIFFERS)
        if level is SyncLevel.SIZE:
            return Skip(s.path, Reason.SAME_SIZE)
        if level is SyncLevel.MTIME:
            if s.mtime - d.mtime > self.options.mtime_tolerance:
                return self._copy(s, Reason.SOURCE_NEWER)
            return Skip(s.path, Reason.NOT_NEWER)
        if s.size == 0:
            return Skip(s.path, Reason.BOTH_EMPTY)
        return CompareChecksum(s.path, s.size, self._mtime(s))

    def _copy(self, s: FileInfo, reason: Reason) -> Copy:
        return Copy(s.path, s.size, reason, self._mtime(s))

    def _mtime(self, s: FileInfo) -> float | None:
        return s.mtime if self.options.preserve_timestamps else None

    def _prune(self, *, source: FileInfo | None = None, destination: FileInfo | None = None) -> None:
        """Leave out what lies below these entries (a directory's contents)."""
        if source is not None and source.type == "dir":
            self.prune_source = source.path
        if destination is not None and destination.type == "dir":
            self.prune_destination = destination.path


# -- checks before a transfer ---------------------------------------------------------------------------


def check_transfer_paths(
    source_collection: str,
    source_path: str,
    destination_collection: str,
    destination_path: str,
    *,
    recursive: bool,
    delete_extra: bool = False,
) -> tuple[str, str]:
    """The two paths, normalized; refuses traversal, a transfer onto itself and copying into itself.

    Paths are compared as text: two collections serving one directory, or a symlink naming the source
    under another path, are not detected here (:func:`~beamlink.agents.collection.partial.copy_local`
    still refuses to copy a file onto itself).
    """
    source = normalize(source_path)
    destination = normalize(destination_path)
    if source_collection != destination_collection:
        return source, destination
    shown_source, shown_destination = to_wire(source) or "/", to_wire(destination) or "/"
    details = {"source_path": to_wire(source), "destination_path": to_wire(destination)}
    if source == destination:
        raise TransferOntoItself(
            f"the source and destination are the same path '{shown_source}' of the same collection; choose "
            "another destination path or collection",
            details=details,
        )
    if recursive and _under(destination, source):
        raise DestinationInsideSource(
            f"the destination '{shown_destination}' is inside the source '{shown_source}', so the transfer "
            "would copy into itself; choose a destination outside the source",
            details=details,
        )
    if recursive and delete_extra and _under(source, destination):
        raise InvalidInput(
            f"the source '{shown_source}' is inside the destination '{shown_destination}', so delete_extra "
            "would delete the source itself; choose another destination or leave out delete_extra",
            details=details,
        )
    return source, destination
