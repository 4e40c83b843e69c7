"""Collections end to end: a real agent daemon serving a directory, operated through the CLI and SDK,
with access rules between two users."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from beamlink.errors import (
    AlreadyExists,
    CollectionOffline,
    InvalidInput,
    NotFound,
    PathOutsideCollection,
    PermissionDenied,
)
from beamlink.protocol.collections import RuleCreate
from e2e_helpers import Person

pytestmark = pytest.mark.slow


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "beamline-data"
    (root / "raw" / "scan 001").mkdir(parents=True)
    (root / "raw" / "scan 001" / "frame_0001.h5").write_bytes(b"x" * 1234)
    (root / "raw" / "naïve ünïcode.txt").write_text("hello")
    (root / "raw" / os.fsdecode(b"odd\xffbyte")).write_bytes(b"odd")
    (root / "processed").mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    (root / "escape").symlink_to(outside)
    return root


def test_a_collection_serves_its_directory_through_the_cli_and_sdk(
    make_person: Callable[..., Person], data: Path
) -> None:
    alice = make_person("alice")
    alice.configure_collection("beamline", data)
    collection_id = alice.start_collection("beamline")

    listed = alice.cli("collection", "list")
    assert "beamline" in listed.stdout
    assert "Running" in listed.stdout
    assert collection_id in listed.stdout

    names = {e.name: e for e in alice.client.ls("beamline", "raw")}
    assert set(names) == {"scan 001", "naïve ünïcode.txt", "odd\\xffbyte"}
    assert names["scan 001"].type == "dir"
    assert alice.client.stat("beamline", "raw/scan 001/frame_0001.h5").size == 1234

    out = alice.cli("ls", "beamline:raw")
    assert out.code == 0, out.stderr
    assert "scan 001/" in out.stdout
    assert "naïve ünïcode.txt" in out.stdout
    assert "odd\\xffbyte" in out.stdout

    assert alice.cli("mkdir", "-p", "beamline:processed/2026/run 7").code == 0
    assert (data / "processed" / "2026" / "run 7").is_dir()
    moved = alice.cli("mv", "beamline:raw/naïve ünïcode.txt", "processed/renamed.txt")
    assert moved.code == 0, moved.stderr
    assert (data / "processed" / "renamed.txt").read_text() == "hello"
    assert alice.client.stat("beamline", "raw/odd\\xffbyte").size == 3  # a non-UTF-8 name round-trips

    stat = alice.cli("stat", "beamline:processed/renamed.txt", "--json")
    assert '"size": 5' in stat.stdout

    # Paging: a directory read in pages of 2 comes back whole and in name order.
    for i in range(7):
        (data / "processed" / f"f{i}").write_text(str(i))
    paged = [e.name for e in alice.client.ls("beamline", "processed", page_size=2)]
    assert paged == sorted(paged)
    assert {f"f{i}" for i in range(7)} <= set(paged)


def test_bad_paths_and_operations_are_refused_with_the_reason(
    make_person: Callable[..., Person], data: Path
) -> None:
    alice = make_person("alice")
    alice.configure_collection("beamline", data)
    alice.start_collection("beamline")
    client = alice.client

    for bad in ("../secret.txt", "raw/../../secret.txt", "/../secret.txt"):
        with pytest.raises(PathOutsideCollection):
            client.stat("beamline", bad)
    with pytest.raises(PathOutsideCollection):
        client.stat("beamline", "escape")  # a symlink that leads out of the root
    with pytest.raises(NotFound):
        client.stat("beamline", "raw/missing.h5")
    with pytest.raises(AlreadyExists):
        client.mkdir("beamline", "raw")
    with pytest.raises(PathOutsideCollection):
        client.rename("beamline", "raw/scan 001", "../stolen")
    out = alice.cli("ls", "no-colon-here")
    assert out.code == 1
    assert "COLLECTION:PATH" in out.stderr
    out = alice.cli("mv", "beamline:raw", "other:raw")
    assert out.code == 1
    assert "within one collection" in out.stderr
    assert (data / "raw" / "scan 001").is_dir()  # nothing moved


def test_another_users_collection_is_invisible_until_a_rule_lets_them_in(
    make_person: Callable[..., Person], data: Path
) -> None:
    alice, bob = make_person("alice"), make_person("bob")
    alice.configure_collection("beamline", data)
    collection_id = alice.start_collection("beamline")

    with pytest.raises(NotFound):
        bob.client.ls(collection_id, "raw").__next__()
    assert collection_id not in [c.id for c in bob.client.list_collections()]

    alice.client.add_collection_rule(
        collection_id,
        RuleCreate(principal_type="user", principal=bob.username, path="raw", permission="read"),
    )
    assert {e.name for e in bob.client.ls(collection_id, "raw")} >= {"scan 001"}
    with pytest.raises(PermissionDenied) as denied:
        bob.client.ls(collection_id, "processed").__next__()
    assert "processed" in denied.value.message
    with pytest.raises(PermissionDenied):
        bob.client.mkdir(collection_id, "raw/bobs")  # read-only rule
    assert not (data / "raw" / "bobs").exists()

    rules = alice.cli("collection", "rule", "list", collection_id)
    assert bob.username in rules.stdout
    assert "/raw" in rules.stdout
    with pytest.raises(PermissionDenied):
        bob.client.list_collection_rules(collection_id)  # only the owner manages rules
    start = bob.cli("collection", "rule", "add", collection_id, bob.username, "--write")
    assert start.code != 0

    alice.cli("collection", "set", collection_id, "--public-read")
    assert {e.name for e in bob.client.ls(collection_id, "processed")} == set()


def test_a_stopped_collection_answers_offline_and_a_bad_config_names_the_key(
    make_person: Callable[..., Person], data: Path
) -> None:
    alice = make_person("alice")
    alice.configure_collection("beamline", data)
    alice.start_collection("beamline")
    stopped = alice.cli("collection", "stop", "beamline")
    assert stopped.code == 0
    assert "stopped collection beamline" in stopped.stdout
    alice.started_collections.clear()
    with pytest.raises(CollectionOffline) as offline:
        alice.client.stat("beamline", "raw")
    assert "beamlink collection start beamline" in offline.value.message

    again = alice.cli("collection", "stop", "beamline")
    assert again.code == 1
    assert "is not running" in again.stderr

    alice.configure_collection("broken", data, extra="concurency: 4\n")
    broken = alice.cli("collection", "start", "broken")
    assert broken.code == 1
    assert "concurency" in broken.stderr
    assert "line 3" in broken.stderr
    with pytest.raises(InvalidInput):
        alice.client.stat("beamline", "a\x00b")


def test_files_download_through_the_service_with_ranges_and_access_checks(
    make_person: Callable[..., Person], data: Path, tmp_path: Path
) -> None:
    alice, bob = make_person("alice"), make_person("bob")
    alice.configure_collection("beamline", data)
    collection_id = alice.start_collection("beamline")
    payload = os.urandom(300_000)
    (data / "raw" / "image 1.png").write_bytes(payload)

    whole = tmp_path / "whole.png"
    assert alice.client.download("beamline", "raw/image 1.png", whole) == len(payload)
    assert whole.read_bytes() == payload
    part = tmp_path / "part.png"
    assert alice.client.download("beamline", "raw/image 1.png", part, byte_range=(1000, 2000)) == 1000
    assert part.read_bytes() == payload[1000:2000]

    with pytest.raises(NotFound):
        bob.client.download(collection_id, "raw/image 1.png", tmp_path / "stolen")
    with pytest.raises(PathOutsideCollection):
        alice.client.download("beamline", "escape", tmp_path / "escaped")
    with pytest.raises(NotFound):
        alice.client.download("beamline", "raw/missing.png", tmp_path / "missing")

    alice.client.update_collection(collection_id, public_read=True)
    url = f"{alice.url}/v1/collections/{collection_id}/files/raw/image%201.png"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 200
    assert anonymous.content == payload
    assert anonymous.headers["content-type"] == "image/png"
    ranged = httpx.get(
        f"{alice.url}/v1/collections/{collection_id}/files/raw/image%201.png",
        headers={"Range": "bytes=10-19"},
    )
    assert ranged.status_code == 206
    assert ranged.content == payload[10:20]
    assert ranged.headers["content-range"] == f"bytes 10-19/{len(payload)}"


def test_a_directory_of_100000_entries_is_listed_page_by_page(
    make_person: Callable[..., Person], tmp_path: Path
) -> None:
    root = tmp_path / "many"
    (root / "frames").mkdir(parents=True)
    for i in range(100_000):
        (root / "frames" / f"frame_{i:06d}.tif").touch()
    alice = make_person("alice")
    alice.configure_collection("many", root)
    alice.start_collection("many")
    seen = 0
    previous = ""
    for entry in alice.client.ls("many", "frames"):  # pages of 10,000, each a bounded scan at the agent
        assert entry.name > previous
        previous = entry.name
        seen += 1
    assert seen == 100_000
    first = alice.cli("ls", "many:frames", "--limit", "3", "--json")
    assert [e["name"] for e in json.loads(first.stdout)] == [f"frame_{i:06d}.tif" for i in range(3)]
