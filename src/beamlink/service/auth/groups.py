"""Groups and memberships. A group is itself an owned object under the permission layer.

Roles on a group: ``viewer`` (see it and its members: every member holds it) and ``manager`` (add and
remove members: members added with role ``manager`` hold it). Owner and admins hold both and alone may
delete the group.
"""

from __future__ import annotations

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from beamlink.errors import AlreadyExists, NotFound, PermissionDenied
from beamlink.protocol.auth import GroupCreate
from beamlink.service.auth import permissions
from beamlink.service.auth.models import Grant, Group, GroupMember, User
from beamlink.service.auth.principal import Principal

__all__ = [
    "GROUP_POLICY",
    "add_member",
    "create_group",
    "delete_group",
    "find_group",
    "get_group",
    "groups_query",
    "members_of",
    "my_role",
    "remove_member",
]

GROUP_POLICY = permissions.Policy(
    object_type="group", implies={"viewer": frozenset(), "manager": frozenset({"viewer"})}
)


def _membership(session: Session, principal: Principal | None, group: Group) -> GroupMember | None:
    if principal is None:
        return None
    return session.scalar(
        select(GroupMember).where(GroupMember.group_id == group.id, GroupMember.identity_id == principal.id)
    )


def _roles_from_membership(member: GroupMember | None) -> tuple[str, ...]:
    if member is None:
        return ()
    return ("manager",) if member.role == "manager" else ("viewer",)


def find_group(session: Session, id_or_name: str) -> Group | None:
    return session.get(Group, id_or_name) or session.scalar(select(Group).where(Group.name == id_or_name))


def get_group(session: Session, principal: Principal | None, id_or_name: str, role: str = "viewer") -> Group:
    """The group, if the caller holds ``role`` on it.

    NotFound when it is invisible to the caller, PermissionDenied when the caller sees it but lacks the role.
    """
    group = find_group(session, id_or_name)
    extra = _roles_from_membership(_membership(session, principal, group)) if group else ()
    permissions.require(
        session, principal, GROUP_POLICY, group, role, what=f"group {id_or_name!r}", extra=extra
    )
    assert group is not None
    return group


def my_role(session: Session, principal: Principal, group: Group) -> str | None:
    if group.owner_id == principal.id:
        return "owner"
    member = _membership(session, principal, group)
    return member.role if member else None


def create_group(session: Session, principal: Principal, body: GroupCreate) -> Group:
    if session.scalar(select(Group).where(Group.name == body.name)) is not None:
        raise AlreadyExists(
            f"a group named {body.name!r} already exists: choose another name", details={"field": "name"}
        )
    group = Group(name=body.name, description=body.description, owner_id=principal.id)
    session.add(group)
    session.flush()
    return group


def groups_query(principal: Principal) -> Select[Group]:
    """Groups the caller owns, belongs to, or was granted (admins: all), for paging."""
    clause = permissions.visible_clause(principal, GROUP_POLICY, Group)
    if principal.group_ids:
        clause = or_(clause, Group.id.in_(principal.group_ids))
    return select(Group).where(clause)


def members_of(session: Session, group: Group) -> list[GroupMember]:
    return list(
        session.scalars(
            select(GroupMember).where(GroupMember.group_id == group.id).order_by(GroupMember.created_at)
        )
    )


def add_member(
    session: Session, principal: Principal, group_ref: str, username: str, role: str
) -> GroupMember:
    group = get_group(session, principal, group_ref, role="manager")
    user = User.by_username(session, username)
    if user is None:
        raise NotFound(
            f"no user or client named {username!r}: check the name with `beamlink user list`",
            details={"field": "username"},
        )
    existing = session.scalar(
        select(GroupMember).where(GroupMember.group_id == group.id, GroupMember.identity_id == user.id)
    )
    if existing is not None:
        if existing.role == role:
            raise AlreadyExists(f"{username!r} is already a {role} of group {group.name!r}")
        existing.role = role
        return existing
    member = GroupMember(group_id=group.id, identity_id=user.id, role=role)
    member.identity = user
    session.add(member)
    session.flush()
    return member


def remove_member(session: Session, principal: Principal, group_ref: str, username: str) -> None:
    group = get_group(session, principal, group_ref, role="manager")
    user = User.by_username(session, username) or session.get(User, username)
    member = None
    if user is not None:
        member = session.scalar(
            select(GroupMember).where(GroupMember.group_id == group.id, GroupMember.identity_id == user.id)
        )
    if member is None:
        raise NotFound(f"{username!r} is not a member of group {group.name!r}", details={"field": "username"})
    session.delete(member)


def delete_group(session: Session, principal: Principal, group_ref: str) -> None:
    group = get_group(session, principal, group_ref, role="viewer")
    if group.owner_id != principal.id and not principal.is_admin:
        raise PermissionDenied(f"only the owner of group {group.name!r} may delete it")
    permissions.delete_grants(session, GROUP_POLICY, [group.id])
    # Grants given *to* this group on other objects go too, or they would dangle.
    for row in session.scalars(
        select(Grant).where(Grant.principal_type == "group", Grant.principal_id == group.id)
    ):
        session.delete(row)
    session.delete(group)
