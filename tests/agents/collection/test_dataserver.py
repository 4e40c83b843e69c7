"""The data server on a free port: tokens, ranges, listings, walks, checksums, batches, confinement.

Requests go through the data plane's own client (:mod:`beamlink.agents.collection.http11`), which sends
the request target byte for byte: traversal attempts reach the server exactly as written.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from beamlink.agents.collection.checksums import hash_bytes, hash_file
from beamlink.agents.collection.dataserver import DataServer
from beamlink.agents.collection.datawire import PROTOCOL_VERSION, url_path
from beamlink.agents.collection.fsops import walk
from beamlink.agents.collection.http11 import ConnectionPool, DataServerUnreachable
from beamlink.agents.collection.paths import CollectionRoot
from beamlink.agents.collection.sources import SourceClient
from beamlink.errors import (
    InvalidInput,
    PathOutsideCollection,
    PermissionDenied,
    SourceChanged,
    SourceNotFound,
    StartupError,
    TokenExpired,
)
from beamlink.protocol.data_tokens import sign
from helpers import SendfileLog

KEY = b"k" * 32
DATA = os.urandom(300_000)
ODD = os.fsdecode(b"caf\xe9 \xff.dat")  # not UTF-8: a surrogateescape name
ALL = ("read", "list", "checksum")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Served:
    url: str
    root: Path
    pool: ConnectionPool

    def token(self, path: str = "", operations: tuple[str, ...] = ALL, **kw: Any) -> str:
        options: dict[str, Any] = {"collection_id": "c1", "ttl_seconds": 60, **kw}
        return sign(KEY, path=path, operations=operations, **options)

    def get(self, target: str, *, token: str | None = None, method: str = "GET", **headers: str) -> Reply:
        sent = {name.replace("_", "-"): value for name, value in headers.items()}
        if token != "":
            sent["Authorization"] = f"Bearer {token or self.token()}"
        with self.pool.request(method, target, headers=sent) as response:
            return Reply(response.status, response.headers, response.read())

    def client(self, token: str | None = None) -> SourceClient:
        return SourceClient(self.url, token or self.token())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "root"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "data.bin").write_bytes(DATA)
    (root / "empty").write_bytes(b"")
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        (root / "dir" / name).write_text(name)
    with open(os.path.join(os.fsencode(root), os.fsencode(ODD)), "wb") as stream:
        stream.write(b"odd name")
    (tmp_path / "secret").write_text("outside the collection")
    (root / "escape").symlink_to(tmp_path)
    (root / "inside").symlink_to(root / "data.bin")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = DataServer(CollectionRoot(root), collection_id="c1", key=KEY, port=0)
    port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    pool = ConnectionPool(f"http://127.0.0.1:{port}", timeout=10)
    try:
        yield Served(f"http://127.0.0.1:{port}", root, pool)
    finally:
        pool.close()
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


# -- files and ranges -----------------------------------------------------------------------------------


def test_a_whole_file_comes_with_its_tag_and_mtime(served: Served) -> None:
    reply = served.get("/v1/files/data.bin")
    assert reply.status == 200
    assert reply.body == DATA
    stat = (served.root / "data.bin").stat()
    assert reply.headers["etag"] == f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
    assert float(reply.headers["x-beamlink-mtime"]) == stat.st_mtime
    assert reply.headers["accept-ranges"] == "bytes"
    assert served.get("/v1/files/empty").body == b""
    assert served.get("/v1/files/inside").body == DATA  # a link that stays inside is followed


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [
        ("bytes=10-19", 10, 20),
        ("bytes=299990-", 299_990, 300_000),  # open-ended
        ("bytes=-5", 299_995, 300_000),  # the last five bytes
        ("bytes=0-", 0, 300_000),
        ("bytes=100-9999999", 100, 300_000),  # an end past the file is clipped
    ],
)
def test_a_range_answers_206_with_exactly_its_bytes(served: Served, spec: str, start: int, end: int) -> None:
    reply = served.get("/v1/files/data.bin", Range=spec)
    assert reply.status == 206
    assert reply.body == DATA[start:end]
    assert reply.headers["content-range"] == f"bytes {start}-{end - 1}/300000"
    assert reply.headers["content-length"] == str(end - start)


def test_ranges_go_by_sendfile_unless_the_server_hashes_them(
    served: Served, sendfile_sent: SendfileLog
) -> None:
    sent = sendfile_sent
    assert served.get("/v1/files/data.bin", Range="bytes=1000-").body == DATA[1000:]
    # The server's call may return after the client has read every byte it sent.
    assert sent.total(len(DATA) - 1000) == len(DATA) - 1000
    # Asked to hash the range, the server reads it once and both hashes and sends what it read.
    sent.clear()
    assert served.get("/v1/files/data.bin?digest=xxh3").body == DATA
    assert sent == []


@pytest.mark.parametrize("spec", ["bytes=300000-", "bytes=400000-400010", "bytes=-0"])
def test_a_range_past_the_end_answers_416(served: Served, spec: str) -> None:
    reply = served.get("/v1/files/data.bin", Range=spec)
    assert reply.status == 416
    assert reply.headers["content-range"] == "bytes */300000"
    assert reply.json()["code"] == "RANGE_NOT_SATISFIABLE"
    assert served.get("/v1/files/empty", Range="bytes=0-").status == 416


@pytest.mark.parametrize("spec", ["bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=x-y"])
def test_unsupported_ranges_are_ignored_and_the_whole_file_sent(served: Served, spec: str) -> None:
    reply = served.get("/v1/files/data.bin", Range=spec)
    assert (reply.status, reply.body) == (200, DATA)


def test_directories_and_missing_files_have_no_bytes(served: Served) -> None:
    assert served.get("/v1/files/dir").json()["code"] == "INVALID_INPUT"
    missing = served.get("/v1/files/nothing.here")
    assert (missing.status, missing.json()["code"]) == (404, "SOURCE_NOT_FOUND")


# -- tokens ---------------------------------------------------------------------------------------------


def test_every_request_needs_a_valid_token(served: Served) -> None:
    cases = [
        ("", 401, "AUTHENTICATION_FAILED"),
        (served.token(ttl_seconds=1, now=0), 401, "TOKEN_EXPIRED"),
        (served.token(collection_id="c2"), 403, "PERMISSION_DENIED"),
        (served.token(operations=("list",)), 403, "PERMISSION_DENIED"),
        (served.token(path="dir"), 403, "PERMISSION_DENIED"),
        (served.token() + "x", 403, "PERMISSION_DENIED"),
        (
            sign(b"other key" * 4, collection_id="c1", path="", operations=ALL, ttl_seconds=60),
            403,
            "PERMISSION_DENIED",
        ),
    ]
    for token, status, code in cases:
        reply = served.get("/v1/files/data.bin", token=token)
        assert (reply.status, reply.json()["code"]) == (status, code), token
        assert set(reply.json()) == {"code", "message", "details"}
    assert served.get("/v1/files/dir/a.txt", token=served.token(path="dir")).body == b"a.txt"


def test_each_route_checks_its_own_operation(served: Served) -> None:
    read_only = served.token(operations=("read",))
    for target in ("/v1/stat/data.bin", "/v1/list/dir", "/v1/walk/dir", "/v1/checksum/data.bin"):
        assert served.get(target, token=read_only).status == 403, target
    list_only = served.token(operations=("list",))
    assert served.get("/v1/walk/dir?recursive=1", token=list_only).status == 200


# -- confinement ----------------------------------------------------------------------------------------

TRAVERSALS = ["%2e%2e/secret", "dir/%2E%2E/%2e%2e/secret", "..%2fsecret", "escape/secret", "%2e%2e"]


@pytest.mark.parametrize("route", ["files", "stat", "list", "walk", "checksum"])
@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_route_leaves_the_collection(served: Served, route: str, path: str) -> None:
    reply = served.get(f"/v1/{route}/{path}")
    assert (reply.status, reply.json()["code"]) == (403, "PATH_OUTSIDE_COLLECTION"), reply.body
    assert b"outside the collection" not in reply.body


def test_a_batch_refuses_traversal_per_path(served: Served) -> None:
    client = served.client()
    try:
        items = list(client.read_batch(["../secret", "escape/secret", "dir/a.txt"]))
    finally:
        client.close()
    assert [type(item.error) for item in items] == [PathOutsideCollection, PathOutsideCollection, type(None)]
    assert items[2].data == b"a.txt"


# -- metadata -------------------------------------------------------------------------------------------


def test_stat_and_list(served: Served) -> None:
    entry = served.get("/v1/stat/dir/a.txt").json()
    assert (entry["name"], entry["type"], entry["size"]) == ("a.txt", "file", 5)
    assert served.get("/v1/stat/inside").json()["type"] == "link"
    assert served.get("/v1/stat/inside?follow=1").json()["type"] == "file"
    first = served.get("/v1/list/?limit=2").json()
    assert [e["name"] for e in first["entries"]] == ["caf\\xe9 \\xff.dat", "data.bin"]
    after = first["next_after"]
    rest = served.get(f"/v1/list/?limit=100&after={after.replace(' ', '%20').replace(chr(92), '%5C')}").json()
    assert [e["name"] for e in rest["entries"]] == ["dir", "empty", "escape", "inside"]
    assert rest["next_after"] is None
    assert served.get("/v1/list/?limit=0").json()["code"] == "INVALID_INPUT"
    assert served.get("/v1/list/?limit=x").status == 422


def test_a_big_tree_is_walked_as_a_stream_in_walk_order(served: Served) -> None:
    for d in range(30):
        directory = served.root / "tree" / f"d{d:02d}"
        directory.mkdir(parents=True)
        for f in range(100):
            (directory / f"f{f:03d}").write_bytes(b"x" * f)
    with served.pool.request(
        "GET", "/v1/walk/tree?recursive=1", headers={"Authorization": f"Bearer {served.token()}"}
    ) as response:
        assert response.headers.get("transfer-encoding") == "chunked"  # streamed, never sized up front
        lines = b"".join(response.line_blocks()).splitlines()
    assert len(lines) == 1 + 30 + 3000
    expected = list(walk(CollectionRoot(served.root), "tree", recursive=True))
    client = served.client()
    try:
        assert list(client.walk("tree", recursive=True)) == expected
        assert [i.path for i in client.walk("dir", recursive=False)] == [""]
        with pytest.raises(SourceNotFound):
            list(client.walk("nothing", recursive=True))
    finally:
        client.close()


def test_checksums_of_files_and_ranges(served: Served) -> None:
    whole = served.get("/v1/checksum/data.bin").json()
    assert whole["digest"] == hash_bytes(DATA, "xxh3") == hash_file(served.root / "data.bin", "xxh3")
    assert (whole["algorithm"], whole["start"], whole["length"], whole["size"]) == (
        "xxh3",
        0,
        300_000,
        300_000,
    )
    part = served.get("/v1/checksum/data.bin?algorithm=sha256&start=1000&length=5000").json()
    assert part["digest"] == hash_bytes(DATA[1000:6000], "sha256")
    tail = served.get("/v1/checksum/data.bin?algorithm=md5&start=299000&length=99999").json()
    assert (tail["length"], tail["digest"]) == (1000, hash_bytes(DATA[299_000:], "md5"))
    assert served.get("/v1/checksum/data.bin?algorithm=crc").json()["code"] == "INVALID_INPUT"
    assert served.get("/v1/checksum/data.bin?start=-1").status == 422


def test_a_range_sent_with_digest_is_then_checksummed_from_memory(served: Served) -> None:
    client = served.client()
    got = bytearray()
    path = served.root / "data.bin"
    try:
        reply = client.read_range(
            "data.bin", 5000, 70_000, lambda b, n: got.extend(b[:n]), buffer=bytearray(4096), digest="blake3"
        )
        assert (reply.size, bytes(got)) == (300_000, DATA[5000:75_000])
        # Change the bytes but not the size or mtime: only a remembered digest still says the old one.
        before = path.stat()
        with open(path, "r+b") as stream:
            stream.seek(6000)
            stream.write(b"changed")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert client.checksum("data.bin", "blake3", start=5000, length=70_000) == hash_bytes(
            DATA[5000:75_000], "blake3"
        )
        assert client.checksum("data.bin", "blake3", start=5000, length=69_999) != hash_bytes(
            DATA[5000:74_999], "blake3"
        )
    finally:
        client.close()


def test_a_remembered_digest_matches_a_fresh_one(served: Served) -> None:
    client = served.client()
    try:
        client.read_range("data.bin", 0, 300_000, lambda b, n: None, buffer=bytearray(1 << 16), digest="xxh3")
        assert client.checksum("data.bin", "xxh3", start=0, length=300_000) == hash_bytes(DATA, "xxh3")
        assert client.checksum("data.bin", "xxh3", start=1, length=300_000) == hash_bytes(DATA[1:], "xxh3")
    finally:
        client.close()


def test_a_range_of_a_file_that_shrank_is_a_source_change(served: Served) -> None:
    client = served.client()
    try:
        (served.root / "data.bin").write_bytes(DATA[:1000])
        with pytest.raises(SourceChanged, match="now 1000 bytes"):
            client.read_range("data.bin", 500, 1000, lambda b, n: None, buffer=bytearray(4096))
        with pytest.raises(SourceChanged, match="shorter than 2001 bytes"):
            client.read_range("data.bin", 2000, 1000, lambda b, n: None, buffer=bytearray(4096))
    finally:
        client.close()


# -- batches and names ----------------------------------------------------------------------------------


def test_a_batch_carries_many_files_and_the_errors_of_the_others(served: Served) -> None:
    client = served.client(served.token(path="dir"))
    try:
        items = list(
            client.read_batch(["dir/a.txt", "dir/missing", "dir/sub", "data.bin", "dir/b.txt"], digest="xxh3")
        )
    finally:
        client.close()
    assert [i.data for i in items] == [b"a.txt", b"", b"", b"", b"b.txt"]
    assert (items[0].digest, items[0].size) == (hash_bytes(b"a.txt", "xxh3"), 5)
    assert isinstance(items[1].error, SourceNotFound)
    assert isinstance(items[2].error, InvalidInput)  # a directory
    assert isinstance(items[3].error, PermissionDenied)  # outside the token's prefix
    assert [i.path for i in items] == ["dir/a.txt", "dir/missing", "dir/sub", "data.bin", "dir/b.txt"]


def test_a_batch_request_is_checked(served: Served) -> None:
    token = {"Authorization": f"Bearer {served.token()}"}
    for body, code in ((b"{", "INVALID_INPUT"), (b'{"paths": [1]}', "INVALID_INPUT")):
        with served.pool.request("POST", "/v1/batch", headers=token, body=body) as response:
            assert json.loads(response.read())["code"] == code


def test_names_that_are_not_utf8_work_in_every_route(served: Served) -> None:
    target = url_path("files", ODD)
    assert target == "/v1/files/caf%5Cxe9%20%5Cxff.dat"
    assert served.get(target).body == b"odd name"
    assert served.get(url_path("stat", ODD)).json()["name"] == "caf\\xe9 \\xff.dat"
    client = served.client()
    try:
        assert ODD in [i.path for i in client.walk("", recursive=True)]
        assert client.checksum(ODD, "xxh3") == hash_bytes(b"odd name", "xxh3")
        assert next(iter(client.read_batch([ODD]))).data == b"odd name"
    finally:
        client.close()
    assert served.get("/v1/files/caf%E9").json()["code"] == "INVALID_INPUT"  # raw non-UTF-8 in the URL


def test_every_answer_names_the_data_protocol_and_another_version_is_refused(served: Served) -> None:
    for target in ("/v1/files/data.bin", "/v1/stat/dir", "/v1/files/missing", "/v1/nowhere"):
        assert served.get(target).headers["x-beamlink-data-protocol"] == str(PROTOCOL_VERSION)
    # A client of another version is told so, whatever it asks: nothing of it is misread.
    refused = served.get("/v1/walk/dir?recursive=1", X_Beamlink_Data_Protocol="1")
    assert refused.status == 409
    assert refused.json()["code"] == "DATA_PROTOCOL_MISMATCH"
    assert refused.json()["message"].startswith(
        f"the pulling agent speaks data protocol '1' and this data server speaks {PROTOCOL_VERSION}"
    )
    # Without the header (the service's download route, curl) file ranges are served as before.
    assert served.get("/v1/files/data.bin", Range="bytes=0-9").body == DATA[:10]
    assert served.get("/v1/files/data.bin", X_Beamlink_Data_Protocol=str(PROTOCOL_VERSION)).body == DATA


def test_unknown_routes_and_methods(served: Served) -> None:
    assert served.get("/v1/nothing/x").json()["code"] == "ROUTE_NOT_FOUND"
    assert served.get("/other").status == 404
    assert served.get("/v1/files/data.bin", method="DELETE").status == 405


# -- the server and the client --------------------------------------------------------------------------


def test_a_busy_port_is_a_startup_error(served: Served) -> None:
    port = int(served.url.rsplit(":", 1)[1])

    async def clash() -> None:
        other = DataServer(CollectionRoot(served.root), collection_id="c1", key=KEY, port=port)
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
            await other.start()

    asyncio.run(clash())


def test_the_client_asks_a_token_provider_for_every_request(served: Served) -> None:
    handed: list[str] = []

    def provide() -> str:
        handed.append(served.token())
        return handed[-1]

    client = SourceClient(served.url, provide)
    try:
        assert client.stat("data.bin").size == 300_000
        assert client.checksum("dir/a.txt", "xxh3") == hash_bytes(b"a.txt", "xxh3")
    finally:
        client.close()
    assert len(handed) == 2


def test_the_client_reports_an_unreachable_server(served: Served) -> None:
    client = SourceClient("http://127.0.0.1:9", served.token(), timeout=2)
    with pytest.raises(DataServerUnreachable, match="cannot reach the data server"):
        client.stat("data.bin")
    with pytest.raises(TokenExpired):
        served.client(served.token(ttl_seconds=1, now=0)).stat("data.bin")


def test_kept_alive_connections_are_reused_and_replaced_when_closed(served: Served) -> None:
    for _ in range(5):
        assert served.get("/v1/stat/data.bin").status == 200
    assert len(served.pool._idle) == 1
    served.pool._idle[0].sock.shutdown(socket.SHUT_RDWR)  # as a server closing an idle connection
    assert served.get("/v1/files/data.bin").body == DATA
