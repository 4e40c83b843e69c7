"""The function registry. Roles on a function: ``viewer`` (see it and run it). Sharing is by grants (a
group, ``public``); the owner and admins may change sharing and delete it."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from beamlink.errors import NotFound
from beamlink.protocol.compute import Environment, FunctionCode, FunctionCreate, FunctionInfo
from beamlink.service.auth import permissions
from beamlink.service.auth.principal import Principal
from beamlink.service.compute.models import Function

__all__ = [
    "FUNCTION_POLICY",
    "create_function",
    "delete_function",
    "function_code",
    "function_info",
    "functions_query",
    "get_function",
]

FUNCTION_POLICY = permissions.Policy(object_type="function", implies={"viewer": frozenset()})


def create_function(session: Session, principal: Principal, body: FunctionCreate) -> Function:
    function = Function(
        name=body.name,
        description=body.description,
        owner_id=principal.id,
        serialized=body.serialized,
        source=body.source,
        environment=body.environment.model_dump(),
    )
    session.add(function)
    session.flush()
    if body.public:
        permissions.grant(
            session,
            FUNCTION_POLICY,
            function,
            principal_type=permissions.PUBLIC,
            principal_id=None,
            role="viewer",
            created_by=principal.id,
        )
    return function


def get_function(
    session: Session, principal: Principal | None, function_id: str, role: str = "viewer"
) -> Function:
    function = session.get(Function, function_id)
    permissions.require(session, principal, FUNCTION_POLICY, function, role, what=f"function {function_id}")
    assert function is not None
    return function


def functions_query(principal: Principal, *, owned_only: bool = False) -> Select[Function]:
    if owned_only:
        return select(Function).where(Function.owner_id == principal.id)
    return select(Function).where(permissions.visible_clause(principal, FUNCTION_POLICY, Function))


def delete_function(session: Session, principal: Principal, function_id: str) -> None:
    function = get_function(session, principal, function_id, "owner")
    permissions.delete_grants(session, FUNCTION_POLICY, [function.id])
    session.delete(function)


def is_public(session: Session, function: Function) -> bool:
    return any(
        g.principal_type == permissions.PUBLIC
        for g in permissions.grants_for(session, FUNCTION_POLICY, function)
    )


def function_info(session: Session, function: Function, *, with_source: bool = False) -> FunctionInfo:
    return FunctionInfo(
        id=function.id,
        name=function.name,
        description=function.description,
        owner_id=function.owner_id,
        owner=function.owner.username,
        created_at=function.created_at,
        environment=Environment.model_validate(function.environment),
        has_source=function.source is not None,
        public=is_public(session, function),
        source=function.source if with_source else None,
    )


def function_code(function: Function) -> FunctionCode:
    return FunctionCode(
        id=function.id,
        name=function.name,
        serialized=function.serialized,
        source=function.source,
        environment=Environment.model_validate(function.environment),
    )


def find_functions(session: Session, ids: set[str]) -> dict[str, Function]:
    if not ids:
        return {}
    found = {f.id: f for f in session.scalars(select(Function).where(Function.id.in_(ids)))}
    missing = ids - found.keys()
    if missing:
        raise NotFound(f"function {sorted(missing)[0]} not found (or you have no access to it)")
    return found
