"""Where the CLI finds an app's local folders: a collection's root from its profile on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from beamlink.apps.registry import load_app
from beamlink.cli.app_watch import fill_local_roots, local_folder
from beamlink.errors import InvalidInput


def _collection(home: Path, name: str, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    profile = home / "collections" / name
    profile.mkdir(parents=True)
    (profile / "config.yaml").write_text(f"root_path: {root}\n")


def test_remote_root_is_filled_from_the_remote_collection_served_here(tmp_path: Path) -> None:
    xpcs = load_app("xpcs")
    _collection(tmp_path, "remote", tmp_path / "data" / "remote")
    payload: dict[str, object] = {"measurement": "incoming/a.h5"}
    said = fill_local_roots(tmp_path, xpcs, payload)
    assert payload["remote_root"] == str(tmp_path / "data" / "remote")
    assert said == [
        f"remote_root={tmp_path / 'data' / 'remote'} (the folder of collection 'remote' on this machine)"
    ]
    given = {"remote_root": "/elsewhere"}
    assert fill_local_roots(tmp_path, xpcs, given) == []
    assert given["remote_root"] == "/elsewhere"  # what the user gives wins
    other = {"remote_collection": "hpc"}  # a collection not served here: nothing to fill
    assert fill_local_roots(tmp_path, xpcs, other) == []
    assert "remote_root" not in other


def test_a_watched_location_is_a_folder_of_a_collection_served_here(tmp_path: Path) -> None:
    _collection(tmp_path, "local", tmp_path / "data" / "local")
    assert local_folder(tmp_path, "local:incoming/") == (
        "local",
        "incoming/",
        tmp_path / "data" / "local" / "incoming",
    )
    assert local_folder(tmp_path, "local:") == ("local", "", tmp_path / "data" / "local")
    with pytest.raises(InvalidInput, match="names no collection"):
        local_folder(tmp_path, "incoming/")
    with pytest.raises(InvalidInput, match=r"'\.\.' is not allowed"):
        local_folder(tmp_path, "local:../etc")
    with pytest.raises(InvalidInput, match="not configured on this machine"):
        local_folder(tmp_path, "beamline:incoming/")
