"""Sharing an object: add, list and remove grants through the permission layer, for any domain."""

from __future__ import annotations

from sqlalchemy.orm import Session

from beamlink.errors import InvalidInput, NotFound
from beamlink.protocol.auth import GrantCreate, GrantInfo
from beamlink.service.auth import permissions
from beamlink.service.auth.groups import find_group
from beamlink.service.auth.models import Grant, Group, User

__all__ = ["add_grant", "grant_info", "parse_principal", "resolve_principal"]


def resolve_principal(session: Session, principal_type: str, principal: str | None) -> str | None:
    """The id a grant stores for a named principal (None for public and all_authenticated_users)."""
    if principal_type in (permissions.PUBLIC, permissions.ALL_AUTHENTICATED):
        return None
    if not principal:
        raise InvalidInput(f"a {principal_type} grant needs `principal`", details={"field": "principal"})
    if principal_type == "user":
        user = User.by_username(session, principal) or session.get(User, principal)
        if user is None:
            raise NotFound(
                f"no user named {principal!r}: check with `beamlink user list`",
                details={"field": "principal"},
            )
        return user.id
    group = find_group(session, principal)
    if group is None:
        raise NotFound(f"no group named {principal!r}", details={"field": "principal"})
    return group.id


def add_grant(
    session: Session, policy: permissions.Policy, obj: permissions.Owned, body: GrantCreate, created_by: str
) -> Grant:
    principal_id = resolve_principal(session, body.principal_type, body.principal)
    return permissions.grant(
        session,
        policy,
        obj,
        principal_type=body.principal_type,
        principal_id=principal_id,
        role=body.role,
        created_by=created_by,
    )


def grant_info(session: Session, row: Grant) -> GrantInfo:
    name: str | None = row.principal_type
    if row.principal_type == "user":
        user = session.get(User, row.principal_id)
        name = user.username if user else None
    elif row.principal_type == "group":
        group = session.get(Group, row.principal_id)
        name = group.name if group else None
    return GrantInfo(
        id=row.id,
        object_type=row.object_type,
        object_id=row.object_id,
        principal_type=row.principal_type,
        principal_id=row.principal_id or None,
        principal_name=name,
        role=row.role,
        created_at=row.created_at,
    )


_USER_URN = "urn:globus:auth:identity:"
_GROUP_URN = "urn:globus:groups:id:"


def parse_principal(session: Session, text: str, *, field: str) -> tuple[str, str | None]:
    """``(principal_type, principal_id)`` for one entry of a role list; NotFound/InvalidInput name it."""
    value = text.strip()
    lowered = value.lower()
    if lowered == permissions.PUBLIC:
        return permissions.PUBLIC, None
    if lowered in (permissions.ALL_AUTHENTICATED, "all_authenticated"):
        return permissions.ALL_AUTHENTICATED, None
    if lowered.startswith(_USER_URN):
        kind, name = "user", value[len(_USER_URN) :]
    elif lowered.startswith(_GROUP_URN):
        kind, name = "group", value[len(_GROUP_URN) :]
    elif ":" in value:
        kind, _, name = value.partition(":")
        kind = kind.lower()
        if kind not in ("user", "group"):
            raise InvalidInput(
                f"{field}: {text!r} is not a principal: write 'user:NAME', 'group:NAME', 'public' or "
                "'all_authenticated_users'",
                details={"field": field, "value": text},
            )
    else:
        kind, name = "user", value
    if not name:
        raise InvalidInput(f"{field}: {text!r} names nobody", details={"field": field, "value": text})
    return kind, resolve_principal(session, kind, name)
