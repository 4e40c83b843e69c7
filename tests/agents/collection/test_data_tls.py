"""TLS on the data plane: the collection's ``tls`` section, the data server serving https, and the data
plane's client verifying it (trusted CA, untrusted CA, wrong name, http and https mixed up).

Certificates come from a throwaway CA made with the ``openssl`` command (:mod:`tls_helpers`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from beamlink.agents.collection.config import CollectionConfig, parse_config
from beamlink.agents.collection.dataserver import DataServer
from beamlink.agents.collection.http11 import DataServerTlsError, DataServerUnreachable
from beamlink.agents.collection.paths import CollectionRoot
from beamlink.agents.collection.pull import (
    EventCode,
    TransferEvent,
    TransferSpec,
    TransferStatus,
    run_transfer,
)
from beamlink.agents.collection.sources import RetryPolicy, SourceClient, is_transient
from beamlink.config import load_settings
from beamlink.errors import CollectionOffline, ConfigError, ServiceUnavailable
from beamlink.protocol.data_tokens import sign
from beamlink.service.transfer import streaming
from beamlink.service.transfer.streaming import FileSource, stream_file
from tls_helpers import Issued, TestCA, make_ca

KEY = b"t" * 32
BIG = os.urandom((3 << 20) + 4321)
SMALL = {f"small/s{i:02d}.txt": os.urandom(100 + i) for i in range(12)}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def issued(ca: TestCA) -> Issued:
    return ca.issue("data-server")  # for 127.0.0.1 and localhost


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "small").mkdir(parents=True)
    (root / "big.bin").write_bytes(BIG)
    for name, data in SMALL.items():
        (root / name).write_bytes(data)
    return root


def config(root: Path, tls: str = "", extra: str = "") -> CollectionConfig:
    return parse_config(f"root_path: {root}\n{extra}" + (f"tls:\n{tls}" if tls else ""), source="coll.yaml")


def server_tls(root: Path, issued: Issued) -> ssl.SSLContext | None:
    """The server context exactly as an agent builds it from its config.yaml."""
    return config(root, f"  cert_file: {issued.cert}\n  key_file: {issued.key}\n").tls.server_context()


@contextmanager
def serving(root: Path, tls: ssl.SSLContext | None) -> Iterator[int]:
    """A data server on a free port, in an event loop of its own thread; yields the port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = DataServer(CollectionRoot(root), collection_id="c1", key=KEY, tls=tls)
    port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def https_port(root: Path, issued: Issued) -> Iterator[int]:
    with serving(root, server_tls(root, issued)) as port:
        yield port


def token() -> str:
    return sign(KEY, collection_id="c1", path="", operations=("read", "list", "checksum"), ttl_seconds=60)


def trusting(ca: TestCA, url: str, **kw: object) -> SourceClient:
    """A client whose context comes from a destination's ``tls.ca_file`` naming the test CA."""
    context = config(Path(ca.directory), f"  ca_file: {ca.cert}\n").tls.client_context()
    return SourceClient(url, token(), tls=context, **kw)  # type: ignore[arg-type]


# -- serving and reading over https ---------------------------------------------------------------------


def test_a_client_trusting_the_ca_reads_ranges_and_batches_over_tls(https_port: int, ca: TestCA) -> None:
    client = trusting(ca, f"https://127.0.0.1:{https_port}")
    try:
        got = bytearray()
        reply = client.read_range(
            "big.bin", 0, len(BIG), lambda b, n: got.extend(b[:n]), buffer=bytearray(1 << 20)
        )
        assert bytes(got) == BIG
        assert reply.size == len(BIG)
        middle = bytearray()
        client.read_range(
            "big.bin", 1000, 70_000, lambda b, n: middle.extend(b[:n]), buffer=bytearray(64 << 10)
        )
        assert bytes(middle) == BIG[1000:71_000]
        batch = {f.path: f.data for f in client.read_batch(sorted(SMALL), digest="xxh3")}
        assert batch == SMALL
        assert client.stat("big.bin").size == len(BIG)
        walked = {info.path for info in client.walk("small", recursive=True)}
        assert walked == {"", *(name.removeprefix("small/") for name in SMALL)}  # "": the item itself
    finally:
        client.close()
    # The name on the certificate is checked too: localhost is on it as well as 127.0.0.1.
    by_name = trusting(ca, f"https://localhost:{https_port}")
    assert by_name.stat("big.bin").size == len(BIG)
    by_name.close()


def test_ranges_over_tls_are_encrypted_here_not_sent_by_sendfile(
    https_port: int, ca: TestCA, sendfile_sent: list[int]
) -> None:
    client = trusting(ca, f"https://127.0.0.1:{https_port}")
    try:
        got = bytearray()
        client.read_range(
            "big.bin", 5, len(BIG) - 5, lambda b, n: got.extend(b[:n]), buffer=bytearray(1 << 16)
        )
    finally:
        client.close()
    assert bytes(got) == BIG[5:]
    assert sendfile_sent == []


def test_the_data_server_speaks_tls_1_2_or_later_only(https_port: int, root: Path, issued: Issued) -> None:
    context = server_tls(root, issued)
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    probe = ssl.create_default_context()
    probe.check_hostname, probe.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", https_port), timeout=5) as sock,
        probe.wrap_socket(sock) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_a_pull_over_tls_copies_a_tree(https_port: int, ca: TestCA, root: Path, tmp_path: Path) -> None:
    destination = tmp_path / "dst"
    destination.mkdir()
    client = trusting(ca, f"https://127.0.0.1:{https_port}")
    spec = TransferSpec(items=(("", "copy", True),), chunk_size=1 << 20, concurrency=4, verify_checksum=True)

    summary = asyncio.run(run_transfer(spec, local=CollectionRoot(destination), source=client))
    client.close()
    assert summary.status is TransferStatus.SUCCEEDED, summary
    assert (destination / "copy" / "big.bin").read_bytes() == BIG  # by ranges
    for name, data in SMALL.items():
        assert (destination / "copy" / name).read_bytes() == data  # in batches


# -- what goes wrong, said clearly ----------------------------------------------------------------------


def test_an_untrusted_certificate_fails_with_the_fix_and_is_not_retried(https_port: int) -> None:
    url = f"https://127.0.0.1:{https_port}"
    client = SourceClient(url, token())  # the system's CAs: the test CA is not among them
    with pytest.raises(DataServerTlsError) as caught:
        client.stat("big.bin")
    error = caught.value
    assert isinstance(error, DataServerUnreachable)  # still what callers catch for an unreachable source
    assert error.code == "DATA_SERVER_TLS_ERROR"
    assert url in error.message
    assert "tls.ca_file" in error.message
    assert "unable to get local issuer certificate" in error.message
    assert not is_transient(error)
    assert is_transient(DataServerUnreachable("reset"))  # ordinary connection trouble still is


def test_a_transfer_from_an_untrusted_server_fails_at_once(https_port: int, tmp_path: Path) -> None:
    destination = tmp_path / "dst"
    destination.mkdir()
    # Retries would take seconds: 5 of them, at least 1 s apart.
    client = SourceClient(
        f"https://127.0.0.1:{https_port}", token(), retry=RetryPolicy(attempts=6, initial=2.0, maximum=2.0)
    )
    events: list[TransferEvent] = []
    spec = TransferSpec(items=(("", "copy", True),), chunk_size=1 << 20, concurrency=2)
    started = time.monotonic()
    summary = asyncio.run(
        run_transfer(spec, local=CollectionRoot(destination), source=client, on_event=events.append)
    )
    client.close()
    assert summary.status is TransferStatus.FAILED
    assert [e for e in events if e.code is EventCode.RETRY] == []
    assert [f.code for f in summary.faults] == ["DATA_SERVER_TLS_ERROR"]
    assert summary.reason is not None
    assert "tls.ca_file" in summary.reason
    assert time.monotonic() - started < 1.5


def test_a_certificate_for_another_name_is_refused_naming_the_host(
    root: Path, ca: TestCA, tmp_path: Path
) -> None:
    elsewhere = ca.issue("elsewhere", ("DNS:elsewhere.example",))
    with serving(root, server_tls(root, elsewhere)) as port:
        client = trusting(ca, f"https://127.0.0.1:{port}")
        with pytest.raises(DataServerTlsError) as caught:
            client.stat("big.bin")
    assert "not issued for '127.0.0.1'" in caught.value.message
    assert "subjectAltName" in caught.value.message
    assert not is_transient(caught.value)


def test_plain_http_to_the_tls_port_fails_clearly(https_port: int) -> None:
    client = SourceClient(f"http://127.0.0.1:{https_port}", token(), timeout=5)
    with pytest.raises(DataServerTlsError) as caught:
        client.stat("big.bin")
    assert f"use https://127.0.0.1:{https_port}" in caught.value.message
    assert not is_transient(caught.value)


def test_https_to_a_plain_data_server_fails_clearly(root: Path, ca: TestCA) -> None:
    with serving(root, None) as port:
        client = trusting(ca, f"https://127.0.0.1:{port}", timeout=5)
        with pytest.raises(DataServerTlsError) as caught:
            client.stat("big.bin")
        assert "does not speak TLS" in caught.value.message
        # and the same server over plain http is fine (nothing else is the matter)
        assert SourceClient(f"http://127.0.0.1:{port}", token()).stat("big.bin").size == len(BIG)


def test_a_data_server_that_went_away_is_still_transient(ca: TestCA) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]  # nothing listens there once closed
    client = trusting(ca, f"https://127.0.0.1:{port}", timeout=2)
    with pytest.raises(DataServerUnreachable) as caught:
        client.stat("x")
    assert not isinstance(caught.value, DataServerTlsError)
    assert is_transient(caught.value)


# -- the tls section of config.yaml ---------------------------------------------------------------------


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="coll.yaml")
    return caught.value.message


def test_tls_makes_the_advertised_url_https(root: Path, issued: Issued, ca: TestCA) -> None:
    on = config(
        root, f"  cert_file: {issued.cert}\n  key_file: {issued.key}\n", extra="listen: 127.0.0.1:0\n"
    )
    assert on.tls.serves_https
    assert on.advertised(8720) == "https://127.0.0.1:8720"
    assert config(root).advertised(8720) == "http://127.0.0.1:8720"
    assert config(root).tls.server_context() is None
    pulling_only = config(root, f"  ca_file: {ca.cert}\n")
    assert not pulling_only.tls.serves_https  # a CA alone is for pulling, not serving
    assert pulling_only.advertised(1) == "http://127.0.0.1:1"
    assert config(root, extra="tls:\n").tls.serves_https is False  # an empty section is no TLS
    explicit = config(
        root,
        f"  cert_file: {issued.cert}\n  key_file: {issued.key}\n",
        extra="advertise_url: https://dtn7.example.org:8720\n",
    )
    assert explicit.advertised(1) == "https://dtn7.example.org:8720"


def test_a_certificate_without_its_key_is_refused_naming_both_keys(root: Path, issued: Issued) -> None:
    message = error_of(f"root_path: {root}\ntls:\n  cert_file: {issued.cert}\n")
    assert message.startswith("coll.yaml: tls.key_file at line 3")
    assert "tls.cert_file is set but tls.key_file is not" in message
    message = error_of(f"root_path: {root}\ntls:\n  key_file: {issued.key}\n")
    assert "tls.key_file is set but tls.cert_file is not" in message


def test_a_missing_or_relative_tls_file_names_the_key_and_line(root: Path, issued: Issued) -> None:
    missing = root / "nope.pem"
    message = error_of(f"root_path: {root}\ntls:\n  cert_file: {missing}\n  key_file: {issued.key}\n")
    assert message == (
        f"coll.yaml: tls.cert_file at line 3: {missing} does not exist; correct the path or create the file"
    )
    message = error_of(f"root_path: {root}\ntls:\n  ca_file: site-ca.pem\n")
    assert message.startswith("coll.yaml: tls.ca_file at line 3: use an absolute path")
    message = error_of(f"root_path: {root}\ntls:\n  ca_file: {root}\n")
    assert "is not a file" in message


def test_an_unreadable_tls_file_names_the_key(
    root: Path, issued: Issued, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked.key"
    locked.write_bytes(issued.key.read_bytes())
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads any file: let the check answer as it would for the agent's user
        real = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real(path, mode))
    message = error_of(f"root_path: {root}\ntls:\n  cert_file: {issued.cert}\n  key_file: {locked}\n")
    assert message.startswith("coll.yaml: tls.key_file at line 4: ")
    assert "is not readable by this user" in message


def test_http_advertise_url_with_tls_is_refused_naming_both_keys(root: Path, issued: Issued) -> None:
    message = error_of(
        f"root_path: {root}\nadvertise_url: http://dtn7.example.org:8720\n"
        f"tls:\n  cert_file: {issued.cert}\n  key_file: {issued.key}\n"
    )
    assert message.startswith("coll.yaml: advertise_url at line 2: ")
    assert "tls.cert_file" in message
    assert "write https:// in advertise_url" in message


def test_a_key_that_does_not_match_or_is_encrypted_is_refused(root: Path, ca: TestCA, issued: Issued) -> None:
    other = ca.issue("other")
    message = error_of(f"root_path: {root}\ntls:\n  cert_file: {issued.cert}\n  key_file: {other.key}\n")
    assert message.startswith("coll.yaml: tls.key_file at line 4: ")
    assert "is not the private key of the certificate" in message

    encrypted = ca.directory / "encrypted.key"
    subprocess.run(
        [
            "openssl",
            "pkey",
            "-in",
            str(issued.key),
            "-aes256",
            "-passout",
            "pass:secret",
            "-out",
            str(encrypted),
        ],
        check=True,
        capture_output=True,
    )
    message = error_of(f"root_path: {root}\ntls:\n  cert_file: {issued.cert}\n  key_file: {encrypted}\n")
    assert "protected by a passphrase" in message


def test_a_ca_file_that_is_not_pem_is_refused(root: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    message = error_of(f"root_path: {root}\ntls:\n  ca_file: {junk}\n")
    assert message.startswith("coll.yaml: tls.ca_file at line 3: ")
    assert "holds no usable CA certificate" in message


# -- the service streaming a file from an https data server (download route, portal) ---------------------


class _Online:
    """The one thing stream_file asks of the service's links: the collection's agent is connected."""

    def online(self, collection_id: str) -> bool:
        return True


def download(url: str, range_header: str | None = None) -> tuple[int, bytes]:
    async def main() -> tuple[int, bytes]:
        source = FileSource("c1", "beamline", url, KEY.hex())
        response = await stream_file(_Online(), source, "big.bin", range_header=range_header)  # type: ignore[arg-type]
        body = b"".join([bytes(piece) async for piece in response.body_iterator])  # type: ignore[arg-type]
        assert response.background is not None
        await response.background()
        return response.status_code, body

    return asyncio.run(main())


@pytest.fixture
def service_trust(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path | None], None]]:
    """Sets BEAMLINK_DATA_CA_FILE (or not) as the service would read it at startup."""

    def trust(ca_file: Path | None) -> None:
        streaming._data_tls.cache_clear()
        if ca_file is None:
            monkeypatch.delenv("BEAMLINK_DATA_CA_FILE", raising=False)
        else:
            monkeypatch.setenv("BEAMLINK_DATA_CA_FILE", str(ca_file))

    yield trust
    streaming._data_tls.cache_clear()


def test_the_service_streams_from_an_https_data_server_it_trusts(
    https_port: int, ca: TestCA, service_trust: Callable[[Path | None], None]
) -> None:
    service_trust(ca.cert)
    assert download(f"https://127.0.0.1:{https_port}") == (200, BIG)
    assert download(f"https://127.0.0.1:{https_port}", "bytes=10-19") == (206, BIG[10:20])


def test_the_service_names_the_setting_when_it_does_not_trust_the_data_server(
    https_port: int, service_trust: Callable[[Path | None], None]
) -> None:
    service_trust(None)
    with pytest.raises(ServiceUnavailable) as caught:
        download(f"https://127.0.0.1:{https_port}")
    assert not isinstance(caught.value, CollectionOffline)  # the agent is there: trust is the problem
    assert f"https://127.0.0.1:{https_port}" in caught.value.message
    assert "BEAMLINK_DATA_CA_FILE" in caught.value.message
    assert "unable to get local issuer certificate" in caught.value.message


def test_the_service_setting_must_name_a_pem_ca_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("nothing here\n")
    for bad, words in ((tmp_path / "missing.pem", "is not a file"), (junk, "holds no usable CA")):
        with pytest.raises(ConfigError) as caught:
            load_settings(data_ca_file=bad)
        assert "data_ca_file" in caught.value.message
        assert words in caught.value.message
