"""The data plane's wire formats: walk lines and batch groups, as the server writes them and the client
reads them, and what the client does with a data server that sends something else."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from beamlink.agents.collection.datawire import (
    PROTOCOL_VERSION,
    check_protocol,
    decode_batch_group,
    decode_infos,
    encode_batch_error,
    encode_batch_group,
    encode_batch_header,
    encode_info,
)
from beamlink.agents.collection.http11 import DataServerUnreachable
from beamlink.agents.collection.paths import CollectionRoot, to_wire
from beamlink.agents.collection.plan import FileInfo
from beamlink.agents.collection.pull import TransferSpec, TransferStatus, run_transfer
from beamlink.agents.collection.sources import SourceClient, is_transient
from beamlink.errors import DataProtocolMismatch, InvalidInput, SourceNotFound

ODD = os.fsdecode(b'caf\xe9 \xff \\ "quoted" \xc3\xa9.dat')  # not UTF-8, a backslash, quotes, é


def test_walk_lines_round_trip_any_name_and_mtime() -> None:
    infos = [
        FileInfo("", "dir", 0, 1_700_000_000.0),
        FileInfo(ODD, "file", 12, 1_700_000_000.123456789),
        FileInfo("d/ü", "link", 0, 0.1 + 0.2),
    ]
    block = b"".join(encode_info(info) for info in infos)
    assert block.count(b"\n") == 3
    assert list(decode_infos(block)) == infos  # floats exact, names as they were
    assert list(decode_infos(block.rstrip(b"\n"))) == infos  # the body's last line may end without one


def test_a_walk_error_line_raises_after_the_entries_before_it() -> None:
    error = SourceNotFound("'x' does not exist", details={"path": "x"})
    block = encode_info(FileInfo("", "dir")) + json.dumps({"error": error.to_dict()}).encode() + b"\n"
    entries = decode_infos(block)
    assert next(entries) == FileInfo("", "dir")
    with pytest.raises(SourceNotFound, match="does not exist"):
        next(entries)


@pytest.mark.parametrize(
    "block", [b"{not json\n", b'{"path": "a"}\n', b'{"path": "a", "type": "file", "size": "x", "mtime": 1}\n']
)
def test_a_malformed_walk_line_is_invalid_input(block: bytes) -> None:
    with pytest.raises(InvalidInput, match="malformed walk line"):
        list(decode_infos(block))


def test_batch_groups_round_trip() -> None:
    wire = to_wire(ODD)
    error = SourceNotFound("gone", details={"path": "gone"})
    headers = [
        encode_batch_header(wire, 3, 1_700_000_000.5, "ab12"),
        encode_batch_error("gone", error),
        encode_batch_header("empty", 0, 2.0, None),
    ]
    group = encode_batch_group(headers, [b"abc", b""])
    line, _, data = group.partition(b"\n")
    decoded = decode_batch_group(line + b"\n")
    assert decoded[0] == {"path": wire, "size": 3, "mtime": 1_700_000_000.5, "digest": "ab12"}
    assert decoded[1]["error"]["code"] == "SOURCE_NOT_FOUND"
    assert decoded[2] == {"path": "empty", "size": 0, "mtime": 2.0, "digest": None}
    assert data == b"abc"


@pytest.mark.parametrize("line", [b"{}\n", b"[1, 2]\n", b"[{\n", b"\xff\n"])
def test_a_malformed_batch_group_line_is_invalid_input(line: bytes) -> None:
    with pytest.raises(InvalidInput, match="malformed batch group header"):
        decode_batch_group(line)


# -- a data server that misbehaves -----------------------------------------------------------------------


def _serve_once(body: bytes, version: bytes | None = b"2") -> Iterator[str]:
    """A server on a free port that answers one request with a chunked 200 carrying ``body``, announcing
    data protocol ``version`` (none when None)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head, _, rest = request.partition(b"\r\n\r\n")
            lengths = [
                h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")
            ]
            length = int(lengths[0]) if lengths else 0
            while len(rest) < length:
                rest += conn.recv(65536)
            chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b""
            announce = b"" if version is None else b"X-Beamlink-Data-Protocol: " + version + b"\r\n"
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + announce + b"\r\n"
            conn.sendall(head + chunk + b"0\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(timeout=5)


HEADER = encode_batch_header("a", 3, 1.0, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "broke off"),  # no group at all
        (encode_batch_group([HEADER], [b"ab"]), "broke off"),  # a file's bytes cut short
        (encode_batch_group([HEADER, HEADER, HEADER], [b"abc"] * 3), "does not match the request"),
        (b"[]\n", "does not match the request"),
        (b'[{"path": "a", "size": "many"}]\n', "malformed batch header"),
        (b'[{"path": "a", "size": -3, "mtime": 1}]\n', "malformed batch header"),
        (b'[{"path": "a", "size": 3}]\nabc', "malformed batch header"),  # no mtime
        (b'[{"path": "bad\\\\q", "size": 0, "mtime": 1}]\n', "malformed batch header"),  # a stray backslash
        (b'[{"path": "a", "size": 99999999999, "mtime": 1}]\n', "larger than a batch may be"),
        (encode_batch_group([HEADER, HEADER], [b"abc", b"abc"]) + b"extra", "bytes after its files"),
    ],
    ids=[
        "empty",
        "short",
        "too many",
        "no headers",
        "bad size",
        "negative size",
        "no mtime",
        "bad name",
        "oversized",
        "trailing bytes",
    ],
)
def test_the_client_refuses_a_batch_response_that_breaks_the_format(body: bytes, message: str) -> None:
    for url in _serve_once(body):
        client = SourceClient(url, "token")
        try:
            with pytest.raises(DataServerUnreachable, match=message):
                list(client.read_batch(["a", "a"]))
        finally:
            client.close()


@pytest.mark.parametrize(
    ("version", "named"),
    [
        (None, "data protocol 1 (it announces no version)"),
        (b"3", "data protocol '3'"),
        (b"two", "data protocol 'two'"),
    ],
)
def test_the_client_refuses_a_data_server_of_another_protocol_version(
    version: bytes | None, named: str
) -> None:
    for url in _serve_once(encode_batch_group([HEADER], [b"abc"]), version):
        client = SourceClient(url, "token")
        try:
            with pytest.raises(DataProtocolMismatch) as caught:
                list(client.read_batch(["a"]))
        finally:
            client.close()
        message = caught.value.message
        assert f"the data server at {url} speaks {named} and this agent speaks {PROTOCOL_VERSION}" in message
        assert "install the same version on both hosts" in message
        assert not is_transient(caught.value)  # a transfer fails at once with this, it does not retry


def test_the_protocol_check_accepts_only_this_version() -> None:
    check_protocol(str(PROTOCOL_VERSION), server=False, where="x")
    check_protocol(f" {PROTOCOL_VERSION} ", server=True, where="")
    with pytest.raises(
        DataProtocolMismatch, match="the pulling agent speaks data protocol '1' and this data server"
    ):
        check_protocol("1", server=True, where="")


def test_a_transfer_from_a_data_server_of_another_version_fails_at_once(tmp_path: Path) -> None:
    for url in _serve_once(b"", version=b"1"):
        client = SourceClient(url, "token")
        spec = TransferSpec(items=[("data", "data", True)])
        started = time.monotonic()
        try:
            summary = asyncio.run(run_transfer(spec, local=CollectionRoot(tmp_path), source=client))
        finally:
            client.close()
        assert summary.status is TransferStatus.FAILED
        assert "speaks data protocol '1'" in (summary.reason or "")
        assert time.monotonic() - started < 5  # not retried with backoff
        assert list(tmp_path.iterdir()) == []
