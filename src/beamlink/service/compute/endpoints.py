"""The endpoint registry. Roles on an endpoint: ``viewer`` (see it and its status) and ``user`` (submit
tasks to it). Only the owner (or an admin) may register, start, or delete it.

An endpoint authenticates its agent connection with a secret issued at each registration (each
``beamlink endpoint start``), stored here only as a hash: a second instance started elsewhere takes the
secret over, and the first one's next reconnect is refused.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from beamlink.errors import Conflict, NotFound, PermissionDenied
from beamlink.protocol.agent import Hello
from beamlink.protocol.compute import EndpointInfo, EndpointRegister, EndpointRegistered, Environment
from beamlink.service import agent_rows
from beamlink.service.auth import permissions
from beamlink.service.auth.principal import Principal
from beamlink.service.compute.models import Endpoint

__all__ = [
    "ENDPOINT_POLICY",
    "delete_endpoint",
    "endpoint_info",
    "endpoints_query",
    "get_endpoint",
    "mark_connected",
    "register_endpoint",
]

ENDPOINT_POLICY = permissions.Policy(
    object_type="endpoint", implies={"viewer": frozenset(), "user": frozenset({"viewer"})}
)


def find_endpoint(session: Session, principal: Principal | None, ref: str) -> Endpoint | None:
    """By id, else by name among the caller's own endpoints."""
    endpoint = session.get(Endpoint, ref)
    if endpoint is None and principal is not None:
        endpoint = session.scalar(
            select(Endpoint).where(Endpoint.owner_id == principal.id, Endpoint.name == ref)
        )
    return endpoint


def get_endpoint(session: Session, principal: Principal | None, ref: str, role: str = "viewer") -> Endpoint:
    endpoint = find_endpoint(session, principal, ref)
    permissions.require(session, principal, ENDPOINT_POLICY, endpoint, role, what=f"endpoint {ref!r}")
    assert endpoint is not None
    return endpoint


def _require_owner(session: Session, principal: Principal, endpoint: Endpoint) -> None:
    held = permissions.require(
        session, principal, ENDPOINT_POLICY, endpoint, "viewer", what=f"endpoint {endpoint.id}"
    )
    if "owner" not in held:
        raise PermissionDenied(
            f"endpoint {endpoint.name!r} ({endpoint.id}) belongs to {endpoint.owner.username}: "
            "only its owner may start, register or delete it. Configure an endpoint of your own with "
            "`beamlink endpoint configure NAME`",
            details={"endpoint_id": endpoint.id, "owner": endpoint.owner.username},
        )


def _apply(endpoint: Endpoint, body: EndpointRegister) -> str:
    endpoint.description = body.description
    endpoint.host = body.host
    endpoint.engine = body.engine
    endpoint.environment = body.environment.model_dump() if body.environment else endpoint.environment
    endpoint.allowed_functions = body.allowed_functions
    endpoint.config = body.config
    return agent_rows.issue_secret(endpoint)


def register_endpoint(
    session: Session, principal: Principal, body: EndpointRegister, endpoint_id: str | None = None
) -> tuple[Endpoint, str]:
    """Create the endpoint (first start) or update it (every later start); returns it and a fresh secret.

    Without ``endpoint_id`` the caller's endpoint of that name is reused, so a lost ``endpoint.json`` does
    not create a twin.
    """
    if endpoint_id is not None:
        endpoint = session.get(Endpoint, endpoint_id)
        if endpoint is None:
            raise NotFound(
                f"endpoint {endpoint_id} is not registered with this service (it may have been deleted): "
                "remove endpoint.json from the profile, or run `beamlink endpoint delete` and configure "
                "again",
                details={"endpoint_id": endpoint_id},
            )
        _require_owner(session, principal, endpoint)
        endpoint.name = body.name
    else:
        endpoint = session.scalar(
            select(Endpoint).where(Endpoint.owner_id == principal.id, Endpoint.name == body.name)
        ) or Endpoint(name=body.name, owner_id=principal.id, config={}, stats={})
        session.add(endpoint)
    secret = _apply(endpoint, body)
    session.flush()
    return endpoint, secret


def endpoints_query(principal: Principal, *, owned_only: bool = False) -> Select[Endpoint]:
    if owned_only:
        return select(Endpoint).where(Endpoint.owner_id == principal.id)
    return select(Endpoint).where(permissions.visible_clause(principal, ENDPOINT_POLICY, Endpoint))


def delete_endpoint(session: Session, principal: Principal, ref: str, *, force: bool = False) -> Endpoint:
    endpoint = get_endpoint(session, principal, ref)
    _require_owner(session, principal, endpoint)
    if endpoint.online and not force:
        raise Conflict(
            f"endpoint {endpoint.name!r} is online: stop it first "
            f"(`beamlink endpoint stop {endpoint.name}`), or delete with --force",
            details={"endpoint_id": endpoint.id},
        )
    permissions.delete_grants(session, ENDPOINT_POLICY, [endpoint.id])
    session.delete(endpoint)
    return endpoint


def mark_connected(session: Session, endpoint: Endpoint, hello: Hello) -> datetime:
    """Record a connection and what the agent reports of itself; returns the connection's time."""
    endpoint.engine = hello.engine
    endpoint.environment = hello.environment.model_dump()
    endpoint.allowed_functions = hello.allowed_functions
    return agent_rows.mark_connected(
        endpoint, host=hello.host, agent_version=hello.agent_version, stats=hello.stats
    )


def endpoint_info(endpoint: Endpoint) -> EndpointInfo:
    return EndpointInfo(
        id=endpoint.id,
        name=endpoint.name,
        description=endpoint.description,
        owner_id=endpoint.owner_id,
        owner=endpoint.owner.username,
        created_at=endpoint.created_at,
        status=endpoint.status,
        connected_at=endpoint.connected_at,
        last_heartbeat=endpoint.last_heartbeat,
        disconnected_at=endpoint.disconnected_at,
        host=endpoint.host,
        engine=endpoint.engine,
        environment=Environment.model_validate(endpoint.environment) if endpoint.environment else None,
        allowed_functions=endpoint.allowed_functions,
        config=endpoint.config,
        stats=endpoint.stats,
        agent_version=endpoint.agent_version,
    )


def registered_info(endpoint: Endpoint, secret: str) -> EndpointRegistered:
    return EndpointRegistered(**endpoint_info(endpoint).model_dump(), agent_secret=secret)
