"""``/v1/collections``: thin routes over :mod:`beamlink.service.transfer`.

File operations are asked of the collection's agent over its WebSocket; the routes check access first
(reader to look, writer to change, at the path concerned).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import anyio.to_thread
import httpx
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from beamlink.errors import CollectionOffline, error_from_payload
from beamlink.protocol import data_tokens
from beamlink.protocol.collections import (
    CollectionInfo,
    CollectionRegister,
    CollectionRegistered,
    CollectionUpdate,
    DirectoryPage,
    FileEntry,
    MakeDirectory,
    Rename,
    RuleCreate,
    RuleInfo,
)
from beamlink.protocol.common import Page
from beamlink.service.api.deps import CurrentPrincipal, OptionalPrincipal, PageParams, State
from beamlink.service.auth.principal import Principal
from beamlink.service.db.paging import paginate
from beamlink.service.state import ServiceState
from beamlink.service.transfer import collections
from beamlink.service.transfer.models import Collection

__all__ = ["router"]

T = TypeVar("T")
router = APIRouter(prefix="/v1/collections", tags=["transfer"])

_OP_TIMEOUT = 60.0
_LS_LIMIT = 10_000


async def _in_thread(state: ServiceState, fn: Callable[[Session], T]) -> T:
    def run() -> T:
        with state.db.transaction() as session:
            return fn(session)

    return await anyio.to_thread.run_sync(run)


@router.post(
    "",
    response_model=CollectionRegistered,
    status_code=status.HTTP_201_CREATED,
    summary="Register your collection by name (created the first time); returns a fresh agent secret.",
)
def register_collection(
    state: State, principal: CurrentPrincipal, body: CollectionRegister
) -> CollectionRegistered:
    with state.db.transaction() as session:
        collection, secret = collections.register_collection(session, principal, body)
        return collections.registered_info(collection, secret)


@router.put(
    "/{collection_id}",
    response_model=CollectionRegistered,
    summary="Register an existing collection again (each start); only its owner may.",
)
def reregister_collection(
    state: State, principal: CurrentPrincipal, collection_id: str, body: CollectionRegister
) -> CollectionRegistered:
    with state.db.transaction() as session:
        collection, secret = collections.register_collection(session, principal, body, collection_id)
        return collections.registered_info(collection, secret)


@router.get(
    "", response_model=Page[CollectionInfo], summary="Collections you own, may use, or that are public."
)
def list_collections(
    state: State,
    principal: CurrentPrincipal,
    page: PageParams,
    owned: Annotated[bool, Query(description="Only your own.")] = False,
) -> Page[CollectionInfo]:
    with state.db.transaction() as session:
        query = collections.collections_query(principal, owned_only=owned)
        rows, cursor = paginate(session, query, Collection, page.limit, page.cursor)
        return Page(items=[collections.collection_info(c) for c in rows], next_cursor=cursor)


@router.get(
    "/{collection}", response_model=CollectionInfo, summary="A collection (by id, or your own by name)."
)
def get_collection(state: State, principal: OptionalPrincipal, collection: str) -> CollectionInfo:
    with state.db.transaction() as session:
        return collections.collection_info(collections.get_collection(session, principal, collection))


@router.patch(
    "/{collection}", response_model=CollectionInfo, summary="Change the description or public read."
)
def update_collection(
    state: State, principal: CurrentPrincipal, collection: str, body: CollectionUpdate
) -> CollectionInfo:
    with state.db.transaction() as session:
        return collections.collection_info(
            collections.update_collection(session, principal, collection, body)
        )


@router.delete(
    "/{collection}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a collection (its owner)."
)
def delete_collection(
    state: State,
    principal: CurrentPrincipal,
    collection: str,
    force: Annotated[bool, Query(description="Delete even while it is online.")] = False,
) -> Response:
    with state.db.transaction() as session:
        collections.delete_collection(session, principal, collection, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- access rules ------------------------------------------------------------------------------------


@router.get("/{collection}/rules", response_model=list[RuleInfo], summary="Access rules (the owner).")
def list_rules(state: State, principal: CurrentPrincipal, collection: str) -> list[RuleInfo]:
    with state.db.transaction() as session:
        return collections.list_rules(session, principal, collection)


@router.post(
    "/{collection}/rules",
    response_model=RuleInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Give a user or group read or read-write access under a path.",
)
def add_rule(state: State, principal: CurrentPrincipal, collection: str, body: RuleCreate) -> RuleInfo:
    with state.db.transaction() as session:
        return collections.add_rule(session, principal, collection, body)


@router.delete(
    "/{collection}/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a rule."
)
def delete_rule(state: State, principal: CurrentPrincipal, collection: str, rule_id: str) -> Response:
    with state.db.transaction() as session:
        collections.delete_rule(session, principal, collection, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- operations --------------------------------------------------------------------------------------


async def _operate(
    state: ServiceState,
    principal: Principal | None,
    ref: str,
    role: str,
    paths: list[str],
    op: str,
    args: dict[str, Any],
) -> Any:
    def check(session: Session) -> tuple[str, str]:
        found = collections.collection_for_paths(session, principal, ref, role, paths)
        return found.id, found.name

    collection_id, name = await _in_thread(state, check)
    return await state.collections.request(collection_id, name, op, args, timeout=_OP_TIMEOUT)


@router.get("/{collection}/ls", response_model=DirectoryPage, summary="One page of a directory listing.")
async def list_directory(
    state: State,
    principal: OptionalPrincipal,
    collection: str,
    path: str = "",
    after: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=_LS_LIMIT)] = 1000,
) -> DirectoryPage:
    result = await _operate(
        state, principal, collection, "reader", [path], "ls", {"path": path, "after": after, "limit": limit}
    )
    return DirectoryPage.model_validate(result)


@router.get("/{collection}/stat", response_model=FileEntry, summary="What is at a path.")
async def stat_path(state: State, principal: OptionalPrincipal, collection: str, path: str = "") -> FileEntry:
    result = await _operate(state, principal, collection, "reader", [path], "stat", {"path": path})
    return FileEntry.model_validate(result)


@router.post("/{collection}/mkdir", response_model=FileEntry, status_code=status.HTTP_201_CREATED)
async def make_directory(
    state: State, principal: CurrentPrincipal, collection: str, body: MakeDirectory
) -> FileEntry:
    """Make a directory (and its parents with ``parents``)."""
    result = await _operate(state, principal, collection, "writer", [body.path], "mkdir", body.model_dump())
    return FileEntry.model_validate(result)


@router.post("/{collection}/rename", response_model=FileEntry)
async def rename(state: State, principal: CurrentPrincipal, collection: str, body: Rename) -> FileEntry:
    """Rename or move within the collection (never over an existing path unless ``overwrite``)."""
    result = await _operate(
        state, principal, collection, "writer", [body.old_path, body.new_path], "rename", body.model_dump()
    )
    return FileEntry.model_validate(result)


# -- download ----------------------------------------------------------------------------------------

_PASSED_HEADERS = ("content-length", "content-range", "accept-ranges", "etag", "last-modified")


@router.get(
    "/{collection}/files/{path:path}",
    response_class=StreamingResponse,
    summary="Download a file (streamed, with Range): readers, or anyone on a public-read collection.",
)
async def download(
    state: State, principal: OptionalPrincipal, collection: str, path: str, request: Request
) -> Response:
    """The one place bytes pass through the service: the service signs a read token for this one path and
    streams the file from the agent's data server, so a browser (the portal) needs only its own login."""

    def check(session: Session) -> tuple[str, str, str | None, str]:
        normal = collections.normalize_path(path)
        found = collections.get_collection(session, principal, collection, "reader", path=normal)
        return found.id, found.name, found.data_url, found.data_key

    collection_id, name, data_url, key = await _in_thread(state, check)
    if not state.collections.online(collection_id) or not data_url:
        raise CollectionOffline(
            f"collection {name!r} is not connected: start its agent to download from it",
            details={"collection_id": collection_id},
        )
    token = data_tokens.sign(
        bytes.fromhex(key), collection_id=collection_id, path=path, operations=["read"], ttl_seconds=300
    )
    headers = {"Authorization": f"Bearer {token}"}
    if "range" in request.headers:
        headers["Range"] = request.headers["range"]
    client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=None))
    try:
        upstream = await client.send(
            client.build_request("GET", f"{data_url}/v1/files/{quote(path)}", headers=headers), stream=True
        )
    except httpx.HTTPError as exc:
        await client.aclose()
        raise CollectionOffline(
            f"collection {name!r} data server at {data_url} cannot be reached ({exc}): is its `listen` "
            "address reachable from the service?",
            details={"collection_id": collection_id},
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
    media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=passed,
        media_type=media_type,
        background=BackgroundTask(close),
    )
