"""Bytes of one file, streamed from its collection's data server through the service.

The one place bytes pass through the service (the API's download route and the portal's file route both
end here, after each has decided the caller may have the file): the service signs a read token for this
one path and relays the agent's answer, Range requests included, so a browser needs only its own login.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from beamlink.errors import CollectionOffline, error_from_payload
from beamlink.protocol import data_tokens
from beamlink.service.transfer.links import CollectionLinks
from beamlink.service.transfer.models import Collection

__all__ = ["FILE_CSP", "FileSource", "stream_file"]

_PASSED_HEADERS = ("content-length", "content-range", "accept-ranges", "etag", "last-modified")
_TOKEN_TTL_SECONDS = 300
# The bytes are a collection owner's, served from the service's own origin (the portal's too): an HTML or
# SVG file opened in a browser must not run script there, so it gets a sandbox of its own.
FILE_CSP = "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox"


@dataclass(frozen=True)
class FileSource:
    """What streaming needs of a collection row, read inside the transaction that authorised the caller."""

    collection_id: str
    name: str
    data_url: str | None
    data_key: str

    @classmethod
    def of(cls, collection: Collection) -> FileSource:
        return cls(collection.id, collection.name, collection.data_url, collection.data_key)


async def stream_file(
    links: CollectionLinks,
    source: FileSource,
    path: str,
    *,
    range_header: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """Stream ``path`` (normalized, already authorised) from the collection's data server.

    Raises CollectionOffline when the agent is away or its data server cannot be reached, and the data
    server's own error (NotFound, PathOutsideCollection, ...) when it refuses.
    """
    if not links.online(source.collection_id) or not source.data_url:
        raise CollectionOffline(
            f"collection {source.name!r} is not connected: start its agent to download from it",
            details={"collection_id": source.collection_id},
        )
    token = data_tokens.sign(
        bytes.fromhex(source.data_key),
        collection_id=source.collection_id,
        path=path,
        operations=["read"],
        ttl_seconds=_TOKEN_TTL_SECONDS,
    )
    headers = {"Authorization": f"Bearer {token}"}
    if range_header:
        headers["Range"] = range_header
    client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=None))
    url = f"{source.data_url}/v1/files/{quote(path)}"
    try:
        upstream = await client.send(client.build_request("GET", url, headers=headers), stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        raise CollectionOffline(
            f"collection {source.name!r} data server at {source.data_url} cannot be reached ({exc}): is its "
            "`listen` address reachable from the service?",
            details={"collection_id": source.collection_id},
        ) from exc
    if upstream.status_code >= 400:
        body = await upstream.aread()
        await upstream.aclose()
        await client.aclose()
        try:
            payload = httpx.Response(upstream.status_code, content=body).json()
        except ValueError:
            payload = body.decode(errors="replace")
        raise error_from_payload(upstream.status_code, payload)

    async def close() -> None:
        await upstream.aclose()
        await client.aclose()

    passed = {k: v for k, v in upstream.headers.items() if k.lower() in _PASSED_HEADERS}
    filename = path.rsplit("/", 1)[-1]
    passed["content-disposition"] = f"inline; filename*=UTF-8''{quote(filename)}"
    passed["content-security-policy"] = FILE_CSP
    passed["x-content-type-options"] = "nosniff"
    passed.update(extra_headers or {})
    media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=passed,
        media_type=media_type,
        background=BackgroundTask(close),
    )
