"""Search indexes: create, find, change, delete, list, and their roles (owner ⊃ admin ⊃ writer).

Anyone, signed in or not, may query an index: what a query returns is filtered entry by entry by
``visible_to``. Writing needs ``writer``; changing the index and its roles needs ``admin``.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from beamlink.errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied
from beamlink.protocol.search import (
    FacetRequest,
    IndexCreate,
    IndexInfo,
    IndexRoleCreate,
    IndexRoleInfo,
    IndexUpdate,
)
from beamlink.service.auth import permissions
from beamlink.service.auth.grants import grant_info, parse_principal
from beamlink.service.auth.models import Grant
from beamlink.service.auth.principal import Principal
from beamlink.service.db.base import utcnow
from beamlink.service.search.models import SearchEntry, SearchIndex

__all__ = [
    "INDEX_POLICY",
    "add_role",
    "create_index",
    "delete_index",
    "find_index",
    "index_info",
    "list_indexes",
    "list_roles",
    "remove_role",
    "require_role",
    "update_index",
]

INDEX_POLICY = permissions.Policy(
    "search_index", {"admin": frozenset({"writer"}), "writer": frozenset()}, view_role="writer"
)
_ROLE_ORDER = ("owner", "admin", "writer")


def find_index(session: Session, ref: str) -> SearchIndex:
    """The index with this id or name; NotFound naming the way to list them otherwise."""
    index = session.get(SearchIndex, ref) or session.scalar(
        select(SearchIndex).where(SearchIndex.name == ref)
    )
    if index is None:
        raise NotFound(
            f"no search index {ref!r}: list them with `beamlink search index list`",
            details={"index": ref},
        )
    return index


def _roles(session: Session, principal: Principal | None, index: SearchIndex) -> frozenset[str]:
    return permissions.roles_of(session, principal, INDEX_POLICY, index)


def user_role(session: Session, principal: Principal | None, index: SearchIndex) -> str | None:
    held = _roles(session, principal, index)
    if principal is not None and index.owner_id == principal.id:
        return "owner"
    return next((role for role in _ROLE_ORDER if role in held), None)


def require_role(session: Session, principal: Principal | None, ref: str, role: str) -> SearchIndex:
    """The index, when the caller holds ``role`` on it (PermissionDenied otherwise: the index is public)."""
    index = find_index(session, ref)
    if role not in _roles(session, principal, index):
        raise PermissionDenied(
            f"you may search index {index.name!r} but not act as its {role}: ask its owner "
            f"(`beamlink search index role add {index.name} user:YOU {role}`)",
            details={"index": index.name, "required_role": role},
        )
    return index


def create_index(session: Session, principal: Principal, body: IndexCreate) -> SearchIndex:
    if session.scalar(select(SearchIndex.id).where(SearchIndex.name == body.name)) is not None:
        raise AlreadyExists(
            f"a search index named {body.name!r} exists already: choose another name",
            details={"field": "name", "value": body.name},
        )
    now = utcnow()
    index = SearchIndex(
        name=body.name,
        display_name=body.display_name or body.name,
        description=body.description,
        facets=[f.model_dump(mode="json", exclude_none=True) for f in body.facets],
        owner_id=principal.id,
        created_at=now,
        updated_at=now,
    )
    session.add(index)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name
        raise AlreadyExists(f"a search index named {body.name!r} exists already") from exc
    return index


def update_index(session: Session, principal: Principal, ref: str, body: IndexUpdate) -> SearchIndex:
    index = require_role(session, principal, ref, "admin")
    for field, value in body.model_dump(mode="json", exclude_unset=True, exclude_none=True).items():
        if field == "display_name" and not value:
            value = index.name
        setattr(index, field, value)
    index.updated_at = utcnow()
    return index


def delete_index(session: Session, principal: Principal, ref: str) -> SearchIndex:
    """Delete an index and every entry in it (owner or admin)."""
    index = require_role(session, principal, ref, "admin")
    permissions.delete_grants(session, INDEX_POLICY, [index.id])
    session.delete(index)
    return index


def list_indexes(session: Session, principal: Principal | None) -> list[IndexInfo]:
    """Every index (anyone may query any), the caller's own and those they write to first."""
    indexes = list(session.scalars(select(SearchIndex).order_by(SearchIndex.name)))
    infos = [index_info(session, principal, index) for index in indexes]
    return sorted(infos, key=lambda info: (info.user_role is None, info.name))


def index_info(session: Session, principal: Principal | None, index: SearchIndex) -> IndexInfo:
    subjects, entries = session.execute(
        select(func.count(func.distinct(SearchEntry.subject)), func.count()).where(
            SearchEntry.index_id == index.id
        )
    ).one()
    return IndexInfo(
        id=index.id,
        name=index.name,
        display_name=index.display_name,
        description=index.description,
        facets=[FacetRequest.model_validate(f) for f in index.facets or []],
        owner_id=index.owner_id,
        owner_name=index.owner.username if index.owner else None,
        user_role=user_role(session, principal, index),
        num_subjects=subjects,
        num_entries=entries,
        created_at=index.created_at,
        updated_at=index.updated_at,
    )


def _role_info(session: Session, grant_row: Grant) -> IndexRoleInfo:
    info = grant_info(session, grant_row)
    return IndexRoleInfo(
        id=info.id,
        principal=f"{info.principal_type}:{info.principal_name or info.principal_id}",
        role=info.role,
        created_at=info.created_at,
    )


def add_role(session: Session, principal: Principal, ref: str, body: IndexRoleCreate) -> IndexRoleInfo:
    index = require_role(session, principal, ref, "admin")
    kind, principal_id = parse_principal(session, body.principal, field="principal")
    if kind not in ("user", "group"):
        raise InvalidInput(
            f"index roles go to users and groups, not {kind!r}: anyone may already search the index",
            details={"field": "principal"},
        )
    row = permissions.grant(
        session,
        INDEX_POLICY,
        index,
        principal_type=kind,
        principal_id=principal_id,
        role=body.role,
        created_by=principal.id,
    )
    return _role_info(session, row)


def list_roles(session: Session, principal: Principal, ref: str) -> list[IndexRoleInfo]:
    index = require_role(session, principal, ref, "admin")
    return [_role_info(session, row) for row in permissions.grants_for(session, INDEX_POLICY, index)]


def remove_role(session: Session, principal: Principal, ref: str, role_id: str) -> None:
    index = require_role(session, principal, ref, "admin")
    try:
        permissions.revoke(session, INDEX_POLICY, index, role_id)
    except NotFound as exc:
        raise NotFound(f"index {index.name!r} has no role {role_id}", details={"role_id": role_id}) from exc
