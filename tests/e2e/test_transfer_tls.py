"""TLS on the data plane end to end: a source collection agent serving https, a destination agent that
trusts its CA through ``tls.ca_file`` (and one that does not), and the service streaming a file from the
https data server with ``BEAMLINK_DATA_CA_FILE``.

The module has a service of its own (the session's has no CA to trust), started like the session's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from beamlink.service.launcher import ServiceProcess
from e2e_helpers import Person, scan_tree, transfer_scan
from tls_helpers import TestCA, make_ca

pytestmark = pytest.mark.slow

HTTP_ONLY = "same_host_copy: false\nchunk_size: 1 MiB\n"  # as in test_transfers: the bytes cross the socket


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, ca: TestCA) -> Iterator[ServiceProcess]:
    """The service, trusting the test CA for the data servers it streams files from."""
    home = tmp_path_factory.mktemp("service-tls")
    process = ServiceProcess(home, env={"BEAMLINK_DATA_CA_FILE": str(ca.cert)})
    process.start()
    yield process
    process.stop()


@pytest.fixture
def source_tls(ca: TestCA) -> str:
    """The source's config lines: https with a certificate for 127.0.0.1, where its data server listens."""
    issued = ca.issue("instrument")
    return f"tls:\n  cert_file: {issued.cert}\n  key_file: {issued.key}\n"


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    return scan_tree(tmp_path)


def _start(person: Person, roots: tuple[Path, Path], source_extra: str, destination_extra: str) -> str:
    source, destination = roots
    person.configure_collection("instrument", source, extra=source_extra)
    person.configure_collection("facility", destination, extra=destination_extra)
    source_id = person.start_collection("instrument")
    person.start_collection("facility")
    return source_id


def test_a_recursive_transfer_pulls_over_tls_from_a_trusted_source(
    make_person: Callable[..., Person], roots: tuple[Path, Path], ca: TestCA, source_tls: str
) -> None:
    alice = make_person("alice")
    source_id = _start(alice, roots, source_tls, HTTP_ONLY + f"tls:\n  ca_file: {ca.cert}\n")
    data_url = alice.client.get_collection(source_id).data_url
    assert data_url is not None
    assert data_url.startswith("https://127.0.0.1:")  # derived from tls, not configured
    transfer_scan(alice, roots)  # with HTTP_ONLY, the bytes it counts crossed the https data server


def test_a_destination_that_does_not_trust_the_source_fails_at_once_saying_why(
    make_person: Callable[..., Person], roots: tuple[Path, Path], source_tls: str
) -> None:
    alice = make_person("alice")
    _start(alice, roots, source_tls, HTTP_ONLY)  # no tls.ca_file: the system's CAs only
    failed = alice.cli("transfer", "instrument:scan 001", "facility:copy", "--recursive", "--wait")
    assert failed.code != 0
    (info,) = alice.client.list_transfers()
    assert info.state == "FAILED"
    assert info.error is not None
    assert info.error.code == "DATA_SERVER_TLS_ERROR"
    assert "tls.ca_file" in info.error.message
    assert info.counts.files_retried == 0
    assert "RETRY" not in alice.cli("transfer", "events", info.id).stdout  # a configuration: not retried
    assert not (roots[1] / "copy" / "big.bin").exists()


def test_the_service_streams_a_file_from_the_https_data_server(
    make_person: Callable[..., Person], roots: tuple[Path, Path], source_tls: str, tmp_path: Path
) -> None:
    alice = make_person("alice")
    source, _ = roots
    alice.configure_collection("instrument", source, extra=source_tls)
    collection_id = alice.start_collection("instrument")
    payload = os.urandom(300_000)
    (source / "scan 001" / "image 1.png").write_bytes(payload)

    whole = tmp_path / "whole.png"  # the owner, through the SDK
    assert alice.client.download("instrument", "scan 001/image 1.png", whole) == len(payload)
    assert whole.read_bytes() == payload

    alice.client.update_collection(collection_id, public_read=True)
    url = f"{alice.url}/v1/collections/{collection_id}/files/scan%20001/image%201.png"
    anonymous = httpx.get(url)  # anyone, on a public collection
    assert anonymous.status_code == 200
    assert anonymous.content == payload
    ranged = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206
    assert ranged.content == payload[10:20]
