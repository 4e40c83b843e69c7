"""Pages anyone may open: search, a record, the files records publish; and the portal's 404 page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from beamlink.errors import NotFound
from beamlink.protocol.search import MAX_QUERY_LENGTH
from beamlink.service.api.deps import State
from beamlink.service.portal import search_views
from beamlink.service.portal.files import authorise_file
from beamlink.service.portal.pages import PortalRoute, render
from beamlink.service.portal.session import OptionalVisitor
from beamlink.service.transfer.streaming import FileSource, stream_file

__all__ = ["fallback_router", "router"]

router = APIRouter(prefix="/portal", route_class=PortalRoute, include_in_schema=False)
# Registered last: any other /portal path is the portal's own 404 page, not the API's JSON.
fallback_router = APIRouter(prefix="/portal", route_class=PortalRoute, include_in_schema=False)

_MAX_PAGE = 10_000 // search_views.PER_PAGE


@router.get("/search")
def search(
    request: Request,
    state: State,
    found: OptionalVisitor,
    index: str | None = None,
    q: Annotated[str, Query(max_length=MAX_QUERY_LENGTH)] = "",
    f: Annotated[list[str] | None, Query(max_length=50)] = None,
    page: Annotated[int, Query(ge=1, le=_MAX_PAGE)] = 1,
) -> Response:
    with state.db.transaction() as session:
        data = search_views.search_page(
            session,
            found.principal,
            index=index or None,
            q=q,
            chosen=search_views.parse_filters(f or []),
            page=page,
        )
    return render(request, "search.html", title="Search", section="search", view=data)


@router.get("/records/{index}/{subject:path}")
def record(request: Request, state: State, found: OptionalVisitor, index: str, subject: str) -> Response:
    with state.db.transaction() as session:
        data = search_views.record_page(session, found.principal, index, subject)
    search_url = f"/portal/search?index={quote(data.index.name)}"
    return render(
        request, "record.html", title=data.title, section="search", record=data, search_url=search_url
    )


@router.get("/files/{collection}/{path:path}")
async def file(
    request: Request, state: State, found: OptionalVisitor, collection: str, path: str, download: bool = False
) -> Response:
    def check() -> tuple[FileSource, str]:
        with state.db.transaction() as session:
            return authorise_file(session, found.principal, collection, path)

    source, normal = await anyio.to_thread.run_sync(check)
    name = normal.rsplit("/", 1)[-1]
    headers = {"Cache-Control": "private, max-age=300"}
    if download:
        headers["content-disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
    return await stream_file(
        state.collections, source, normal, range_header=request.headers.get("range"), extra_headers=headers
    )


@fallback_router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_found(request: Request, found: OptionalVisitor, rest: str) -> Response:
    raise NotFound(f"there is no page at {request.url.path}", details={"path": request.url.path})
