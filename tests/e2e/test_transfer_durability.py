"""Transfers lose nothing: an agent killed in the middle of a large file resumes from its last verified
chunk (checked by content hash), and a transfer that finishes while the service is down is reported
once, after the service restarts."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from beamlink.protocol.transfers import TransferCreate, TransferItem
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from e2e_helpers import Person, big_file, sha256

pytestmark = pytest.mark.slow

SIZE = 192 * 1024 * 1024
SLOW_PULL = "same_host_copy: false\nchunk_size: 1 MiB\nconcurrency: 1\n"


def pid_of(person: Person, name: str) -> int:
    return int((person.home / "collections" / name / "daemon.pid").read_text().split()[0])


def two_collections(person: Person, tmp_path: Path, size: int = SIZE) -> tuple[Path, str]:
    """An instrument collection holding big.bin and a facility collection that pulls over HTTP."""
    source, destination = tmp_path / "instrument", tmp_path / "facility"
    expected = big_file(source / "big.bin", size)
    destination.mkdir()
    person.configure_collection("instrument", source)
    person.configure_collection("facility", destination, extra=SLOW_PULL)
    person.start_collection("instrument")
    person.start_collection("facility")
    return destination, expected


def copy_big_file(client: Client, name: str) -> str:
    task = client.submit_transfer(
        TransferCreate(
            source="instrument",
            destination="facility",
            items=[TransferItem(source_path="big.bin", destination_path=name)],
        )
    )
    return task.id


def wait_for_chunks(journal: Path, count: int) -> None:
    """Until the partial file's journal has ``count`` lines (its header, then one per verified chunk)."""
    deadline = time.monotonic() + 60
    while not (journal.exists() and journal.read_text().count("\n") >= count):
        assert time.monotonic() < deadline, "the transfer never started writing chunks"
        time.sleep(0.005)


def test_an_agent_killed_mid_file_resumes_from_its_verified_chunks(
    make_person: Callable[..., Person], tmp_path: Path
) -> None:
    alice = make_person("alice")
    destination, expected = two_collections(alice, tmp_path)
    task_id = copy_big_file(alice.client, "big.bin")
    journal = destination / ".big.bin.beamlink-partial.jsonl"
    wait_for_chunks(journal, 8)
    os.kill(pid_of(alice, "facility"), signal.SIGKILL)
    assert not (destination / "big.bin").exists()
    verified = journal.read_text().count("\n") - 1  # the header line, then one line per verified chunk

    alice.start_collection("facility")  # the next start cleans the stale pid file and resumes the job
    final = alice.client.wait_transfer(task_id, timeout=120)
    assert final.state == "SUCCEEDED", final.error
    assert sha256(destination / "big.bin") == expected
    assert final.counts.bytes_transferred <= SIZE - verified * (1 << 20)  # the resumed run skipped them
    assert not journal.exists()


def test_a_transfer_finished_while_the_service_was_down_is_reported_once(tmp_path: Path) -> None:
    home = tmp_path / "site"
    service = ServiceProcess(home).start()
    client = Client(service.url, home=home)
    person = Person(client.whoami().username, "", home, service.url, client)
    try:
        destination, expected = two_collections(person, tmp_path)
        task_id = copy_big_file(client, "copy.bin")
        wait_for_chunks(destination / ".copy.bin.beamlink-partial.jsonl", 1)
        service.stop()  # the agents carry on; the outcome waits on disk until the service acknowledges it
        deadline = time.monotonic() + 120
        while not (destination / "copy.bin").exists():
            assert time.monotonic() < deadline, "the transfer did not finish while the service was down"
            time.sleep(0.1)
        assert list((home / "collections" / "facility" / "transfers").glob("*.done.json"))
        service.start()
        final = client.wait_transfer(task_id, timeout=60)
        assert final.state == "SUCCEEDED"
        assert sha256(destination / "copy.bin") == expected
        codes = [e.code for e in client.transfer_events(task_id)]
        assert codes.count("SUCCEEDED") == 1
        deadline = time.monotonic() + 10
        while list((home / "collections" / "facility" / "transfers").glob("*.json")):
            assert time.monotonic() < deadline, "the agent never forgot the acknowledged outcome"
            time.sleep(0.1)
    finally:
        for name in ("instrument", "facility"):
            person.cli("collection", "stop", name)
        client.close()
        service.stop()


def test_cancel_and_deadline_fail_the_task_with_their_codes(
    make_person: Callable[..., Person], tmp_path: Path
) -> None:
    alice = make_person("alice")
    # Long enough that the cancel reaches it while it runs.
    destination, _ = two_collections(alice, tmp_path, 4 * SIZE)
    running = copy_big_file(alice.client, "big.bin")
    wait_for_chunks(destination / ".big.bin.beamlink-partial.jsonl", 1)
    cancelled = alice.cli("transfer", "cancel", running)
    assert cancelled.code == 0, cancelled.stderr
    info = alice.client.get_transfer(running)
    assert info.state == "FAILED"
    assert info.error is not None
    assert info.error.code == "CANCELED"
    time.sleep(1.0)
    assert not (destination / "big.bin").exists()  # stopped: the partial file stays for a resume

    assert alice.cli("collection", "stop", "facility").code == 0
    alice.started_collections.remove("facility")
    late = alice.client.submit_transfer(
        TransferCreate(
            source="instrument",
            destination="facility",
            items=[TransferItem(source_path="big.bin", destination_path="late.bin")],
            deadline=datetime.now(UTC) + timedelta(seconds=2),
        )
    )
    assert late.state == "INACTIVE"
    final = alice.client.wait_transfer(late.id, timeout=30)
    assert final.state == "FAILED"
    assert final.error is not None
    assert final.error.code == "DEADLINE_EXCEEDED"
    events = alice.cli("transfer", "events", late.id)
    assert "DEADLINE_EXCEEDED" in events.stdout
