"""A transfer outlives its data token: with tokens that live a few seconds, a pull that takes several
lifetimes succeeds, because the destination agent asks the service for fresh tokens while it runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from beamlink.protocol.transfers import TransferCreate, TransferItem
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from e2e_helpers import Person, big_file, sha256

pytestmark = pytest.mark.slow

TTL = 2
SIZE = 512 * 1024 * 1024
# Small chunks, one at a time: many requests, each checked against the token, over several lifetimes.
SLOW_PULL = "same_host_copy: false\nchunk_size: 64 KiB\nconcurrency: 1\n"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Person]:
    """A service of its own, whose transfer tokens live TTL seconds, and its admin."""
    home = tmp_path / "site"
    service = ServiceProcess(home, env={"BEAMLINK_TRANSFER_TOKEN_TTL_SECONDS": str(TTL)}).start()
    client = Client(service.url, home=home)
    person = Person(client.whoami().username, "", home, service.url, client)
    try:
        yield person
    finally:
        for name in person.started_collections:
            person.cli("collection", "stop", name)
        client.close()
        service.stop()


def test_a_transfer_longer_than_its_token_gets_fresh_ones_and_succeeds(site: Person, tmp_path: Path) -> None:
    source, destination = tmp_path / "instrument", tmp_path / "facility"
    source.mkdir()
    destination.mkdir()
    expected = big_file(source / "big.bin", SIZE)
    site.configure_collection("instrument", source)
    site.configure_collection("facility", destination, extra=SLOW_PULL)
    site.start_collection("instrument")
    site.start_collection("facility")

    started = time.monotonic()
    task = site.client.submit_transfer(
        TransferCreate(
            source="instrument",
            destination="facility",
            items=[TransferItem(source_path="big.bin", destination_path="big.bin")],
        )
    )
    final = site.client.wait_transfer(task.id, timeout=120)
    took = time.monotonic() - started

    assert final.state == "SUCCEEDED", final.error
    assert sha256(destination / "big.bin") == expected
    assert final.counts.faults == 0
    # Otherwise the first token would have sufficed and this test would prove nothing.
    assert took > 1.5 * TTL, f"the transfer took only {took:.1f} s; make it larger"
    renewals = [e for e in site.client.transfer_events(task.id) if e.code == "TOKEN_RENEWED"]
    # A token is renewed when a third of its life is left, so more often than once per TTL.
    assert len(renewals) >= int(took / TTL), (took, [e.description for e in renewals])
    log = (site.home / "collections" / "facility" / "logs" / "collection.log").read_text()
    # The last answer may arrive after the transfer ended, with nobody left to take it.
    assert log.count("fresh data token") >= len(renewals) - 1
