"""``/v1/groups``: groups, their members, and who may see them."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy.orm import Session

from beamlink.protocol.auth import GroupCreate, GroupInfo, MemberAdd, MemberInfo
from beamlink.protocol.common import Page
from beamlink.service.api.deps import CurrentPrincipal, PageParams, State
from beamlink.service.api.grants import add_grant_routes
from beamlink.service.auth import groups
from beamlink.service.auth.models import Group, GroupMember
from beamlink.service.auth.principal import Principal
from beamlink.service.db.paging import paginate

router = APIRouter(prefix="/v1/groups", tags=["groups"])


def member_info(member: GroupMember) -> MemberInfo:
    return MemberInfo(
        identity_id=member.identity_id,
        username=member.identity.username,
        role=member.role,
        added_at=member.created_at,
    )


def group_info(
    session: Session, principal: Principal, group: Group, *, with_members: bool = False
) -> GroupInfo:
    return GroupInfo(
        id=group.id,
        name=group.name,
        description=group.description,
        owner_id=group.owner_id,
        owner=group.owner.username,
        created_at=group.created_at,
        my_role=groups.my_role(session, principal, group),
        members=[member_info(m) for m in groups.members_of(session, group)] if with_members else None,
    )


@router.post("", response_model=GroupInfo, status_code=status.HTTP_201_CREATED, summary="Create a group.")
def create_group(state: State, principal: CurrentPrincipal, body: GroupCreate) -> GroupInfo:
    with state.db.transaction() as session:
        return group_info(session, principal, groups.create_group(session, principal, body))


@router.get("", response_model=Page[GroupInfo], summary="Groups you own, belong to, or were shown.")
def list_groups(state: State, principal: CurrentPrincipal, page: PageParams) -> Page[GroupInfo]:
    with state.db.transaction() as session:
        rows, next_cursor = paginate(session, groups.groups_query(principal), Group, page.limit, page.cursor)
        return Page(items=[group_info(session, principal, g) for g in rows], next_cursor=next_cursor)


@router.get("/{group}", response_model=GroupInfo, summary="Show a group (by id or name) with its members.")
def get_group(state: State, principal: CurrentPrincipal, group: str) -> GroupInfo:
    with state.db.transaction() as session:
        return group_info(session, principal, groups.get_group(session, principal, group), with_members=True)


@router.delete("/{group}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a group (its owner).")
def delete_group(state: State, principal: CurrentPrincipal, group: str) -> Response:
    with state.db.transaction() as session:
        groups.delete_group(session, principal, group)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{group}/members",
    response_model=MemberInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Add a member (owner and managers).",
)
def add_member(state: State, principal: CurrentPrincipal, group: str, body: MemberAdd) -> MemberInfo:
    with state.db.transaction() as session:
        return member_info(groups.add_member(session, principal, group, body.username, body.role))


@router.delete(
    "/{group}/members/{username}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member (owner and managers).",
)
def remove_member(state: State, principal: CurrentPrincipal, group: str, username: str) -> Response:
    with state.db.transaction() as session:
        groups.remove_member(session, principal, group, username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


add_grant_routes(router, groups.GROUP_POLICY, groups.get_group, manage_role="manager")
