"""``beamlink ls|stat|mkdir|mv COLLECTION:PATH``: file operations on a collection, through the service.

COLLECTION is a collection id, or the name of one of yours; PATH is relative to its root.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Annotated

import typer

from beamlink.cli.context import UrlOption
from beamlink.cli.output import JsonOption, console, print_json, print_table
from beamlink.errors import InvalidInput
from beamlink.protocol.collections import FileEntry
from beamlink.sdk import Client

__all__ = ["ls", "mkdir", "mv", "split_target", "stat"]

TargetArg = Annotated[str, typer.Argument(help="COLLECTION:PATH (PATH relative to the collection's root).")]


def split_target(target: str) -> tuple[str, str]:
    collection, sep, path = target.partition(":")
    if not sep or not collection:
        raise InvalidInput(
            f"{target!r} is not COLLECTION:PATH: write the collection (id or your collection's name), a "
            "colon, then the path, e.g. `beamline:raw/scan_001.h5` (`beamline:` is the root)",
            details={"argument": target},
        )
    return collection, path


def _size(entry: FileEntry) -> str:
    if entry.type == "dir":
        return "-"
    size = float(entry.size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(entry.size)


def _mtime(entry: FileEntry) -> str:
    return datetime.fromtimestamp(entry.mtime, UTC).strftime("%Y-%m-%d %H:%M:%S")


def ls(
    target: TargetArg,
    limit: Annotated[int | None, typer.Option("--limit", help="Show at most this many entries.")] = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """List a directory (fetched page by page: large directories stream)."""
    collection, path = split_target(target)
    with Client(url) as client:
        entries = client.ls(collection, path)
        shown = list(itertools.islice(entries, limit) if limit is not None else entries)
    if json:
        print_json([e.model_dump() for e in shown])
        return
    print_table(
        None,
        [
            ("Name", lambda e: e.name + ("/" if e.type == "dir" else "")),
            ("Type", lambda e: e.type),
            ("Size", _size),
            ("Modified (UTC)", _mtime),
        ],
        shown,
    )


def stat(target: TargetArg, url: UrlOption = None, json: JsonOption = False) -> None:
    """What is at a path: type, size, permissions, modification time."""
    collection, path = split_target(target)
    with Client(url) as client:
        entry = client.stat(collection, path)
    if json:
        print_json(entry.model_dump())
        return
    console.print(
        f"{entry.name or '/'}: {entry.type}, {entry.size:,} bytes, mode {entry.mode:o}, "
        f"modified {_mtime(entry)} UTC",
        highlight=False,
        markup=False,
    )


def mkdir(
    target: TargetArg,
    parents: Annotated[
        bool, typer.Option("-p", "--parents", help="Make parent directories as needed.")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Make a directory."""
    collection, path = split_target(target)
    with Client(url) as client:
        client.mkdir(collection, path, parents=parents, exist_ok=parents)
    console.print(f"made {target}", highlight=False, markup=False)


def mv(
    source: TargetArg,
    destination: Annotated[str, typer.Argument(help="PATH, or COLLECTION:PATH in the same collection.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing destination.")] = False,
    url: UrlOption = None,
) -> None:
    """Rename or move within one collection (to copy between collections, use a transfer)."""
    collection, old = split_target(source)
    if ":" in destination:
        other, new = split_target(destination)
        if other != collection:
            raise InvalidInput(
                "mv works within one collection: use `beamlink transfer` to move data between collections",
                details={"source": source, "destination": destination},
            )
    else:
        new = destination
    with Client(url) as client:
        client.rename(collection, old, new, overwrite=overwrite)
    console.print(f"moved {source} -> {collection}:{new}", highlight=False, markup=False)
