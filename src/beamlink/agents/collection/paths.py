"""Collection paths: every path is relative to the collection's root and may not lead out of it.

A collection path is text like ``"a/b"``; ``""``, ``"/"`` and ``"/a/b"`` are read the same way, relative
to the root. ``.`` and ``..`` are applied to the text first (URL-style, before any symlink), and a path
that climbs above the root is refused. Then the real location is checked: a symlink anywhere on the way
that leads out of the root is refused too, while one that stays inside is followed. Every refusal is
:class:`~beamlink.errors.PathOutsideCollection` naming the path and the root.

Names that are not valid UTF-8: inside the agent a name is a ``str`` holding Python's ``surrogateescape``
form (what ``os.fsdecode`` gives: byte 0xff becomes ``"\\udcff"``), which every ``os`` call turns back
into the same bytes. That form cannot cross JSON as it is (pydantic and UTF-8 encoders refuse lone
surrogates), so the wire carries :func:`to_wire` text: each byte that is not UTF-8 is written ``\\xHH``
and a literal backslash ``\\\\``; every other name, almost all of them, is unchanged. :func:`from_wire`
reverses it exactly.

Known limit: the check and the later open are two steps, so someone who can replace a directory with a
symlink *inside the root* between them could race it (Linux's ``openat2(RESOLVE_BENEATH)`` would close
that; Python has no binding). Collections are served by an agent running as their owner, who can write
there anyway.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
from pathlib import Path

from beamlink.errors import (
    AlreadyExists,
    BeamlinkError,
    Conflict,
    InvalidInput,
    NotFound,
    PathOutsideCollection,
    PermissionDenied,
)

__all__ = ["CollectionRoot", "from_wire", "normalize", "os_error", "quoted", "to_wire"]


def normalize(path: str | bytes) -> str:
    """``path`` as a clean root-relative path (``""`` for the root itself); refuses NUL and climbing out.

    ``"/a//b/./c/"`` → ``"a/b/c"``; ``"a/../b"`` → ``"b"``; ``"../x"`` and ``"/.."`` are refused.
    """
    if type(path) is str and path.isascii() and "\x00" not in path:
        # Already clean (the common case, e.g. every path of a batch): no empty, "." or ".." component.
        framed = f"/{path}/"
        if "//" not in framed and "/./" not in framed and "/../" not in framed:
            return path
    text = os.fsdecode(path) if isinstance(path, bytes) else path
    if not isinstance(text, str):
        raise InvalidInput(f"a path must be text, not {type(path).__name__}")
    if "\x00" in text:
        raise PathOutsideCollection(
            f"the path {quoted(text)} contains a NUL character, which no file name may hold",
            details={"path": to_wire(text)},
        )
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise InvalidInput(
            f"the path {text!r} is not text a file name can hold", details={"path": repr(text)}
        ) from None
    clean = posixpath.normpath("/" + text).lstrip("/")
    if _climbs(text):
        raise PathOutsideCollection(
            f"the path {quoted(text)} leads out of the collection with '..'; paths are relative to the "
            "collection's root and cannot go above it",
            details={"path": to_wire(text)},
        )
    return "" if clean == "." else clean


def _climbs(text: str) -> bool:
    """Whether applying ``..`` components ever goes above the start (``a/../..`` does, ``a/..`` not)."""
    depth = 0
    for part in text.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


class CollectionRoot:
    """One collection's root directory and the confinement of every path to it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        real = Path(os.path.realpath(root))
        if not real.is_dir():
            raise InvalidInput(f"the collection root {root} is not a directory", details={"root": str(root)})
        self.path = real

    def __repr__(self) -> str:
        return f"CollectionRoot({str(self.path)!r})"

    def resolve(self, relative: str | bytes, *, follow: bool = True) -> Path:
        """The real filesystem path for collection path ``relative``, which need not exist yet.

        With ``follow`` False a symlink at the last component is not followed (to stat, rename or delete
        the link itself); the directories leading to it still are, and are checked.
        """
        clean = normalize(relative)
        if not clean:
            return self.path
        joined = self.path / clean
        if follow:
            real = Path(os.path.realpath(joined))
        else:
            real = Path(os.path.realpath(joined.parent)) / joined.name
        if real != self.path and not real.is_relative_to(self.path):
            shown = to_wire(relative if isinstance(relative, str) else os.fsdecode(relative))
            raise PathOutsideCollection(
                f"the path '{shown}' leads out of the collection root {self.path} through a symbolic link; "
                "only links that stay inside the root can be used",
                details={"path": shown, "root": str(self.path)},
            )
        return real

    def relative(self, path: str | os.PathLike[str]) -> str:
        """The collection path of a real path inside the root (``""`` for the root)."""
        rel = Path(path).relative_to(self.path).as_posix()
        return "" if rel == "." else rel

    def contains(self, relative: str | bytes, *, follow: bool = True) -> bool:
        """Whether ``relative`` stays inside the root (no exception)."""
        try:
            self.resolve(relative, follow=follow)
        except PathOutsideCollection:
            return False
        return True


# -- names on the wire ----------------------------------------------------------------------------------

_ESCAPE = re.compile(r"[\\\udc80-\udcff]")
_UNESCAPE = re.compile(r"\\(\\|x[89a-fA-F][0-9a-fA-F]|.?)", re.DOTALL)


def to_wire(name: str) -> str:
    """A surrogateescape name as valid Unicode text: bytes that are not UTF-8 as ``\\xHH``, ``\\`` doubled."""
    if "\\" not in name and name.isascii():  # most names: nothing to escape (the regex costs ~1 µs)
        return name

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return "\\\\" if char == "\\" else f"\\x{ord(char) - 0xDC00:02x}"

    return _ESCAPE.sub(escape, name)


def quoted(path: str) -> str:
    """A collection path as messages show it: in wire form, in single quotes, the root as ``'/'``."""
    return f"'{to_wire(path) or '/'}'"


def from_wire(text: str) -> str:
    """The name :func:`to_wire` wrote; InvalidInput for a backslash not followed by ``\\`` or ``xHH``."""
    if "\\" not in text:  # every escape starts with one
        return text

    def unescape(match: re.Match[str]) -> str:
        body = match.group(1)
        if body == "\\":
            return "\\"
        if body.startswith("x") and len(body) == 3:
            return chr(0xDC00 + int(body[1:], 16))
        raise InvalidInput(
            f"the path {text!r} has a stray backslash: write a backslash in a name as '\\\\', and a byte "
            "that is not UTF-8 as '\\xHH' (80 to ff)",
            details={"path": text},
        )

    return _UNESCAPE.sub(unescape, text)


# -- OS errors as beamlink errors -----------------------------------------------------------------------

_BY_ERRNO: dict[int, tuple[type[BeamlinkError], str]] = {
    errno.ENOENT: (NotFound, "does not exist"),
    errno.EEXIST: (AlreadyExists, "already exists"),
    errno.ENOTEMPTY: (Conflict, "is a directory that is not empty"),
    errno.ENOTDIR: (InvalidInput, "is not a directory (a part of it is a file)"),
    errno.EISDIR: (InvalidInput, "is a directory"),
    errno.EACCES: (PermissionDenied, "is not accessible to the collection agent (file permissions)"),
    errno.EPERM: (PermissionDenied, "may not be changed by the collection agent (file permissions)"),
    errno.EROFS: (PermissionDenied, "is on read-only storage"),
    errno.ENAMETOOLONG: (InvalidInput, "has a name too long for the filesystem"),
    errno.ELOOP: (InvalidInput, "goes through too many symbolic links (a loop?)"),
    errno.ENOSPC: (Conflict, "cannot be written: no space left on the device"),
    errno.EDQUOT: (Conflict, "cannot be written: disk quota exceeded"),
}


def os_error(exc: OSError, path: str) -> BeamlinkError:
    """The beamlink error for an OS error on collection path ``path`` (the message never shows the root)."""
    cls, what = _BY_ERRNO.get(exc.errno or 0, (BeamlinkError, f"failed: {exc.strerror or exc}"))
    details = {"path": to_wire(path), "errno": errno.errorcode.get(exc.errno or 0)}
    return cls(f"{quoted(path)} {what}", details=details)
