"""Bytes of one file, streamed from its collection's data server through the service.

The one place bytes pass through the service (the API's download route and the portal's file route both
end here, after each has decided the caller may have the file): the service signs a read token for this
one path and relays the agent's answer, Range requests included, so a browser needs only its own login.

An https data server (a collection with ``tls`` in its config) is verified against the CA bundle of the
``data_ca_file`` setting (``BEAMLINK_DATA_CA_FILE``), or the system's CAs: the token the service signs
must not go to a server that merely claims the collection's address.
"""

from __future__ import annotations

import functools
import mimetypes
import ssl
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from beamlink.config import load_settings
from beamlink.errors import CollectionOffline, ServiceUnavailable, error_from_payload
from beamlink.protocol import data_tokens
from beamlink.service.transfer.links import CollectionLinks
from beamlink.service.transfer.models import Collection

__all__ = ["FILE_CSP", "FileSource", "stream_file"]

_PASSED_HEADERS = ("content-length", "content-range", "accept-ranges", "etag", "last-modified")
_TOKEN_TTL_SECONDS = 300
# The bytes are a collection owner's, served from the service's own origin (the portal's too): an HTML or
# SVG file opened in a browser must not run script there, so it gets a sandbox of its own.
FILE_CSP = "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox"


@functools.cache
def _data_tls() -> ssl.SSLContext:
    """The context for https data servers: ``data_ca_file``'s CAs (only those), or the system's.

    Built once per process from the settings as the service read them at startup (the setting is not
    one a caller overrides in code; changing it takes a restart). httpx would otherwise trust certifi's
    bundle, which no site CA is in, and would load it again for every download.
    """
    ca_file = load_settings().data_ca_file
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


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

    Raises CollectionOffline when the agent is away or its data server cannot be reached,
    ServiceUnavailable when an https data server's certificate is not one the service trusts, and the
    data server's own error (NotFound, PathOutsideCollection, ...) when it refuses.
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
    https = source.data_url.startswith("https:")
    client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=None), verify=_data_tls() if https else True)
    url = f"{source.data_url}/v1/files/{quote(path)}"
    try:
        upstream = await client.send(client.build_request("GET", url, headers=headers), stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        rejected = _certificate_problem(exc)
        if rejected is not None:
            raise ServiceUnavailable(
                f"the service does not accept the TLS certificate of collection {source.name!r}'s data "
                f"server at {source.data_url} ({rejected}): set BEAMLINK_DATA_CA_FILE (data_ca_file) to "
                "the PEM file of the CA that signed it and restart the service",
                details={"collection_id": source.collection_id, "data_url": source.data_url},
            ) from exc
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


def _certificate_problem(exc: BaseException) -> str | None:
    """Why the data server's certificate was rejected, when that is what ``exc`` (an httpx error wrapping
    the ssl one) is about; None for other failures (refused, timed out, ...), which mean offline."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return (seen.verify_message or seen.reason or str(seen)).rstrip(".")
        seen = seen.__cause__ or seen.__context__
    return None
