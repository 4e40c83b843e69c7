"""Who may do what to flows and runs, and the role lists (``flow_starters``, ``run_monitors``, ...) that
Globus users write, translated to and from the one grant table.

A principal in a list is ``user:NAME`` (or a bare user name), ``group:ID-OR-NAME``, ``public``,
``all_authenticated_users``, or the Globus URNs ``urn:globus:auth:identity:ID`` and
``urn:globus:groups:id:ID``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from beamlink.service.auth import permissions
from beamlink.service.auth.grants import parse_principal
from beamlink.service.auth.models import Grant, Group, User

__all__ = [
    "FLOW_LIST_ROLES",
    "FLOW_POLICY",
    "RUN_LIST_ROLES",
    "RUN_POLICY",
    "role_lists",
    "set_role_list",
]

#: administrator ⊃ starter ⊃ viewer; run_manager ⊃ run_monitor (over every run of the flow).
FLOW_POLICY = permissions.Policy(
    "flow",
    {
        "administrator": frozenset({"starter", "viewer", "run_manager"}),
        "starter": frozenset({"viewer"}),
        "viewer": frozenset(),
        "run_manager": frozenset({"run_monitor"}),
        "run_monitor": frozenset(),
    },
)

#: A run's own grants: manager (cancel, resume, relabel, release) ⊃ monitor (see status and log).
RUN_POLICY = permissions.Policy(
    "run", {"manager": frozenset({"monitor"}), "monitor": frozenset()}, view_role="monitor"
)

#: FlowCreate field → flow role.
FLOW_LIST_ROLES: Mapping[str, str] = {
    "flow_administrators": "administrator",
    "flow_starters": "starter",
    "flow_viewers": "viewer",
    "run_managers": "run_manager",
    "run_monitors": "run_monitor",
}
#: RunCreate field → run role.
RUN_LIST_ROLES: Mapping[str, str] = {"run_managers": "manager", "run_monitors": "monitor"}


def set_role_list(
    session: Session,
    policy: permissions.Policy,
    obj: permissions.Owned,
    role: str,
    principals: Sequence[str],
    *,
    field: str,
    created_by: str,
) -> None:
    """Make ``principals`` exactly the holders of ``role`` on ``obj`` (through direct grants)."""
    wanted = [parse_principal(session, text, field=field) for text in principals]
    session.execute(
        delete(Grant).where(
            Grant.object_type == policy.object_type, Grant.object_id == obj.id, Grant.role == role
        )
    )
    for kind, principal_id in wanted:
        permissions.grant(
            session,
            policy,
            obj,
            principal_type=kind,
            principal_id=principal_id,
            role=role,
            created_by=created_by,
        )


def _principal_text(session: Session, grant: Grant) -> str:
    if grant.principal_type == "user":
        user = session.get(User, grant.principal_id)
        return f"user:{user.username}" if user else f"user:{grant.principal_id}"
    if grant.principal_type == "group":
        group = session.get(Group, grant.principal_id)
        return f"group:{group.name}" if group else f"group:{grant.principal_id}"
    return grant.principal_type


def role_lists(
    session: Session, policy: permissions.Policy, object_id: str, fields: Mapping[str, str]
) -> dict[str, list[str]]:
    """``{field: [principal, ...]}`` for each role list of an object."""
    by_role: dict[str, list[str]] = {role: [] for role in fields.values()}
    for grant in session.scalars(
        select(Grant)
        .where(Grant.object_type == policy.object_type, Grant.object_id == object_id)
        .order_by(Grant.created_at, Grant.id)
    ):
        if grant.role in by_role:
            by_role[grant.role].append(_principal_text(session, grant))
    return {field: by_role[role] for field, role in fields.items()}
