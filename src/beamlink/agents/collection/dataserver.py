"""The collection agent's HTTP data server: other agents pull files from here with data tokens.

Routes and formats are in :mod:`~beamlink.agents.collection.datawire`. Every request carries
``Authorization: Bearer <data token>`` (:mod:`beamlink.protocol.data_tokens`), checked for the request's
path and operation before the path is resolved. Errors are ``{"code", "message", "details"}`` with the
status of the beamlink error class.

Why a bare ASGI callable and not Starlette routing: the hot paths are a range GET per chunk and a batch
per few hundred small files, so per-request overhead is spent only on parsing the path and checking the
token. File bytes go out in 1 MiB ``pread`` pieces (fewer, larger writes keep uvicorn's per-message cost
small next to the copy); every filesystem call that may block on a cold disk (walks, hashing, batches of
small files) runs in a worker thread so one slow request never stalls the others.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

import uvicorn
from starlette.types import Message, Receive, Scope, Send

from beamlink.agents.collection.checksums import DEFAULT_ALGORITHM, check_algorithm, hash_fd, new_hasher
from beamlink.agents.collection.datawire import (
    BATCH_MAX_BYTES,
    BATCH_MAX_FILE,
    BATCH_MAX_PATHS,
    MTIME_HEADER,
    encode_info,
    etag,
)
from beamlink.agents.collection.fsops import list_directory, stat_path, walk
from beamlink.agents.collection.paths import CollectionRoot, from_wire, normalize, quoted, to_wire
from beamlink.agents.collection.small_files import DirectoryCache, read_file
from beamlink.errors import (
    AuthenticationFailed,
    BeamlinkError,
    InvalidInput,
    MethodNotAllowed,
    PayloadTooLarge,
    RouteNotFound,
    SourceChanged,
    StartupError,
)
from beamlink.protocol.data_tokens import DataGrant, open_token

__all__ = ["DataApp", "DataServer", "RangeNotSatisfiable", "build_app"]

log = logging.getLogger(__name__)

_PIECE = 1 << 20
_WALK_BATCH = 2000
_BATCH_GROUP_BYTES = 1 << 20
_BATCH_GROUP_FILES = 128


class RangeNotSatisfiable(InvalidInput):
    """The requested byte range starts past the end of the file."""

    code = "RANGE_NOT_SATISFIABLE"
    status = 416


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    route: str
    path: str
    """The collection path, normalised (surrogateescape form)."""
    query: dict[str, str]
    headers: dict[bytes, bytes]

    def param(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def int_param(self, name: str, default: int | None = None) -> int | None:
        value = self.query.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise InvalidInput(f"{name} must be an integer, got {value!r}", details={"field": name}) from None
        if number < 0:
            raise InvalidInput(f"{name} must not be negative, got {number}", details={"field": name})
        return number


class _Sender:
    """``send`` that remembers whether the response has started (after that, errors can only abort)."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, *, more: bool = True) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

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


_Handler = Callable[["DataApp", _Request, DataGrant, Receive, _Sender], Any]
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
        sender = _Sender(send)
        try:
            request = _parse(scope)
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

    def _grant(self, request: _Request) -> DataGrant:
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

    async def serve_files(self, request: _Request, grant: DataGrant, receive: Receive, out: _Sender) -> None:
        fd, st = _open_file(self.root, request.path)
        try:
            size = st.st_size
            start, end, ranged = _parse_range(request.headers.get(b"range"), size)
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
            offset = start
            while offset < end:
                data = os.pread(fd, min(_PIECE, end - offset), offset)
                if not data:
                    raise SourceChanged(f"{quoted(request.path)} became shorter while it was sent")
                if hasher is not None:
                    hasher.update(data)
                offset += len(data)
                await out.body(data, more=offset < end)
            if start == end:
                await out.body(b"", more=False)
            if hasher is not None and algorithm:
                self._digests.remember((request.path, start, end - start, algorithm, st), hasher.hexdigest())
        finally:
            os.close(fd)

    async def serve_stat(self, request: _Request, grant: DataGrant, receive: Receive, out: _Sender) -> None:
        follow = request.param("follow", "0") not in ("0", "", "false")
        entry = await asyncio.to_thread(stat_path, self.root, request.path, follow=follow)
        await out.json(200, {"path": to_wire(request.path), **entry.to_dict()})

    async def serve_list(self, request: _Request, grant: DataGrant, receive: Receive, out: _Sender) -> None:
        after = request.param("after")
        limit = request.int_param("limit", 1000)
        assert limit is not None
        page = await asyncio.to_thread(
            list_directory, self.root, request.path, after=from_wire(after) if after else None, limit=limit
        )
        await out.json(200, page.to_dict())

    async def serve_walk(self, request: _Request, grant: DataGrant, receive: Receive, out: _Sender) -> None:
        recursive = request.param("recursive", "0") not in ("0", "", "false")
        entries = walk(self.root, request.path, recursive=recursive)
        # The first lines are read before the response starts, so a missing item is a plain 404.
        lines, more = await asyncio.to_thread(_walk_lines, entries)
        await out.start(200, [(b"content-type", b"application/x-ndjson")])
        while more:
            await out.body(lines)
            try:
                lines, more = await asyncio.to_thread(_walk_lines, entries)
            except BeamlinkError as exc:
                lines, more = json.dumps({"error": exc.to_dict()}).encode() + b"\n", False
        await out.body(lines, more=False)

    async def serve_checksum(
        self, request: _Request, grant: DataGrant, receive: Receive, out: _Sender
    ) -> None:
        algorithm = check_algorithm(request.param("algorithm") or self.checksum_algorithm)
        start = request.int_param("start", 0)
        length = request.int_param("length")
        assert start is not None
        fd, st = _open_file(self.root, request.path)
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

    async def serve_batch(self, request: _Request, grant: DataGrant, receive: Receive, out: _Sender) -> None:
        paths, algorithm = _batch_request(await _read_body(receive, BATCH_MAX_BYTES))
        await out.start(200, [(b"content-type", b"application/x-beamlink-batch")])
        for group in _groups(paths):
            frames = await asyncio.to_thread(self._read_group, grant, group, algorithm)
            await out.body(frames)
        await out.body(b"", more=False)

    def _read_group(self, grant: DataGrant, paths: list[str], algorithm: str | None) -> bytes:
        """The frames of ``paths`` (in a worker thread: opening many small files is blocking I/O)."""
        parts: list[bytes] = []
        cache = DirectoryCache(self.root)
        for wire in paths:
            try:
                clean = normalize(from_wire(wire))
                grant.check(to_wire(clean), "read")
                header, data = _read_small(cache, clean, algorithm)
            except BeamlinkError as exc:
                parts.append(json.dumps({"path": wire, "error": exc.to_dict()}).encode() + b"\n")
                continue
            parts.append(json.dumps({"path": wire, **header}, separators=(",", ":")).encode() + b"\n")
            parts.append(data)
        return b"".join(parts)


_ROUTES: dict[tuple[str, str], Callable[..., Any]] = {
    ("GET", "files"): DataApp.serve_files,
    ("GET", "stat"): DataApp.serve_stat,
    ("GET", "list"): DataApp.serve_list,
    ("GET", "walk"): DataApp.serve_walk,
    ("GET", "checksum"): DataApp.serve_checksum,
    ("POST", "batch"): DataApp.serve_batch,
}
_KNOWN = {route for _, route in _ROUTES}


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


# -- request parsing ------------------------------------------------------------------------------------


def _parse(scope: Scope) -> _Request:
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    if not raw.startswith(b"/v1/"):
        raise RouteNotFound(f"no data server route {raw[:200].decode('latin-1')}; routes start with /v1/")
    route_bytes, _, rest = raw[4:].partition(b"/")
    route = route_bytes.decode("latin-1")
    if route not in _KNOWN:
        raise RouteNotFound(f"no data server route /v1/{route}")
    try:
        wire = unquote_to_bytes(rest).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            "the path in the URL is not UTF-8: send names in wire form (bytes that are not UTF-8 as \\xHH)"
        ) from None
    path = normalize(from_wire(wire))
    query = {
        key: values[-1] for key, values in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()
    }
    headers = dict(scope["headers"])
    return _Request(scope["method"], route, path, query, headers)


def _parse_range(header: bytes | None, size: int) -> tuple[int, int, bool]:
    """(start, end, ranged) of a single "bytes=" range; the whole file, not ranged, for none or a form
    not supported.

    RFC 9110 lets a server ignore a Range it does not support (several ranges), answering 200 with the
    whole file, which every client must accept.
    """
    whole = (0, size, False)
    if header is None:
        return whole
    unit, _, spec = header.decode("latin-1").partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or "," in spec or not dash:
        return whole
    try:
        if not first:  # "-n": the last n bytes
            count = int(last)
            if count <= 0 or size == 0:
                raise _unsatisfiable(size)
            return max(0, size - count), size, True
        start = int(first)
        end = size if not last else min(int(last) + 1, size)
    except ValueError:
        return whole
    if last and int(last) < start:
        return whole  # "bytes=5-3" is not a valid range: ignored, as RFC 9110 says
    if start >= size or end <= start:
        raise _unsatisfiable(size)
    return start, end, True


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"the range starts past the end of the file ({size} bytes)",
        details={"size": size},
    )


async def _read_body(receive: Receive, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidInput("the client went away before sending the whole request")
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"the request body is over {limit} bytes", details={"limit": limit})
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _batch_request(body: bytes) -> tuple[list[str], str | None]:
    try:
        parsed = json.loads(body)
        paths = parsed["paths"]
        algorithm = parsed.get("digest")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidInput('a batch request is JSON: {"paths": ["a/b", ...], "digest": null}') from None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise InvalidInput("paths must be a list of collection paths", details={"field": "paths"})
    if len(paths) > BATCH_MAX_PATHS:
        raise PayloadTooLarge(
            f"a batch takes at most {BATCH_MAX_PATHS} paths, got {len(paths)}",
            details={"limit": BATCH_MAX_PATHS},
        )
    return paths, None if algorithm is None else check_algorithm(str(algorithm))


def _groups(paths: list[str]) -> Iterator[list[str]]:
    for index in range(0, len(paths), _BATCH_GROUP_FILES):
        yield paths[index : index + _BATCH_GROUP_FILES]


# -- filesystem -----------------------------------------------------------------------------------------


def _open_file(root: CollectionRoot, path: str) -> tuple[int, os.stat_result]:
    """An open descriptor of the regular file at ``path`` and its stat (O_NONBLOCK: a FIFO never hangs)."""
    return DirectoryCache(root).open_file(path)


def _read_small(cache: DirectoryCache, path: str, algorithm: str | None) -> tuple[dict[str, Any], bytes]:
    fd, st = cache.open_file(path)
    try:
        if st.st_size > BATCH_MAX_FILE:
            raise InvalidInput(
                f"{quoted(path)} has {st.st_size} bytes, too many for a batch; fetch it with GET /v1/files",
                details={"path": to_wire(path), "size": st.st_size},
            )
        data = read_file(fd, st.st_size, path)
    finally:
        os.close(fd)
    digest = None
    if algorithm is not None:
        hasher = new_hasher(algorithm)
        hasher.update(data)
        digest = hasher.hexdigest()
    return {"size": st.st_size, "mtime": st.st_mtime, "digest": digest}, data


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
    in-flight requests for up to ``graceful`` seconds, then closes.
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
    ) -> None:
        self.app = build_app(
            root, collection_id=collection_id, key=key, checksum_algorithm=checksum_algorithm
        )
        self.host = host
        self.port = port
        self.graceful = graceful
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` once started (the bound port)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

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
            http="httptools",
            ws="none",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=max(1, round(self.graceful)),
        )
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
