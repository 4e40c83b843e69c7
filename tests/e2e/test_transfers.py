"""Transfers and deletes end to end: real collection agents (same-host copy and HTTP pull between two
agents), submitted and followed through the CLI and SDK, with the bad inputs of the issue."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from beamlink.errors import (
    DestinationInsideSource,
    InvalidInput,
    NotFound,
    PathOutsideCollection,
    TransferOntoItself,
)
from beamlink.protocol.transfers import TransferCreate, TransferItem, TransferOptions
from e2e_helpers import Person, scan_tree, transfer_scan

pytestmark = pytest.mark.slow

HTTP_ONLY = "same_host_copy: false\nchunk_size: 1 MiB\n"


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    return scan_tree(tmp_path)


def _two_collections(
    person: Person, roots: tuple[Path, Path], destination_extra: str = ""
) -> tuple[str, str]:
    source, destination = roots
    person.configure_collection("instrument", source)
    person.configure_collection("facility", destination, extra=destination_extra)
    return person.start_collection("instrument"), person.start_collection("facility")


@pytest.mark.parametrize("destination_extra", ["", HTTP_ONLY], ids=["same-host", "http-pull"])
def test_a_recursive_transfer_copies_the_tree_and_reports_counts(
    make_person: Callable[..., Person], roots: tuple[Path, Path], destination_extra: str
) -> None:
    alice = make_person("alice")
    _two_collections(alice, roots, destination_extra)
    transfer_scan(alice, roots)

    again = alice.client.submit_transfer(
        TransferCreate(
            source="instrument",
            destination="facility",
            items=[TransferItem(source_path="scan 001", destination_path="copy", recursive=True)],
            options=TransferOptions(sync_level="checksum"),
        )
    )
    final = alice.client.wait_transfer(again.id, timeout=60)
    assert final.state == "SUCCEEDED"
    assert final.counts.files == 0
    assert final.counts.files_skipped == 43  # nothing changed: everything skipped by checksum
    events = alice.cli("transfer", "events", again.id)
    assert "SUCCEEDED" in events.stdout


def test_bad_transfers_are_refused_or_fail_with_the_reason(
    make_person: Callable[..., Person], roots: tuple[Path, Path]
) -> None:
    alice, bob = make_person("alice"), make_person("bob")
    source_id, _ = _two_collections(alice, roots)
    client = alice.client

    def submit(src: str, dst: str, recursive: bool = False, **options: object) -> str:
        body = TransferCreate(
            source="instrument" if ":" not in src else src.split(":")[0],
            destination="facility" if ":" not in dst else dst.split(":")[0],
            items=[
                TransferItem(
                    source_path=src.split(":")[-1], destination_path=dst.split(":")[-1], recursive=recursive
                )
            ],
            options=TransferOptions(**options),  # type: ignore[arg-type]
        )
        return client.submit_transfer(body).id

    with pytest.raises(TransferOntoItself):
        submit("instrument:scan 001", "instrument:scan 001", recursive=True)
    with pytest.raises(DestinationInsideSource):
        submit("instrument:scan 001", "instrument:scan 001/inner", recursive=True)
    for bad in ("../etc/passwd", "scan 001/../../x"):
        with pytest.raises(PathOutsideCollection):
            submit(bad, "x")
        with pytest.raises(PathOutsideCollection):
            submit("scan 001/empty.dat", bad)
    with pytest.raises(NotFound):
        bob.client.submit_transfer(
            TransferCreate(
                source=source_id,
                destination=source_id,
                items=[TransferItem(source_path="a", destination_path="b")],
            )
        )
    with pytest.raises(InvalidInput):
        client.submit_transfer(
            TransferCreate(
                source="instrument",
                destination="facility",
                items=[TransferItem(source_path="a", destination_path="b")],
                deadline=datetime.now(UTC) - timedelta(minutes=1),
            )
        )

    missing = client.wait_transfer(submit("no/such/file.h5", "x.h5"), timeout=60)
    assert missing.state == "FAILED"
    assert missing.error is not None
    assert missing.error.code == "SOURCE_NOT_FOUND"
    skipped = client.wait_transfer(submit("no/such/file.h5", "x.h5", skip_source_errors=True), timeout=60)
    assert skipped.state == "SUCCEEDED"

    _, destination = roots
    (destination / "locked").mkdir()
    (destination / "locked" / "x.h5").mkdir()  # a directory where the file should go
    blocked = client.wait_transfer(submit("scan 001/empty.dat", "locked/x.h5"), timeout=60)
    assert blocked.state == "FAILED"
    assert blocked.error is not None
    assert "locked/x.h5" in blocked.error.message or blocked.counts.faults == 1


def test_a_transfer_waits_inactive_for_a_stopped_agent_and_submission_ids_are_idempotent(
    make_person: Callable[..., Person], roots: tuple[Path, Path]
) -> None:
    alice = make_person("alice")
    _two_collections(alice, roots)
    assert alice.cli("collection", "stop", "facility").code == 0
    alice.started_collections.remove("facility")
    body = TransferCreate(
        source="instrument",
        destination="facility",
        items=[TransferItem(source_path="scan 001/métadonnées.json", destination_path="meta.json")],
        submission_id="run-42",
    )
    first = alice.client.submit_transfer(body)
    assert first.state == "INACTIVE"
    assert alice.client.submit_transfer(body).id == first.id  # the same submission: the same task
    time.sleep(1.0)
    assert alice.client.get_transfer(first.id).state == "INACTIVE"
    alice.start_collection("facility")
    final = alice.client.wait_transfer(first.id, timeout=60)
    assert final.state == "SUCCEEDED"
    _, destination = roots
    assert (destination / "meta.json").read_text() == '{"energy": 8.0}'
    assert len(alice.client.list_transfers()) == 1


def test_rm_deletes_recursively_as_a_task(
    make_person: Callable[..., Person], roots: tuple[Path, Path]
) -> None:
    alice = make_person("alice")
    _two_collections(alice, roots)
    source, _ = roots
    out = alice.cli("rm", "-r", "--wait", "instrument:scan 001/frames")
    assert out.code == 0, out.stderr + out.stdout
    assert "41 path(s) deleted" in out.stdout
    assert not (source / "scan 001" / "frames").exists()
    missing = alice.cli("rm", "--wait", "instrument:scan 001/nothing-here")
    assert missing.code == 1
    assert "FAILED" in missing.stdout
    assert alice.cli("rm", "-f", "--wait", "instrument:scan 001/nothing-here").code == 0
    assert alice.cli("rm", "instrument:").code == 1  # never the root
