"""The data plane's wire format, shared by the data server and the source client (defined once).

Routes (``{path}`` is a collection path in wire form, URL-quoted; ``""`` is the root)::

    GET  /v1/files/{path}[?digest=ALG]          file bytes; one Range "bytes=a-b" | "a-" | "-n"; 200/206/416
    GET  /v1/stat/{path}[?follow=1]             Entry JSON
    GET  /v1/list/{path}?after=&limit=          Page JSON (fsops.list_directory)
    GET  /v1/walk/{path}?recursive=1            NDJSON: one FileInfo per line, in walk order
    GET  /v1/checksum/{path}?algorithm=&start=&length=   {"digest", "algorithm", "start", "length", "size"}
    POST /v1/batch   {"paths": [...], "digest": ALG|null}  many small files in one response (below)

File responses carry ``ETag: "<size hex>-<mtime_ns hex>"`` (a changed source shows as a changed tag),
``X-Beamlink-Mtime`` (the float st_mtime the walk reports). With ``?digest=ALG`` the server hashes the
bytes as it sends them and keeps the digest for a while: the checksum of that very range, asked right
after, is answered from memory (verification without reading the source twice).

A batch response is a sequence of frames, one per requested path, in request order: a JSON header line,
then exactly ``size`` raw bytes. A path that cannot be read has ``error`` (the usual error body) and no
bytes::

    {"path": "a/b.dat", "size": 4096, "mtime": 1718000000.25, "digest": "9f0c..."}\\n<4096 bytes>
    {"path": "a/gone.dat", "error": {"code": "SOURCE_NOT_FOUND", "message": "...", "details": {...}}}\\n

A walk that fails after it started ends with a line ``{"error": {...}}`` instead of an entry.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from beamlink.agents.collection.paths import from_wire, to_wire
from beamlink.agents.collection.plan import FileInfo
from beamlink.errors import BeamlinkError, InvalidInput, error_from_payload

__all__ = [
    "BATCH_MAX_BYTES",
    "BATCH_MAX_FILE",
    "BATCH_MAX_PATHS",
    "MTIME_HEADER",
    "decode_info",
    "encode_info",
    "error_from_body",
    "etag",
    "url_path",
]

MTIME_HEADER = "x-beamlink-mtime"

BATCH_MAX_PATHS = 10_000
BATCH_MAX_FILE = 16 << 20
"""Largest file a batch carries: bigger ones go by range GETs (and must not sit whole in memory)."""
BATCH_MAX_BYTES = 4 << 20
"""Largest request body of ``POST /v1/batch`` (the path list)."""


def url_path(route: str, path: str) -> str:
    """``/v1/<route>/<path>`` with ``path`` (a surrogateescape collection path) in quoted wire form."""
    return f"/v1/{route}/" + quote(to_wire(path).lstrip("/"), safe="/")


def etag(size: int, mtime_ns: int) -> str:
    """The ETag of a file of ``size`` bytes last modified at ``mtime_ns``."""
    return f'"{size:x}-{mtime_ns:x}"'


def encode_info(info: FileInfo) -> bytes:
    """One NDJSON line of a walk."""
    body = {"path": to_wire(info.path), "type": info.type, "size": info.size, "mtime": info.mtime}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def decode_info(line: bytes) -> FileInfo:
    """The FileInfo of one walk line; a line holding ``error`` raises that error."""
    try:
        body: dict[str, Any] = json.loads(line)
        if "error" in body:
            raise error_from_body(body["error"])
        return FileInfo(from_wire(body["path"]), body["type"], int(body["size"]), float(body["mtime"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"the data server sent a malformed walk line: {line[:200]!r}") from exc


def error_from_body(body: Any) -> BeamlinkError:
    """The error an error body (``{"code", "message", "details"}``) inside a stream stands for."""
    return error_from_payload(500, body)
