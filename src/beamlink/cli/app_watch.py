"""``beamlink app watch APP COLLECTION:FOLDER``: find the folder behind a collection of this machine and
run :class:`beamlink.apps.watch.FolderWatcher` on it, printing what it does."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from beamlink.agents.collection.config import load_config
from beamlink.agents.daemon import AgentProfile
from beamlink.apps.app import App
from beamlink.apps.watch import FolderWatcher, WatchEvent
from beamlink.cli.output import console
from beamlink.errors import InvalidInput
from beamlink.sdk import Client

__all__ = ["local_folder", "watch_folder"]


def local_folder(home: Path, location: str) -> tuple[str, str, Path]:
    """(collection, prefix ending in '/' or empty, directory) of ``COLLECTION:FOLDER``."""
    collection, sep, folder = location.partition(":")
    if not sep or not collection:
        raise InvalidInput(
            f"{location!r} names no collection: write COLLECTION:FOLDER, e.g. local:incoming/",
            details={"field": "location"},
        )
    relative = PurePosixPath(folder.strip("/")) if folder.strip("/") else PurePosixPath()
    if any(part == ".." for part in relative.parts):
        raise InvalidInput(
            f"{location!r}: '..' is not allowed in a collection path", details={"field": "location"}
        )
    profile = AgentProfile("collection", collection, home)
    if not profile.config_path.is_file():
        raise InvalidInput(
            f"the collection {collection!r} is not configured on this machine (no {profile.config_path}): "
            "watch runs where the collection's files are; configure it with `beamlink collection configure "
            f"{collection} --root DIR` or use the BEAMLINK_HOME that has it",
            details={"collection": collection},
        )
    root = load_config(profile.config_path).root_path
    prefix = f"{relative.as_posix()}/" if relative.parts else ""
    return collection, prefix, Path(root) / relative


def _print(event: WatchEvent) -> None:
    style = {"started": "cyan", "finished": "green", "waiting": "yellow", "error": "red"}[event.kind]
    if event.kind == "finished" and event.run is not None and event.run.status != "SUCCEEDED":
        style = "red"
    console.print(f"[{style}]{event.kind:>8}[/{style}] {event.path}: {event.message}", highlight=False)


def watch_folder(
    client: Client, app: App, location: str, payload: Mapping[str, Any], *, settle: float, existing: bool
) -> None:
    collection, prefix, folder = local_folder(client.home, location)
    watcher = FolderWatcher(
        client,
        app,
        collection,
        prefix,
        folder,
        payload=payload,
        settle=settle,
        existing=existing,
        on_event=_print,
    )
    patterns = ", ".join(app.file_patterns)
    console.print(
        f"watching {collection}:{prefix or '/'} ({folder}) for {patterns}; a run of {app.name} per complete "
        "file. Ctrl-C stops.",
        highlight=False,
    )
    with contextlib.suppress(KeyboardInterrupt):
        watcher.run()
    console.print(
        f"stopped watching ({watcher.active} run(s) still going on; `beamlink run list` shows them)"
    )
