"""The collection agent's HTTP data server: other agents pull files from here with data tokens.

Routes and formats are in :mod:`~beamlink.agents.collection.datawire`. Every request carries
``Authorization: Bearer <data token>`` (:mod:`beamlink.protocol.data_tokens`), checked for the request's
path and operation before the path is resolved. Errors are ``{"code", "message", "details"}`` with the
status of the beamlink error class.

Why a bare ASGI callable and not Starlette routing: the hot paths are a range GET per chunk and a batch
per few hundred small files, so per-request overhead is spent only on parsing the path and checking the
token. A file range goes out by ``sendfile`` (the ASGI zero-copy send extension, which
:class:`~.zerocopy.ZeroCopyProtocol` adds to uvicorn): the socket takes the page-cache pages, and this
process copies nothing. Two cases read it in 1 MiB ``pread`` pieces on the event loop instead: TLS
(the bytes are encrypted here), and a range asked for with ``?digest=``, which is hashed as it goes
(``sendfile`` and a second read to hash cost the server more CPU than one read that does both: 0.45-0.54
against 0.38 s/GB). From the page cache a piece takes ~50-100 µs, about what a hop to a worker thread
costs; a cold, slow disk does stall other requests meanwhile, in ``sendfile`` too (the known price).
Walks, whole-file hashing and batches of small files, which make many calls, run in worker threads.

TLS: given an :class:`ssl.SSLContext` (the collection's ``tls`` section builds it, TLS 1.2 at least),
the same app is served over https; the event loop's TLS transport encrypts each 1 MiB piece as it goes
out. Tokens then never cross the network in clear.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send

from beamlink.agents.collection.checksums import (
    DEFAULT_ALGORITHM,
    check_algorithm,
    hash_bytes,
    hash_fd,
    new_hasher,
)
from beamlink.agents.collection.datarequest import (
    DataRequest,
    RangeNotSatisfiable,
    batch_request,
    groups,
    parse_range,
    parse_request,
    read_body,
)
from beamlink.agents.collection.datawire import (
    BATCH_MAX_BYTES,
    BATCH_MAX_FILE,
    MTIME_HEADER,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    check_protocol,
    encode_batch_error,
    encode_batch_group,
    encode_batch_header,
    encode_info,
    etag,
)
from beamlink.agents.collection.fsops import list_directory, stat_path, walk
from beamlink.agents.collection.paths import CollectionRoot, from_wire, normalize, quoted, to_wire
from beamlink.agents.collection.small_files import Directories, DirectoryCache, open_regular, read_file
from beamlink.agents.collection.zerocopy import ZERO_COPY_SEND, FileEndedEarly, ZeroCopyProtocol
from beamlink.errors import (
    AuthenticationFailed,
    BeamlinkError,
    InvalidInput,
    MethodNotAllowed,
    SourceChanged,
    StartupError,
)
from beamlink.protocol.data_tokens import DataGrant, open_token

__all__ = ["DataApp", "DataServer", "RangeNotSatisfiable", "build_app"]

log = logging.getLogger(__name__)

_PIECE = 1 << 20
_PROTOCOL = (PROTOCOL_HEADER.encode(), str(PROTOCOL_VERSION).encode())
_WALK_BATCH = 2000


class _Sender:
    """``send`` that remembers whether the response has started (after that, errors can only abort) and
    whether the client has gone (uvicorn then drops what is sent without a word, so a long response
    would read its whole range for nobody)."""

    __slots__ = ("_watch", "send", "started", "zero_copy")

    def __init__(self, send: Send, *, zero_copy: bool = False) -> None:
        self.send = send
        self.started = False
        self.zero_copy = zero_copy
        """Whether the server takes file ranges with zero-copy send (:mod:`.zerocopy`)."""
        self._watch: asyncio.Task[None] | None = None

    def watch(self, receive: Receive) -> None:
        """Start noticing a disconnect (for responses that stream for a while)."""

        async def until_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        self._watch = asyncio.ensure_future(until_gone())

    @property
    def gone(self) -> bool:
        return self._watch is not None and self._watch.done()

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        headers.append(_PROTOCOL)
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, *, more: bool = True) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def file(self, fd: int, offset: int, count: int, *, more: bool = False) -> None:
        """``count`` bytes of ``fd`` from ``offset`` by zero-copy send; FileEndedEarly if it is shorter."""
        with open(fd, "rb", buffering=0, closefd=False) as file:
            message = {
                "type": ZERO_COPY_SEND,
                "file": file,
                "offset": offset,
                "count": count,
                "more_body": more,
            }
            await self.send(message)

    async def json(self, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        await self.start(
            status,
            [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        )
        await self.body(data, more=False)


class _RecentDigests:
    """Digests of ranges just sent with ``?digest=``, so the checksum request that follows is answered
    without reading the range again (hashing while sending costs ~3 % at 1 GB/s with xxh3; reading the
    range a second time cost ~30 %). Keyed by the file's size and mtime: a changed file misses."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._digests: collections.OrderedDict[tuple[Any, ...], str] = collections.OrderedDict()

    def remember(self, key: tuple[str, int, int, str, os.stat_result], digest: str) -> None:
        self._digests[self._key(key)] = digest
        if len(self._digests) > self._limit:
            self._digests.popitem(last=False)

    def get(self, key: tuple[str, int, int, str, os.stat_result]) -> str | None:
        return self._digests.get(self._key(key))

    @staticmethod
    def _key(key: tuple[str, int, int, str, os.stat_result]) -> tuple[Any, ...]:
        path, start, length, algorithm, st = key
        return (path, start, length, algorithm, st.st_ino, st.st_size, st.st_mtime_ns)


_Handler = Callable[["DataApp", DataRequest, DataGrant, Receive, _Sender], Awaitable[None]]
_OPERATION = {"files": "read", "stat": "list", "list": "list", "walk": "list", "checksum": "checksum"}


class DataApp:
    """The ASGI application (no lifespan); :class:`DataServer` runs it under uvicorn."""

    def __init__(
        self,
        root: CollectionRoot,
        *,
        collection_id: str,
        key: bytes,
        checksum_algorithm: str = DEFAULT_ALGORITHM,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.collection_id = collection_id
        self.checksum_algorithm = check_algorithm(checksum_algorithm)
        self._key = key
        self._clock = clock
        self._digests = _RecentDigests()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        sender = _Sender(send, zero_copy=ZERO_COPY_SEND in scope.get("extensions", ()))
        try:
            request = parse_request(scope)
            if (version := request.headers.get(_PROTOCOL[0])) is not None:
                check_protocol(version.decode("latin-1"), server=True, where="")
            grant = self._grant(request)
            handler = _ROUTES.get((request.method, request.route))
            if handler is None:
                raise MethodNotAllowed(f"{request.method} is not allowed on /v1/{request.route}")
            await handler(self, request, grant, receive, sender)
        except BeamlinkError as exc:
            if sender.started:
                raise  # too late for an error body: uvicorn aborts the connection, the client retries
            extra = None
            if isinstance(exc, RangeNotSatisfiable):
                extra = [(b"content-range", f"bytes */{exc.details['size']}".encode())]
            await sender.json(exc.status, exc.to_dict(), extra)
        except Exception:
            log.exception("data server request %s failed", scope.get("path"))
            if sender.started:
                raise
            body = {"code": "INTERNAL_ERROR", "message": "the data server failed; see its log", "details": {}}
            await sender.json(500, body)
        finally:
            sender.close()

    def _grant(self, request: DataRequest) -> DataGrant:
        token = request.headers.get(b"authorization", b"")
        scheme, _, value = token.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationFailed("a data token is required: send 'Authorization: Bearer <token>'")
        grant = open_token(self._key, value.strip(), collection_id=self.collection_id, now=self._clock())
        operation = _OPERATION.get(request.route)
        if operation is not None:
            grant.check(to_wire(request.path), operation)
        return grant

    # -- routes -------------------------------------------------------------------------------------------

    async def serve_files(
        self, request: DataRequest, grant: DataGrant, receive: Receive, out: _Sender
    ) -> None:
        fd, st = open_regular(self.root, request.path)
        try:
            size = st.st_size
            start, end, ranged = parse_range(request.headers.get(b"range"), size)
            headers = [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(end - start).encode()),
                (b"accept-ranges", b"bytes"),
                (b"etag", etag(size, st.st_mtime_ns).encode()),
                (MTIME_HEADER.encode(), repr(st.st_mtime).encode()),
            ]
            if ranged:
                headers.append((b"content-range", f"bytes {start}-{end - 1}/{size}".encode()))
            algorithm = request.param("digest")
            hasher = new_hasher(check_algorithm(algorithm)) if algorithm else None
            await out.start(206 if ranged else 200, headers)
            if out.zero_copy and hasher is None and start < end:
                try:
                    await out.file(fd, start, end - start)
                except FileEndedEarly:
                    raise SourceChanged(f"{quoted(request.path)} became shorter while it was sent") from None
                return
            out.watch(receive)
            offset = start
            while offset < end and not out.gone:
                data = os.pread(fd, min(_PIECE, end - offset), offset)
                if not data:
                    raise SourceChanged(f"{quoted(request.path)} became shorter while it was sent")
                if hasher is not None:
                    hasher.update(data)
                offset += len(data)
                await out.body(data, more=offset < end)
            if start == end:
                await out.body(b"", more=False)
            if hasher is not None and algorithm and offset == end:
                self._digests.remember((request.path, start, end - start, algorithm, st), hasher.hexdigest())
        finally:
            os.close(fd)

    async def serve_stat(
        self, request: DataRequest, grant: DataGrant, receive: Receive, out: _Sender
    ) -> None:
        follow = request.param("follow", "0") not in ("0", "", "false")
        entry = await asyncio.to_thread(stat_path, self.root, request.path, follow=follow)
        await out.json(200, {"path": to_wire(request.path), **entry.to_dict()})

    async def serve_list(
        self, request: DataRequest, grant: DataGrant, receive: Receive, out: _Sender
    ) -> None:
        after = request.param("after")
        limit = request.int_param("limit", 1000)
        assert limit is not None
        page = await asyncio.to_thread(
            list_directory, self.root, request.path, after=from_wire(after) if after else None, limit=limit
        )
        await out.json(200, page.to_dict())

    async def serve_walk(
        self, request: DataRequest, grant: DataGrant, receive: Receive, out: _Sender
    ) -> None:
        recursive = request.param("recursive", "0") not in ("0", "", "false")
        entries = walk(self.root, request.path, recursive=recursive)
        # The first lines are read before the response starts, so a missing item is a plain 404.
        lines, more = await asyncio.to_thread(_walk_lines, entries)
        await out.start(200, [(b"content-type", b"application/x-ndjson")])
        out.watch(receive)
        while more and not out.gone:
            await out.body(lines)
            try:
                lines, more = await asyncio.to_thread(_walk_lines, entries)
            except BeamlinkError as exc:
                lines, more = json.dumps({"error": exc.to_dict()}).encode() + b"\n", False
        await out.body(lines, more=False)

    async def serve_checksum(
        self, request: DataRequest, grant: DataGrant, receive: Receive, out: _Sender
    ) -> None:
        algorithm = check_algorithm(request.param("algorithm") or self.checksum_algorithm)
        start = request.int_param("start", 0)
        length = request.int_param("length")
        assert start is not None
        fd, st = open_regular(self.root, request.path)
        try:
            available = max(0, st.st_size - start)
            length = available if length is None else min(length, available)
            key = (request.path, start, length, algorithm, st)
            digest = self._digests.get(key)
            if digest is None:
                digest = await asyncio.to_thread(hash_fd, fd, algorithm, start=start, length=length)
        finally:
            os.close(fd)
        body = {
            "path": to_wire(request.path),
            "algorithm": algorithm,
            "start": start,
            "length": length,
            "size": st.st_size,
            "digest": digest,
        }
        await out.json(200, body)

    async def serve_batch(
        self, request: DataRequest, grant: DataGrant, receive: Receive, out: _Sender
    ) -> None:
        paths, algorithm = batch_request(await read_body(receive, BATCH_MAX_BYTES))
        await out.start(200, [(b"content-type", b"application/x-beamlink-batch")])
        out.watch(receive)
        for group in groups(paths):
            if out.gone:
                return
            await out.body(await asyncio.to_thread(self._read_group, grant, group, algorithm))
        await out.body(b"", more=False)

    def _read_group(self, grant: DataGrant, paths: list[str], algorithm: str | None) -> bytes:
        """The group of ``paths`` (in a worker thread: opening many small files is blocking I/O)."""
        headers: list[bytes] = []
        contents: list[bytes] = []
        with Directories(DirectoryCache(self.root)) as directories:
            for wire in paths:
                try:
                    clean = normalize(from_wire(wire))
                    grant.check(to_wire(clean), "read")
                    data, st = _read_small(directories, clean)
                except BeamlinkError as exc:
                    headers.append(encode_batch_error(wire, exc))
                    continue
                digest = None if algorithm is None else hash_bytes(data, algorithm)
                headers.append(encode_batch_header(wire, st.st_size, st.st_mtime, digest))
                contents.append(data)
        return encode_batch_group(headers, contents)


_ROUTES: dict[tuple[str, str], _Handler] = {
    ("GET", "files"): DataApp.serve_files,
    ("GET", "stat"): DataApp.serve_stat,
    ("GET", "list"): DataApp.serve_list,
    ("GET", "walk"): DataApp.serve_walk,
    ("GET", "checksum"): DataApp.serve_checksum,
    ("POST", "batch"): DataApp.serve_batch,
}


def build_app(
    root: CollectionRoot,
    *,
    collection_id: str,
    key: bytes,
    checksum_algorithm: str = DEFAULT_ALGORITHM,
    clock: Callable[[], float] = time.time,
) -> DataApp:
    """The data server's ASGI app (for tests, or to mount under another server)."""
    return DataApp(
        root, collection_id=collection_id, key=key, checksum_algorithm=checksum_algorithm, clock=clock
    )


# -- filesystem -----------------------------------------------------------------------------------------


def _read_small(directories: Directories, path: str) -> tuple[bytes, os.stat_result]:
    fd, st = directories.open_file(path)
    try:
        if st.st_size > BATCH_MAX_FILE:
            raise InvalidInput(
                f"{quoted(path)} has {st.st_size} bytes, too many for a batch; fetch it with GET /v1/files",
                details={"path": to_wire(path), "size": st.st_size},
            )
        return read_file(fd, st.st_size, path), st
    finally:
        os.close(fd)


def _walk_lines(entries: Iterator[Any]) -> tuple[bytes, bool]:
    """The next lines of a walk and whether more may follow."""
    lines = []
    for info in entries:
        lines.append(encode_info(info))
        if len(lines) >= _WALK_BATCH:
            return b"".join(lines), True
    return b"".join(lines), False


# -- the server -----------------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the agent owns SIGINT/SIGTERM and stops us itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DataServer:
    """The data server of one collection, run by uvicorn inside the agent's event loop.

    ``await start()`` binds (port 0: a free port) and returns the port; ``await stop()`` finishes
    in-flight requests for up to ``graceful`` seconds, then closes. With ``tls`` (a server context with
    its certificate loaded) it serves https only.
    """

    def __init__(
        self,
        root: CollectionRoot,
        *,
        collection_id: str,
        key: bytes,
        host: str = "127.0.0.1",
        port: int = 0,
        checksum_algorithm: str = DEFAULT_ALGORITHM,
        graceful: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.app = build_app(
            root, collection_id=collection_id, key=key, checksum_algorithm=checksum_algorithm
        )
        self.host = host
        self.port = port
        self.graceful = graceful
        self.tls = tls
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """``http(s)://host:port`` once started (the bound port)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls is not None else 'http'}://{host}:{self.port}"

    async def start(self) -> int:
        """Bind and start serving; returns the bound port."""
        if self._task is not None:
            raise StartupError("the data server is already running")
        sock = self._socket = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            http=ZeroCopyProtocol,
            ws="none",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=max(1, round(self.graceful)),
        )
        if self.tls is not None:
            # Our own context rather than ssl_certfile/ssl_keyfile: its files were loaded (and checked)
            # when the config was read, and it sets the minimum version. uvicorn serves with
            # ``config.ssl`` as load() leaves it (ssl_context_factory would be neater, but it came in
            # uvicorn 0.47 and pyproject allows 0.30).
            config.load()
            config.ssl = self.tls
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="beamlink-data-server")
        while not self._server.started:
            if self._task.done():
                task, self._task, self._server = self._task, None, None
                self._close_socket()
                task.result()  # raises what stopped it
                raise StartupError(f"the data server on {self.host}:{self.port} stopped while starting")
            await asyncio.sleep(0.005)
        log.debug("data server of %s listening on %s", self.app.collection_id, self.url)
        return self.port

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to ``graceful`` s), then return."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._server = self._task = None
            self._close_socket()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(
            f"the data server cannot listen on {host}:{port}: {exc.strerror} (change listen in the "
            "collection's config.yaml)",
            details={"host": host, "port": port},
        ) from exc
    sock.listen(1024)
    return sock
