"""``/v1/collections``: thin routes over :mod:`beamlink.service.transfer`.

File operations are asked of the collection's agent over its WebSocket; the routes check access first
(reader to look, writer to change, at the path concerned).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

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
from beamlink.service.transfer.streaming import FileSource, stream_file

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


@router.get(
    "/{collection}/files/{path:path}",
    response_class=StreamingResponse,
    summary="Download a file (streamed, with Range): readers, or anyone on a public-read collection.",
)
async def download(
    state: State, principal: OptionalPrincipal, collection: str, path: str, request: Request
) -> Response:
    """Streamed from the agent's data server by :func:`~beamlink.service.transfer.streaming.stream_file`,
    so a browser (the portal) needs only its own login."""

    def check(session: Session) -> tuple[FileSource, str]:
        normal = collections.normalize_path(path)
        found = collections.get_collection(session, principal, collection, "reader", path=normal)
        return FileSource.of(found), normal

    source, normal = await _in_thread(state, check)
    return await stream_file(state.collections, source, normal, range_header=request.headers.get("range"))
