"""``/v1/indexes``: search indexes, their roles, ingest, query, read and delete records.

Thin routes over :mod:`beamlink.service.search`. Queries need no token: an anonymous caller sees public
entries only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from beamlink.protocol.search import (
    MAX_QUERY_LENGTH,
    DeleteByQuery,
    DeleteBySubjects,
    DeleteResult,
    IndexCreate,
    IndexInfo,
    IndexRoleCreate,
    IndexRoleInfo,
    IndexUpdate,
    IngestRequest,
    IngestResult,
    SearchRequest,
    SearchResult,
    SubjectInfo,
)
from beamlink.service.api.deps import CurrentPrincipal, OptionalPrincipal, State
from beamlink.service.search import indexes, query, records

__all__ = ["router"]

router = APIRouter(prefix="/v1/indexes", tags=["search"])


@router.post("", response_model=IndexInfo, status_code=status.HTTP_201_CREATED, summary="Create an index.")
def create_index(state: State, principal: CurrentPrincipal, body: IndexCreate) -> IndexInfo:
    with state.db.transaction() as session:
        return indexes.index_info(session, principal, indexes.create_index(session, principal, body))


@router.get("", response_model=list[IndexInfo], summary="Every index (yours first).")
def list_indexes(state: State, principal: OptionalPrincipal) -> list[IndexInfo]:
    with state.db.transaction() as session:
        return indexes.list_indexes(session, principal)


@router.get("/{index}", response_model=IndexInfo, summary="One index, by id or name.")
def get_index(state: State, principal: OptionalPrincipal, index: str) -> IndexInfo:
    with state.db.transaction() as session:
        return indexes.index_info(session, principal, indexes.find_index(session, index))


@router.patch("/{index}", response_model=IndexInfo, summary="Change an index (admins).")
def update_index(state: State, principal: CurrentPrincipal, index: str, body: IndexUpdate) -> IndexInfo:
    with state.db.transaction() as session:
        return indexes.index_info(session, principal, indexes.update_index(session, principal, index, body))


@router.delete(
    "/{index}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an index and its records (admins)."
)
def delete_index(state: State, principal: CurrentPrincipal, index: str) -> Response:
    with state.db.transaction() as session:
        indexes.delete_index(session, principal, index)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{index}/roles", response_model=list[IndexRoleInfo], summary="Admins and writers (admins).")
def list_roles(state: State, principal: CurrentPrincipal, index: str) -> list[IndexRoleInfo]:
    with state.db.transaction() as session:
        return indexes.list_roles(session, principal, index)


@router.post(
    "/{index}/roles",
    response_model=IndexRoleInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Make a user or group an admin or writer (admins).",
)
def add_role(state: State, principal: CurrentPrincipal, index: str, body: IndexRoleCreate) -> IndexRoleInfo:
    with state.db.transaction() as session:
        return indexes.add_role(session, principal, index, body)


@router.delete("/{index}/roles/{role_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a role.")
def remove_role(state: State, principal: CurrentPrincipal, index: str, role_id: str) -> Response:
    with state.db.transaction() as session:
        indexes.remove_role(session, principal, index, role_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{index}/ingest",
    response_model=IngestResult,
    summary="Add or replace records (writers): one {subject, entries}, {records: [...]}, or Globus's "
    "{ingest_type, ingest_data}. All or nothing; done when it answers.",
)
def ingest(state: State, principal: CurrentPrincipal, index: str, body: IngestRequest) -> IngestResult:
    with state.db.transaction() as session:
        return records.ingest(
            session, principal, index, body, max_entry_bytes=state.settings.search_max_entry_bytes
        )


@router.post("/{index}/query", response_model=SearchResult, summary="Search (no token: public entries).")
def post_query(state: State, principal: OptionalPrincipal, index: str, body: SearchRequest) -> SearchResult:
    with state.db.transaction() as session:
        return query.search(session, principal, index, body, concurrent_facets=True)


@router.get("/{index}/query", response_model=SearchResult, summary="Search with ?q= (simple form).")
def get_query(
    state: State,
    principal: OptionalPrincipal,
    index: str,
    q: Annotated[str, Query(max_length=MAX_QUERY_LENGTH)] = "",
    limit: Annotated[int, Query(ge=0, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> SearchResult:
    with state.db.transaction() as session:
        request = SearchRequest(q=q, limit=limit, offset=offset)
        return query.search(session, principal, index, request, concurrent_facets=True)


@router.get("/{index}/subject", response_model=SubjectInfo, summary="One record's entries you may see.")
def get_subject(
    state: State,
    principal: OptionalPrincipal,
    index: str,
    subject: Annotated[str, Query(min_length=1, max_length=512)],
    bypass_visible_to: bool = False,
) -> SubjectInfo:
    with state.db.transaction() as session:
        return records.get_subject(session, principal, index, subject, bypass_visible_to=bypass_visible_to)


@router.delete("/{index}/subject", response_model=DeleteResult, summary="Delete a record or one entry.")
def delete_subject(
    state: State,
    principal: CurrentPrincipal,
    index: str,
    subject: Annotated[str, Query(min_length=1, max_length=512)],
    entry_id: Annotated[str | None, Query(description="Only this entry (omit: every entry).")] = None,
) -> DeleteResult:
    with state.db.transaction() as session:
        if entry_id is not None:
            return records.delete_entry(session, principal, index, subject, entry_id)
        return records.delete_subjects(session, principal, index, [subject])


@router.post("/{index}/delete_by_subject", response_model=DeleteResult, summary="Delete records (writers).")
def delete_by_subject(
    state: State, principal: CurrentPrincipal, index: str, body: DeleteBySubjects
) -> DeleteResult:
    with state.db.transaction() as session:
        return records.delete_subjects(session, principal, index, body.subjects)


@router.post(
    "/{index}/delete_by_query", response_model=DeleteResult, summary="Delete matching entries (writers)."
)
def delete_by_query(
    state: State, principal: CurrentPrincipal, index: str, body: DeleteByQuery
) -> DeleteResult:
    with state.db.transaction() as session:
        return query.delete_by_query(session, principal, index, body)
