"""Where a transfer's bytes come from: another agent's data server, or a collection on this very host.

:class:`SourceClient` talks to a source agent's data server (:mod:`.dataserver`) with a data token;
:class:`LocalSource` is the same-host fast path (both collections on one machine: the kernel copies,
nothing crosses a socket). The transfer worker (:mod:`.pull`) plans the same way over both and moves
bytes with whichever it got.

Methods block: the transfer worker calls them from its worker threads. Each method makes one attempt;
:func:`is_transient` says which errors deserve another after :meth:`RetryPolicy.delay` (the worker retries,
because only it knows how to rewind what it was writing).
"""

from __future__ import annotations

import json
import mmap
import random
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from beamlink.agents.collection.checksums import hash_file
from beamlink.agents.collection.datawire import (
    BATCH_MAX_FILE,
    MTIME_HEADER,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    check_protocol,
    decode_batch_group,
    decode_infos,
    error_from_body,
    url_path,
)
from beamlink.agents.collection.fsops import stat_path, walk
from beamlink.agents.collection.http11 import ConnectionPool, DataServerUnreachable, HttpResponse
from beamlink.agents.collection.partial import CopyResult, copy_local
from beamlink.agents.collection.paths import CollectionRoot, from_wire, quoted, to_wire
from beamlink.agents.collection.plan import FileInfo
from beamlink.errors import (
    BeamlinkError,
    DataProtocolMismatch,
    InvalidInput,
    SourceChanged,
    error_from_payload,
)

__all__ = [
    "BatchFile",
    "DataServerUnreachable",
    "EitherFlag",
    "LocalSource",
    "RangeReply",
    "RangeSink",
    "RetryPolicy",
    "SourceClient",
    "StopFlag",
    "TransferStopped",
    "is_transient",
]

_PROTOCOL = str(PROTOCOL_VERSION)
_GROUP_LINE_MAX = 4 << 20
"""Longest header line of a batch group the client reads (128 headers of long, escaped names fit)."""

RangeSink = Callable[[bytearray | mmap.mmap, int], None]
"""Takes each piece of a range as it arrives: the first ``n`` bytes of the (reused) buffer."""


class TransferStopped(Exception):
    """A read gave up because the transfer is stopping (cancelled, past its deadline)."""


class StopFlag(Protocol):
    """What a read checks between pieces (a :class:`threading.Event` is one)."""

    def is_set(self) -> bool: ...


class EitherFlag:
    """Set when any of its flags is (one file's abort, or the whole transfer's stop)."""

    def __init__(self, *flags: StopFlag) -> None:
        self.flags = flags

    def is_set(self) -> bool:
        return any(flag.is_set() for flag in self.flags)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently transient errors are retried: jittered exponential backoff."""

    attempts: int = 6
    """Tries in all (the first included)."""
    initial: float = 0.25
    maximum: float = 30.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.maximum, self.initial * 2 ** (retry - 1))
        return random.uniform(ceiling / 2, ceiling)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` may go away if tried again: connection trouble and 5xx answers, never a 4xx, nor
    a TLS failure that is a matter of configuration (an error class with ``transient = False``)."""
    return isinstance(exc, BeamlinkError) and exc.status >= 500 and bool(getattr(exc, "transient", True))


@dataclass(frozen=True, slots=True)
class RangeReply:
    """What the data server said about the file whose range it sent."""

    size: int
    """The whole file's size."""
    etag: str
    mtime: float


@dataclass(frozen=True, slots=True)
class BatchFile:
    """One file of a batch: its bytes, or the error that kept it from being read."""

    path: str
    size: int = 0
    mtime: float = 0.0
    data: bytes = b""
    digest: str | None = None
    error: BeamlinkError | None = None


class SourceClient:
    """A source agent's data server, reached at ``base_url`` with a data token.

    ``token`` may be a callable returning the current token, so a long transfer can be handed fresh
    ones (tokens are short-lived); it is called for every request. :meth:`close` closes idle
    connections.
    """

    def __init__(
        self,
        base_url: str,
        token: str | Callable[[], str],
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: the context for an https ``base_url`` (default: the system's CAs)."""
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._token = token
        self._pool = ConnectionPool(base_url, timeout=timeout, tls=tls)

    def __repr__(self) -> str:
        return f"SourceClient({self.base_url!r})"

    def close(self) -> None:
        self._pool.close()

    def stat(self, path: str) -> FileInfo:
        """The entry at ``path`` (links inside the collection followed), as the walk would report it."""
        body = self._json("GET", url_path("stat", path) + "?follow=1")
        kind = body["type"]
        return FileInfo("", kind, int(body["size"]) if kind == "file" else 0, float(body["mtime"]))

    def walk(self, path: str, *, recursive: bool) -> Iterator[FileInfo]:
        """The transfer walk of ``path`` on the source, streamed (see :func:`.fsops.walk`)."""
        response = self._request("GET", url_path("walk", path) + f"?recursive={int(recursive)}")
        with response:
            for block in response.line_blocks():
                yield from decode_infos(block)

    def checksum(self, path: str, algorithm: str, *, start: int = 0, length: int | None = None) -> str:
        """The digest of ``length`` bytes of ``path`` from ``start`` (the rest of the file when None)."""
        query = f"?algorithm={algorithm}&start={start}" + ("" if length is None else f"&length={length}")
        return str(self._json("GET", url_path("checksum", path) + query)["digest"])

    def read_range(
        self,
        path: str,
        offset: int,
        length: int,
        sink: RangeSink,
        *,
        buffer: bytearray | mmap.mmap,
        digest: str | None = None,
        stop: StopFlag | None = None,
    ) -> RangeReply:
        """Stream bytes ``offset`` to ``offset + length`` of ``path`` through ``sink``, ``buffer`` at a time.

        ``digest`` names an algorithm: the server hashes the range as it sends it and remembers the
        digest, so a :meth:`checksum` of this range right after costs it nothing. TransferStopped once
        ``stop`` is set (checked between pieces).
        """
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        target = url_path("files", path) + (f"?digest={digest}" if digest else "")
        try:
            response = self._request("GET", target, headers)
        except BeamlinkError as exc:
            if exc.code != "RANGE_NOT_SATISFIABLE":
                raise
            raise SourceChanged(
                f"{quoted(path)} is now shorter than {offset + 1} bytes; it changed since it was listed",
                details={"path": to_wire(path), **exc.details},
            ) from None
        with response:
            size, start = _content_range(response, path)
            if start != offset or int(response.headers.get("content-length", -1)) != length:
                raise SourceChanged(
                    f"{quoted(path)} is now {size} bytes, too short for the range {offset}+{length}; it "
                    "changed since it was listed",
                    details={"path": to_wire(path), "size": size},
                )
            view = memoryview(buffer)
            done = 0
            while done < length:
                if stop is not None and stop.is_set():
                    raise TransferStopped
                got = response.readinto(view[: min(len(view), length - done)])
                sink(buffer, got)
                done += got
            return RangeReply(
                size=size,
                etag=response.headers.get("etag", ""),
                mtime=float(response.headers.get(MTIME_HEADER, "0")),
            )

    def read_batch(self, paths: list[str], *, digest: str | None = None) -> Iterator[BatchFile]:
        """Many small files in one response, in the order of ``paths``; see :mod:`.datawire`."""
        body = json.dumps({"paths": [to_wire(p) for p in paths], "digest": digest}).encode()
        response = self._request("POST", "/v1/batch", {"Content-Type": "application/json"}, body)
        with response:
            stream = response.stream()
            left = len(paths)
            while left:
                line = stream.readline(_GROUP_LINE_MAX)
                if not line.endswith(b"\n"):
                    raise DataServerUnreachable("a batch response from the data server broke off")
                headers = decode_batch_group(line)
                if not 0 < len(headers) <= left:
                    raise DataServerUnreachable(
                        "a batch response from the data server does not match the request"
                    )
                left -= len(headers)
                names, sizes, mtimes = _group_entries(headers, line)
                total = sum(sizes)
                if total > len(sizes) * BATCH_MAX_FILE:
                    raise DataServerUnreachable(
                        "a batch group from the data server is larger than a batch may be"
                    )
                payload = stream.read(total) if total else b""
                if len(payload) != total:
                    raise DataServerUnreachable("a batch response from the data server broke off")
                offset = 0
                for header, name, size, mtime in zip(headers, names, sizes, mtimes, strict=True):
                    if "error" in header:
                        yield BatchFile(name, error=error_from_body(header["error"]))
                        continue
                    data = payload[offset : offset + size]
                    offset += size
                    yield BatchFile(name, size, mtime, data, header.get("digest"))
            # Read to the end of the body (its last, empty chunk), so the connection goes back to the
            # pool: otherwise every batch paid for a new connection on both sides.
            if stream.read(1):
                raise DataServerUnreachable("a batch response from the data server has bytes after its files")

    def _request(
        self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> HttpResponse:
        token = self._token() if callable(self._token) else self._token
        sent = {"Authorization": f"Bearer {token}", PROTOCOL_HEADER: _PROTOCOL, **(headers or {})}
        response = self._pool.request(method, target, headers=sent, body=body)
        try:
            check_protocol(response.headers.get(PROTOCOL_HEADER), server=False, where=self.base_url)
        except DataProtocolMismatch:
            response.close()
            raise
        if response.status >= 400:
            with response:
                raise _error(response)
        return response

    def _json(self, method: str, target: str) -> dict[str, Any]:
        with self._request(method, target) as response:
            parsed = json.loads(response.read())
        if not isinstance(parsed, dict):
            raise DataServerUnreachable("the data server's answer is not a JSON object")
        return parsed


def _error(response: HttpResponse) -> BeamlinkError:
    try:
        text = response.read(1 << 20)
        payload: object = json.loads(text)
    except (ValueError, BeamlinkError):
        payload = f"status {response.status}"
    return error_from_payload(response.status, payload)


def _group_entries(headers: list[dict[str, Any]], line: bytes) -> tuple[list[str], list[int], list[float]]:
    """The names, sizes and mtimes of a batch group's headers (0 for a file that could not be read)."""
    malformed = f"the data server sent a malformed batch header: {line[:200]!r}"
    try:
        names = [from_wire(header["path"]) for header in headers]
        sizes = [0 if "error" in header else int(header["size"]) for header in headers]
        mtimes = [0.0 if "error" in header else float(header["mtime"]) for header in headers]
    except (KeyError, TypeError, ValueError, InvalidInput):
        raise DataServerUnreachable(malformed) from None
    if min(sizes) < 0:
        raise DataServerUnreachable(malformed)
    return names, sizes, mtimes


def _content_range(response: HttpResponse, path: str) -> tuple[int, int]:
    """(file size, first byte) of a range response; a 200 is the whole file."""
    if response.status == 200:
        return int(response.headers.get("content-length", 0)), 0
    unit, _, spec = response.headers.get("content-range", "").partition(" ")
    span, _, total = spec.partition("/")
    first = span.partition("-")[0]
    if unit != "bytes" or not first.isdigit() or not total.isdigit():
        raise DataServerUnreachable(
            f"the data server sent {quoted(path)} without a usable Content-Range",
            details={"path": to_wire(path)},
        )
    return int(total), int(first)


class LocalSource:
    """A collection on this host, read directly: the same-host fast path (``copy_file_range``)."""

    def __init__(self, root: CollectionRoot, *, retry: RetryPolicy | None = None) -> None:
        self.root = root
        self.retry = retry or RetryPolicy()

    def __repr__(self) -> str:
        return f"LocalSource({self.root!r})"

    def close(self) -> None:
        """Nothing to close (for symmetry with :class:`SourceClient`)."""

    def stat(self, path: str) -> FileInfo:
        entry = stat_path(self.root, path, follow=True)
        return FileInfo("", entry.type, entry.size if entry.type == "file" else 0, entry.mtime)

    def walk(self, path: str, *, recursive: bool) -> Iterator[FileInfo]:
        return walk(self.root, path, recursive=recursive)

    def checksum(self, path: str, algorithm: str, *, start: int = 0, length: int | None = None) -> str:
        return hash_file(self.root.resolve(path), algorithm, start=start, length=length)

    def copy_file(
        self,
        path: str,
        destination: Path,
        *,
        chunk_size: int,
        algorithm: str,
        verify: bool,
        preserve_mtime: bool,
    ) -> CopyResult:
        """Copy ``path`` to ``destination`` (already confined) through a resumable partial file."""
        return copy_local(
            self.root.resolve(path),
            destination,
            chunk_size=chunk_size,
            algorithm=algorithm,
            verify=verify,
            preserve_mtime=preserve_mtime,
        )
