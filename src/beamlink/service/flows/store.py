"""The flow store: create, update, delete, list and show flows; validation against the flow language."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from beamlink.errors import Conflict, InvalidInput
from beamlink.flowlang import ActionRegistry, FlowInvalid, Problem, validate, validate_input_schema
from beamlink.protocol.flows import FlowCreate, FlowInfo, FlowUpdate, FlowValidation, ValidationProblem
from beamlink.service.auth import permissions
from beamlink.service.auth.principal import Principal
from beamlink.service.db.base import utcnow
from beamlink.service.flows.models import Flow, Run
from beamlink.service.flows.roles import FLOW_LIST_ROLES, FLOW_POLICY, role_lists, set_role_list

__all__ = [
    "ROLE_ORDER",
    "check_definition",
    "create_flow",
    "delete_flow",
    "flow_info",
    "flows_query",
    "get_flow",
    "update_flow",
    "validation_report",
]

#: Highest first: what ``user_role`` reports.
ROLE_ORDER = ("owner", "administrator", "starter", "run_manager", "run_monitor", "viewer")


def validation_report(
    definition: Any, input_schema: dict[str, Any] | None, registry: ActionRegistry
) -> FlowValidation:
    """Every problem of a definition and its input schema (warnings included), never raising."""
    problems = [
        ValidationProblem.model_validate(p.model_dump()) for p in validate(definition, registry=registry)
    ]
    if input_schema is not None:
        problems += [
            ValidationProblem.model_validate({**p.model_dump(), "pointer": "/input_schema" + p.pointer})
            for p in validate_input_schema(input_schema)
        ]
    return FlowValidation(valid=not any(p.severity == "error" for p in problems), problems=problems)


def check_definition(definition: Any, input_schema: dict[str, Any] | None, registry: ActionRegistry) -> None:
    """Raise FlowInvalid (422, every problem listed) unless the definition and schema are sound."""
    report = validation_report(definition, input_schema, registry)
    if not report.valid:
        raise FlowInvalid([Problem.model_validate(p.model_dump()) for p in report.problems])


def get_flow(session: Session, principal: Principal | None, flow_id: str, role: str = "viewer") -> Flow:
    flow = session.get(Flow, flow_id)
    permissions.require(session, principal, FLOW_POLICY, flow, role, what=f"flow {flow_id}")
    assert flow is not None
    return flow


def _set_lists(session: Session, principal: Principal, flow: Flow, body: FlowCreate | FlowUpdate) -> None:
    for field, role in FLOW_LIST_ROLES.items():
        principals = getattr(body, field)
        if principals is not None:
            set_role_list(session, FLOW_POLICY, flow, role, principals, field=field, created_by=principal.id)


def create_flow(session: Session, principal: Principal, body: FlowCreate, registry: ActionRegistry) -> Flow:
    check_definition(body.definition, body.input_schema, registry)
    now = utcnow()
    flow = Flow(
        owner_id=principal.id,
        title=body.title,
        subtitle=body.subtitle,
        description=body.description,
        keywords=list(body.keywords),
        definition=body.definition,
        input_schema=body.input_schema,
        created_at=now,
        updated_at=now,
    )
    session.add(flow)
    session.flush()
    _set_lists(session, principal, flow, body)
    return flow


def update_flow(
    session: Session, principal: Principal, flow_id: str, body: FlowUpdate, registry: ActionRegistry
) -> Flow:
    """Change a flow (administrators). Runs already started keep the definition they started with."""
    flow = get_flow(session, principal, flow_id, "administrator")
    changes = body.model_dump(exclude_unset=True)
    if "definition" in changes or "input_schema" in changes:
        definition = changes.get("definition", flow.definition)
        if definition is None:
            raise InvalidInput("definition may not be null", details={"field": "definition"})
        check_definition(definition, changes.get("input_schema", flow.input_schema), registry)
    for field in ("title", "subtitle", "description", "keywords", "definition", "input_schema"):
        if field in changes:
            setattr(flow, field, changes[field])
    _set_lists(session, principal, flow, body)
    flow.updated_at = utcnow()
    return flow


def delete_flow(session: Session, principal: Principal, flow_id: str) -> Flow:
    """Delete a flow (its owner or an administrator); refused while runs of it are active."""
    flow = get_flow(session, principal, flow_id, "administrator")
    active = session.scalar(
        select(func.count())
        .select_from(Run)
        .where(Run.flow_id == flow.id, Run.status.in_(("ACTIVE", "INACTIVE")))
    )
    if active:
        raise Conflict(
            f"flow {flow.title!r} has {active} active run(s): cancel them first "
            "(`beamlink run cancel RUN_ID`)",
            details={"flow_id": flow.id, "active_runs": active},
        )
    permissions.delete_grants(session, FLOW_POLICY, [flow.id])
    session.delete(flow)
    return flow


def flows_query(principal: Principal, *, role: str | None = None, owned_only: bool = False) -> Select[Flow]:
    """Flows the caller can see; ``role`` narrows to those where the caller holds it (by direct grant)."""
    query = select(Flow).where(permissions.visible_clause(principal, FLOW_POLICY, Flow))
    if owned_only:
        query = query.where(Flow.owner_id == principal.id)
    if role is not None and role != "owner":
        FLOW_POLICY.check_role(role)
    elif role == "owner":
        query = query.where(Flow.owner_id == principal.id)
    return query


def _user_role(session: Session, principal: Principal | None, flow: Flow) -> str | None:
    held = permissions.roles_of(session, principal, FLOW_POLICY, flow)
    if principal is not None and flow.owner_id == principal.id:
        return "owner"
    return next((role for role in ROLE_ORDER if role in held), None)


def flow_info(session: Session, principal: Principal | None, flow: Flow) -> FlowInfo:
    return FlowInfo(
        id=flow.id,
        title=flow.title,
        subtitle=flow.subtitle,
        description=flow.description,
        keywords=list(flow.keywords or []),
        owner_id=flow.owner_id,
        owner_name=flow.owner.username if flow.owner else None,
        definition=flow.definition,
        input_schema=flow.input_schema,
        user_role=_user_role(session, principal, flow),
        created_at=flow.created_at,
        updated_at=flow.updated_at,
        **role_lists(session, FLOW_POLICY, flow.id, FLOW_LIST_ROLES),
    )
