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

__all__ = ["collection_root", "fill_local_roots", "local_folder", "watch_folder"]


def collection_root(home: Path, collection: str) -> Path | None:
    """The folder a collection of this machine serves (from its profile in ``home``), or None."""
    profile = AgentProfile("collection", collection, home)
    if not profile.config_path.is_file():
        return None
    return Path(load_config(profile.config_path).root_path)


def fill_local_roots(home: Path, app: App, payload: dict[str, Any]) -> list[str]:
    """Give ``remote_root`` (the remote collection's folder as the compute host sees it) when the app
    needs it, the payload lacks it, and that collection is served from this machine: the case of a site
    brought up here. Returns what was filled, for the user to see."""
    if "remote_root" not in app.required_input() or payload.get("remote_root"):
        return []
    name = payload.get("remote_collection") or app.input_defaults().get("remote_collection")
    root = collection_root(home, name) if isinstance(name, str) else None
    if root is None:
        return []
    payload["remote_root"] = str(root)
    return [f"remote_root={root} (the folder of collection {name!r} on this machine)"]


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
    root = collection_root(home, collection)
    if root is None:
        raise InvalidInput(
            f"the collection {collection!r} is not configured on this machine (no profile in {home}): "
            "watch runs where the collection's files are; configure it with `beamlink collection configure "
            f"{collection} --root DIR` or use the BEAMLINK_HOME that has it",
            details={"collection": collection},
        )
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
    payload = dict(payload)
    for line in fill_local_roots(client.home, app, payload):
        console.print(f"using {line}", highlight=False)
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
