"""Requests to the data server, parsed: the route, the collection path, the query, a byte range, a batch.

Kept apart from :mod:`.dataserver` so the parsing (where malformed input is refused) reads on its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote_to_bytes

from starlette.types import Message, Receive, Scope

from beamlink.agents.collection.checksums import check_algorithm
from beamlink.agents.collection.datawire import BATCH_MAX_PATHS
from beamlink.agents.collection.paths import from_wire, normalize
from beamlink.errors import InvalidInput, PayloadTooLarge, RouteNotFound

__all__ = [
    "ROUTES",
    "DataRequest",
    "RangeNotSatisfiable",
    "batch_request",
    "groups",
    "parse_range",
    "parse_request",
    "read_body",
]

ROUTES = frozenset({"files", "stat", "list", "walk", "checksum", "batch"})
_BATCH_GROUP_FILES = 128


class RangeNotSatisfiable(InvalidInput):
    """The requested byte range starts past the end of the file."""

    code = "RANGE_NOT_SATISFIABLE"
    status = 416


@dataclass(frozen=True, slots=True)
class DataRequest:
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


def parse_request(scope: Scope) -> DataRequest:
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    if not raw.startswith(b"/v1/"):
        raise RouteNotFound(f"no data server route {raw[:200].decode('latin-1')}; routes start with /v1/")
    route_bytes, _, rest = raw[4:].partition(b"/")
    route = route_bytes.decode("latin-1")
    if route not in ROUTES:
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
    return DataRequest(scope["method"], route, path, query, headers)


def parse_range(header: bytes | None, size: int) -> tuple[int, int, bool]:
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


async def read_body(receive: Receive, limit: int) -> bytes:
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


def batch_request(body: bytes) -> tuple[list[str], str | None]:
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


def groups(paths: list[str]) -> Iterator[list[str]]:
    for index in range(0, len(paths), _BATCH_GROUP_FILES):
        yield paths[index : index + _BATCH_GROUP_FILES]
