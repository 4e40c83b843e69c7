"""The one permission layer, used by every domain.

An object has an owner (``owner_id``) and any number of grants (:class:`~.models.Grant`) that give a
role to a user, a group, ``public`` (everyone, even without a token) or ``all_authenticated_users``.
Each kind of object declares its roles in a :class:`Policy`: which roles exist and which roles each one
implies (a flow's ``administrator`` implies ``starter`` implies ``viewer``, say). Admins and owners hold
every role.

Visibility rule, the same everywhere: an object the caller holds no role on answers
:class:`~beamlink.errors.NotFound` (404), as if it did not exist; an object the caller can see but may not
change in the asked way answers :class:`~beamlink.errors.PermissionDenied` (403).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from beamlink.errors import InvalidInput, NotFound, PermissionDenied
from beamlink.service.auth.models import Grant
from beamlink.service.auth.principal import Principal

__all__ = [
    "ALL_AUTHENTICATED",
    "PUBLIC",
    "Owned",
    "Policy",
    "delete_grants",
    "grant",
    "grants_for",
    "principal_clause",
    "require",
    "revoke",
    "roles_of",
    "visible_clause",
]


class Owned(Protocol):
    id: str
    owner_id: str


@dataclass(frozen=True)
class Policy:
    """The roles of one kind of object.

    ``implies`` maps a role to the roles it includes; the lowest role (the one needed to see the object)
    is ``view_role``.
    """

    object_type: str
    implies: Mapping[str, frozenset[str]]
    view_role: str = "viewer"

    def closure(self, role: str) -> frozenset[str]:
        """The role and every role it implies, transitively."""
        seen: set[str] = set()
        stack = [role]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(self.implies.get(current, ()))
        return frozenset(seen)

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self.implies)

    def check_role(self, role: str) -> None:
        if role not in self.implies:
            raise InvalidInput(
                f"unknown role {role!r} for a {self.object_type}: use one of {sorted(self.implies)}",
                details={"field": "role", "allowed": sorted(self.implies)},
            )


PUBLIC = "public"
ALL_AUTHENTICATED = "all_authenticated_users"


def principal_clause(principal: Principal | None, model: Any = None) -> ColumnElement[bool]:
    """Rows of ``model`` (grants, or any table with ``principal_type``/``principal_id`` columns, such as
    collection access rules) that apply to this caller; anonymous callers match only public ones."""
    model = Grant if model is None else model
    clauses: list[ColumnElement[bool]] = [model.principal_type == PUBLIC]
    if principal is not None:
        clauses.append(model.principal_type == ALL_AUTHENTICATED)
        clauses.append(and_(model.principal_type == "user", model.principal_id == principal.id))
        if principal.group_ids:
            clauses.append(and_(model.principal_type == "group", model.principal_id.in_(principal.group_ids)))
    return or_(*clauses)


def roles_of(
    session: Session, principal: Principal | None, policy: Policy, obj: Owned, *, extra: Iterable[str] = ()
) -> frozenset[str]:
    """Every role the caller holds on ``obj``, implied roles included.

    ``extra`` adds roles the domain knows of itself (a group member's role in its group, say).
    """
    if principal is not None and (principal.is_admin or obj.owner_id == principal.id):
        return policy.roles | {"owner"}
    granted = [
        *extra,
        *session.scalars(
            select(Grant.role).where(
                Grant.object_type == policy.object_type,
                Grant.object_id == obj.id,
                principal_clause(principal),
            )
        ),
    ]
    held: set[str] = set()
    for role in granted:
        held |= policy.closure(role)
    return frozenset(held)


def require(
    session: Session,
    principal: Principal | None,
    policy: Policy,
    obj: Owned | None,
    role: str,
    *,
    what: str,
    extra: Iterable[str] = (),
) -> frozenset[str]:
    """Raise unless the caller holds ``role`` on ``obj``; returns the roles held.

    ``what`` names the object in the error ("group 'beamline-7'"). A missing object and an invisible one
    raise the same NotFound.
    """
    if obj is None:
        raise NotFound(f"{what} not found (or you have no access to it)")
    held = roles_of(session, principal, policy, obj, extra=extra)
    if policy.view_role not in held and "owner" not in held:
        raise NotFound(f"{what} not found (or you have no access to it)")
    if role != policy.view_role and role not in held:
        raise PermissionDenied(
            f"you may see {what} but not act as its {role}: ask its owner for the {role!r} role",
            details={"required_role": role, "held_roles": sorted(held)},
        )
    return held


def visible_clause(principal: Principal | None, policy: Policy, model: Any) -> ColumnElement[bool]:
    """A WHERE clause selecting the rows of ``model`` the caller may see, for list queries."""
    if principal is not None and principal.is_admin:
        return model.id.is_not(None)  # type: ignore[no-any-return]
    granted_ids = select(Grant.object_id).where(
        Grant.object_type == policy.object_type, principal_clause(principal)
    )
    clauses: list[ColumnElement[bool]] = [model.id.in_(granted_ids)]
    if principal is not None:
        clauses.append(model.owner_id == principal.id)
    return or_(*clauses)


def grant(
    session: Session,
    policy: Policy,
    obj: Owned,
    *,
    principal_type: str,
    principal_id: str | None,
    role: str,
    created_by: str | None,
) -> Grant:
    """Add a grant (idempotent: the same grant twice is one row)."""
    policy.check_role(role)
    if principal_type in (PUBLIC, ALL_AUTHENTICATED):
        principal_id = ""
    elif not principal_id:
        raise InvalidInput(f"a {principal_type} grant needs a principal", details={"field": "principal"})
    existing = session.scalar(
        select(Grant).where(
            Grant.object_type == policy.object_type,
            Grant.object_id == obj.id,
            Grant.principal_type == principal_type,
            Grant.principal_id == principal_id,
            Grant.role == role,
        )
    )
    if existing is not None:
        return existing
    row = Grant(
        object_type=policy.object_type,
        object_id=obj.id,
        principal_type=principal_type,
        principal_id=principal_id,
        role=role,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row


def grants_for(session: Session, policy: Policy, obj: Owned) -> list[Grant]:
    return list(
        session.scalars(
            select(Grant)
            .where(Grant.object_type == policy.object_type, Grant.object_id == obj.id)
            .order_by(Grant.created_at, Grant.id)
        )
    )


def revoke(session: Session, policy: Policy, obj: Owned, grant_id: str) -> None:
    row = session.get(Grant, grant_id)
    if row is None or row.object_type != policy.object_type or row.object_id != obj.id:
        raise NotFound(f"grant {grant_id} not found on this {policy.object_type}")
    session.delete(row)


def delete_grants(session: Session, policy: Policy, object_ids: Iterable[str]) -> None:
    """Remove the grants of deleted objects (grants have no foreign key: they span every domain)."""
    ids = list(object_ids)
    if ids:
        for row in session.scalars(
            select(Grant).where(Grant.object_type == policy.object_type, Grant.object_id.in_(ids))
        ):
            session.delete(row)
