"""The zero-copy send extension that :class:`ZeroCopyProtocol` adds to uvicorn, against real uvicorn on a
free port, with small ASGI apps that say what they were offered and what their sends did."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from beamlink.agents.collection.http11 import ConnectionPool, DataServerUnreachable
from beamlink.agents.collection.zerocopy import ZERO_COPY_SEND, FileEndedEarly, ZeroCopyProtocol

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
DATA = os.urandom(200_000)


@contextmanager
def serving(app: App) -> Iterator[str]:
    """uvicorn with :class:`ZeroCopyProtocol` on a free port, in an event loop of its own thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(app, lifespan="off", log_config=None, http=ZeroCopyProtocol, ws="none")
    server = uvicorn.Server(config)
    serve = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), loop)
    try:
        while not server.started:
            assert not serve.done(), serve.result()
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        serve.result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        sock.close()


class FileApp:
    """Answers every request with ``count`` bytes of ``path`` from ``offset`` by zero-copy send (or says
    that it was not offered), and records what happened."""

    def __init__(self, path: Path, *, length: int | None = None, chunked: bool = False) -> None:
        self.path = path
        self.length = length
        self.chunked = chunked
        self.offered: list[bool] = []
        self.clients: list[tuple[str, int]] = []
        self.outcomes: list[str] = []
        self.done = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        offered = ZERO_COPY_SEND in scope.get("extensions", {})
        self.offered.append(offered)
        self.clients.append(scope["client"])
        query = dict(p.split("=") for p in scope["query_string"].decode().split("&") if p)
        offset, count = int(query.get("offset", 0)), int(query.get("count", len(DATA)))
        headers = [] if self.chunked else [(b"content-length", str(self.length or count).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            with open(self.path, "rb") as file:
                message = {"type": ZERO_COPY_SEND, "file": file, "offset": offset, "count": count}
                await send(message if offered else {"type": "http.response.body", "body": b"not offered"})
            self.outcomes.append("sent")
        except FileEndedEarly as exc:
            self.outcomes.append(f"ended early: {exc.sent} of {exc.count}")
        except RuntimeError as exc:
            self.outcomes.append(f"refused: {exc}")
            raise
        finally:
            self.done.set()


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


def test_plain_http_is_offered_zero_copy_and_gets_exactly_the_range(data_file: Path) -> None:
    app = FileApp(data_file)
    with serving(app) as url:
        pool = ConnectionPool(url, timeout=10)
        try:
            for offset, count in ((0, len(DATA)), (1234, 5000), (len(DATA) - 1, 1)):
                with pool.request("GET", f"/?offset={offset}&count={count}") as response:
                    assert response.status == 200
                    assert response.read() == DATA[offset : offset + count]
        finally:
            pool.close()
    assert app.offered == [True, True, True]
    # The three requests shared one kept-alive connection: each response ended cleanly.
    assert len(set(app.clients)) == 1
    assert app.outcomes == ["sent", "sent", "sent"]


def test_sendfile_does_the_sending(data_file: Path, sendfile_sent: list[int]) -> None:
    with serving(FileApp(data_file)) as url:
        pool = ConnectionPool(url, timeout=10)
        try:
            with pool.request("GET", "/") as response:
                assert response.read() == DATA
        finally:
            pool.close()
    assert sum(sendfile_sent) == len(DATA)


def test_a_file_shorter_than_the_count_aborts_the_response(data_file: Path) -> None:
    app = FileApp(data_file, length=len(DATA) + 1000)
    with serving(app) as url:
        pool = ConnectionPool(url, timeout=10)
        try:
            with (
                pool.request("GET", f"/?count={len(DATA) + 1000}") as response,
                pytest.raises(DataServerUnreachable, match="closed the connection"),
            ):
                response.read()
        finally:
            pool.close()
    assert app.outcomes == [f"ended early: {len(DATA)} of {len(DATA) + 1000}"]


def test_zero_copy_needs_a_content_length(data_file: Path) -> None:
    app = FileApp(data_file, chunked=True)
    with serving(app) as url:
        pool = ConnectionPool(url, timeout=10)
        try:
            with pool.request("GET", "/") as response, pytest.raises(DataServerUnreachable):
                response.read()
        finally:
            pool.close()
    assert app.outcomes == [f"refused: '{ZERO_COPY_SEND}' needs a started response with a Content-Length"]


def test_a_client_that_goes_away_ends_the_send_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sendfile_sent: list[int]
) -> None:
    sent = sendfile_sent
    big = tmp_path / "big.bin"
    with open(big, "wb") as out:
        out.truncate(256 << 20)  # far more than the socket buffers hold: the send is cut off mid-way
    app = FileApp(big)
    caplog.set_level(logging.ERROR)
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(f"GET /?count={256 << 20} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        assert app.done.wait(10)
        # The server still answers new connections.
        pool = ConnectionPool(url, timeout=10)
        try:
            with pool.request("GET", "/?count=10") as response:
                assert response.read() == bytes(10)
        finally:
            pool.close()
    assert app.outcomes == ["sent", "sent"]
    # The big send was cut off (its sendfile call failed, or returned short of the count), and the app
    # heard nothing of it, as with a lost connection in uvicorn's own send.
    assert sum(sent) - 10 < 256 << 20
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
