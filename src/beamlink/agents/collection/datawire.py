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

A batch response is a sequence of groups of files, in request order (up to 128 files a group). A group is
one JSON line, the array of its files' headers, then the bytes of those files back to back, exactly
``size`` bytes each. A path that cannot be read has ``error`` (the usual error body) and no bytes::

    [{"path": "a/b.dat", "size": 4096, "mtime": 1718000000.25, "digest": "9f0c..."},
     {"path": "a/gone.dat", "error": {"code": "SOURCE_NOT_FOUND", "message": "...", "details": {...}}},
     {"path": "a/c.dat", "size": 10, "mtime": 1718000000.5, "digest": "77aa..."}]\n<4096 bytes><10 bytes>

(one header line per group rather than per file: parsing a JSON line per 4 KiB file was a fifth of a
small-file pull's CPU on either side).

A walk that fails after it started ends with a line ``{"error": {...}}`` instead of an entry.

**Versions.** Every response carries ``X-Beamlink-Data-Protocol: <PROTOCOL_VERSION>``, and the client
sends its own in every request. Either side refuses a peer of another version with
DataProtocolMismatch (409, not retried), naming both versions and the fix, instead of misreading its
bytes. A server without the header predates versions (protocol 1: a JSON line per file in a batch). A
request without it is answered as usual: the service's download route and plain HTTP clients only read
file ranges, which every version serves alike. Raise the version with every incompatible change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii
from typing import Any
from urllib.parse import quote

from beamlink.agents.collection.paths import from_wire, to_wire
from beamlink.agents.collection.plan import FileInfo
from beamlink.errors import BeamlinkError, DataProtocolMismatch, InvalidInput, error_from_payload

__all__ = [
    "BATCH_MAX_BYTES",
    "BATCH_MAX_FILE",
    "BATCH_MAX_PATHS",
    "MTIME_HEADER",
    "PROTOCOL_HEADER",
    "PROTOCOL_VERSION",
    "check_protocol",
    "decode_batch_group",
    "decode_infos",
    "encode_batch_error",
    "encode_batch_group",
    "encode_batch_header",
    "encode_info",
    "error_from_body",
    "etag",
    "url_path",
]

MTIME_HEADER = "x-beamlink-mtime"
PROTOCOL_HEADER = "x-beamlink-data-protocol"
PROTOCOL_VERSION = 2
"""This format's version (above): 2 since batches carry one header line per group of files."""

BATCH_MAX_PATHS = 10_000
BATCH_MAX_FILE = 16 << 20
"""Largest file a batch carries: bigger ones go by range GETs (and must not sit whole in memory)."""
BATCH_MAX_BYTES = 4 << 20
"""Largest request body of ``POST /v1/batch`` (the path list)."""


def check_protocol(announced: str | None, *, server: bool, where: str) -> None:
    """DataProtocolMismatch unless the peer's ``announced`` version (its protocol header, None when it
    sent none) is ours. ``server``: whether this side is the data server; ``where`` names the server."""
    if announced is not None and announced.strip() == str(PROTOCOL_VERSION):
        return
    theirs = "1 (it announces no version)" if announced is None else repr(announced.strip())
    if server:
        mine, peer = "this data server", "the pulling agent"
    else:
        mine, peer = "this agent", f"the data server at {where}"
    raise DataProtocolMismatch(
        f"{peer} speaks data protocol {theirs} and {mine} speaks {PROTOCOL_VERSION}: the two collection "
        "agents run different beamlink versions; install the same version on both hosts and restart their "
        "collections (`beamlink collection restart NAME`)",
        details={"peer_version": announced, "version": PROTOCOL_VERSION},
    )


def url_path(route: str, path: str) -> str:
    """``/v1/<route>/<path>`` with ``path`` (a surrogateescape collection path) in quoted wire form."""
    return f"/v1/{route}/" + quote(to_wire(path).lstrip("/"), safe="/")


def etag(size: int, mtime_ns: int) -> str:
    """The ETag of a file of ``size`` bytes last modified at ``mtime_ns``."""
    return f'"{size:x}-{mtime_ns:x}"'


def encode_info(info: FileInfo) -> bytes:
    """One NDJSON line of a walk."""
    # Formatted by hand: json.dumps of a dict cost more than the walk's own lstat. repr() of a finite
    # float is valid JSON, and mtimes are finite.
    return (
        f'{{"path":{_json_string(to_wire(info.path))},"type":"{info.type}","size":{info.size},'
        f'"mtime":{info.mtime!r}}}\n'
    ).encode()


def encode_batch_header(path: str, size: int, mtime: float, digest: str | None) -> bytes:
    """The header of one readable file in a batch group (``path`` in wire form)."""
    shown = "null" if digest is None else f'"{digest}"'
    return f'{{"path":{_json_string(path)},"size":{size},"mtime":{mtime!r},"digest":{shown}}}'.encode()


def encode_batch_error(path: str, error: BeamlinkError) -> bytes:
    """The header of a file of a batch group that could not be read."""
    return json.dumps({"path": path, "error": error.to_dict()}, separators=(",", ":")).encode()


def encode_batch_group(headers: list[bytes], data: list[bytes]) -> bytes:
    """One group of a batch response: the header line, then the files' bytes."""
    return b"[" + b",".join(headers) + b"]\n" + b"".join(data)


def decode_batch_group(line: bytes) -> list[dict[str, Any]]:
    """The headers of a batch group's line (InvalidInput when it is not an array of objects)."""
    try:
        headers = _decode(line.decode())
    except ValueError:
        headers = None
    if not isinstance(headers, list) or not all(isinstance(h, dict) for h in headers):
        raise InvalidInput(f"the data server sent a malformed batch group header: {line[:200]!r}")
    return headers


def decode_infos(lines: bytes) -> Iterator[FileInfo]:
    """The FileInfos of whole walk lines (a block of them, parsed as one JSON array: parsing line by
    line cost a third of a small-file pull's own CPU); a line holding ``error`` raises that error."""
    try:
        bodies: list[dict[str, Any]] = json.loads(b"[" + b",".join(lines.splitlines()) + b"]")
    except ValueError as exc:
        raise InvalidInput(f"the data server sent a malformed walk line: {lines[:200]!r}") from exc
    for body in bodies:
        try:
            if "error" in body:
                raise error_from_body(body["error"])
            yield FileInfo(from_wire(body["path"]), body["type"], int(body["size"]), float(body["mtime"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"the data server sent a malformed walk line: {body!r:.200}") from exc


_json_string = encode_basestring_ascii
"""A str as a JSON string literal (the C encoder json.dumps uses, without its per-call set-up)."""
_decode = json.JSONDecoder().decode


def error_from_body(body: Any) -> BeamlinkError:
    """The error an error body (``{"code", "message", "details"}``) inside a stream stands for."""
    return error_from_payload(500, body)
