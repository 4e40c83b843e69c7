"""Sharing routes (``/{id}/grants``) for any domain's router: written once, added by each domain."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Response, status
from sqlalchemy.orm import Session

from beamlink.protocol.auth import GrantCreate, GrantInfo
from beamlink.service.api.deps import CurrentPrincipal, State
from beamlink.service.auth import permissions
from beamlink.service.auth.grants import add_grant, grant_info
from beamlink.service.auth.principal import Principal

__all__ = ["add_grant_routes"]

# Loads the object if the caller holds the given role on it (NotFound/PermissionDenied otherwise).
Loader = Callable[[Session, Principal, str, str], permissions.Owned]


def add_grant_routes(
    router: APIRouter, policy: permissions.Policy, load: Loader, *, manage_role: str
) -> None:
    """Add list/add/remove grant routes; ``manage_role`` is the role needed to change sharing."""
    noun = policy.object_type

    @router.get(
        "/{object_id}/grants", response_model=list[GrantInfo], summary=f"Who a {noun} is shared with."
    )
    def list_grants(state: State, principal: CurrentPrincipal, object_id: str) -> list[GrantInfo]:
        with state.db.transaction() as session:
            obj = load(session, principal, object_id, policy.view_role)
            return [grant_info(session, g) for g in permissions.grants_for(session, policy, obj)]

    @router.post(
        "/{object_id}/grants",
        response_model=GrantInfo,
        status_code=status.HTTP_201_CREATED,
        summary=f"Share a {noun}: give a role to a user, a group, public or all_authenticated_users.",
    )
    def create_grant(
        state: State, principal: CurrentPrincipal, object_id: str, body: GrantCreate
    ) -> GrantInfo:
        with state.db.transaction() as session:
            obj = load(session, principal, object_id, manage_role)
            return grant_info(session, add_grant(session, policy, obj, body, principal.id))

    @router.delete(
        "/{object_id}/grants/{grant_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary=f"Stop sharing a {noun} with someone.",
    )
    def delete_grant(state: State, principal: CurrentPrincipal, object_id: str, grant_id: str) -> Response:
        with state.db.transaction() as session:
            obj = load(session, principal, object_id, manage_role)
            permissions.revoke(session, policy, obj, grant_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)
