"""Our providers served over the Action Provider API (``/actions/<name>/``), for callers outside a flow:
another beamlink, a Globus flow, a script. Same providers, same table as the actions of runs.

Access: the creator (and admins) may do everything; principals in ``monitor_by`` may read the status and
log, those in ``manage_by`` may also cancel and release (entries as in flow role lists: 'user:NAME',
'group:NAME', the Globus URNs, 'public', 'all_authenticated_users').
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from beamlink.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from beamlink.protocol.flows import ActionRequest, ProviderDescription
from beamlink.service.auth import permissions
from beamlink.service.auth.grants import parse_principal
from beamlink.service.auth.principal import Principal
from beamlink.service.db.base import new_id, utcnow
from beamlink.service.flows.models import ActionRow
from beamlink.service.flows.providers.base import TERMINAL, ActionCall, ActionSnapshot, Progress, Provider
from beamlink.service.flows.runs import Effects, Toolkit, apply_progress

__all__ = [
    "cancel_action",
    "describe",
    "get_action",
    "refresh_action",
    "release_action",
    "start_action",
]

_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def _provider(kit: Toolkit, name: str) -> Provider:
    provider = kit.providers.get(name)
    if provider is None:
        raise NotFound(
            f"no action provider named {name!r}: use one of {', '.join(sorted(kit.providers))}",
            details={"provider": name},
        )
    return provider


def describe(kit: Toolkit, name: str) -> ProviderDescription:
    return _provider(kit, name).description


def _seconds(duration: str | None) -> float:
    if duration is None:
        return 30 * 86400.0
    match = _DURATION.match(duration)
    if match is None or duration in ("P", "PT"):
        raise InvalidInput(
            f"release_after {duration!r} is not an ISO-8601 duration such as 'P30D' or 'PT1H'",
            details={"field": "release_after"},
        )
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def _check_principals(session: Session, entries: list[str], field: str) -> None:
    for entry in entries:
        parse_principal(session, entry, field=field)


def _listed(session: Session, principal: Principal, entries: list[str]) -> bool:
    for entry in entries:
        kind, principal_id = parse_principal(session, entry, field="monitor_by")
        if kind == permissions.PUBLIC or kind == permissions.ALL_AUTHENTICATED:
            return True
        if kind == "user" and principal_id == principal.id:
            return True
        if kind == "group" and principal_id in principal.group_ids:
            return True
    return False


def get_action(
    session: Session, principal: Principal, name: str, action_id: str, *, manage: bool = False
) -> ActionRow:
    row = session.get(ActionRow, action_id)
    if row is None or row.provider != name or row.run_id is not None:
        raise NotFound(f"action {action_id} not found (or released)", details={"action_id": action_id})
    if principal.is_admin or row.creator_id == principal.id:
        return row
    if manage and _listed(session, principal, list(row.manage_by)):
        return row
    if _listed(session, principal, [*row.monitor_by, *row.manage_by]):
        if manage:
            raise PermissionDenied(
                f"you may watch action {action_id} but not manage it: ask its creator to add you to manage_by"
            )
        return row
    raise NotFound(f"action {action_id} not found (or released)", details={"action_id": action_id})


def start_action(
    session: Session, principal: Principal, name: str, request: ActionRequest, kit: Toolkit
) -> tuple[ActionRow, bool, Effects]:
    """Start an action; the same request_id with the same body returns the first one (``new`` False)."""
    provider = _provider(kit, name)
    existing = session.scalar(
        select(ActionRow).where(
            ActionRow.creator_id == principal.id,
            ActionRow.provider == name,
            ActionRow.request_id == request.request_id,
            ActionRow.run_id.is_(None),
        )
    )
    if existing is not None:
        if existing.body != request.body:
            raise Conflict(
                f"request_id {request.request_id!r} was already used with another body: use a new request_id",
                details={"request_id": request.request_id, "action_id": existing.id},
            )
        return existing, False, Effects()
    _check_principals(session, request.monitor_by, "monitor_by")
    _check_principals(session, request.manage_by, "manage_by")
    now = utcnow()
    row = ActionRow(
        id=new_id(),
        request_id=request.request_id,
        provider=name,
        dialect="beamlink",
        creator_id=principal.id,
        body=request.body,
        label=request.label,
        status="ACTIVE",
        display_status="Starting",
        monitor_by=list(request.monitor_by),
        manage_by=list(request.manage_by),
        timeout_at=request.deadline,
        release_after_seconds=_seconds(request.release_after),
        start_time=now,
        log=[{"time": now.isoformat(), "code": "ActionStarted", "description": f"{name} action started"}],
    )
    session.add(row)
    session.flush()
    effects = Effects()
    call = ActionCall(session, principal, kit.services, row, effects.after_commit)
    progress = provider.start(call)  # a refused body rolls the whole request back: 4xx, nothing kept
    row.started = True
    apply_progress(row, progress)
    if row.status not in TERMINAL and provider.background:
        effects.drive.append(ActionSnapshot.of(row))
    return row, True, effects


def refresh_action(session: Session, principal: Principal, row: ActionRow, kit: Toolkit) -> Effects:
    effects = Effects()
    if row.status not in TERMINAL:
        call = ActionCall(session, principal, kit.services, row, effects.after_commit)
        progress = _provider(kit, row.provider).refresh(call)
        if progress is not None:
            apply_progress(row, progress)
    return effects


def cancel_action(session: Session, principal: Principal, row: ActionRow, kit: Toolkit) -> Effects:
    if row.status in TERMINAL:
        raise Conflict(
            f"action {row.id} already ended {row.status}: there is nothing to cancel",
            details={"action_id": row.id, "status": row.status},
        )
    effects = Effects()
    call = ActionCall(session, principal, kit.services, row, effects.after_commit)
    progress = _provider(kit, row.provider).cancel(call)
    if progress is not None:
        apply_progress(row, progress)
    if row.status not in TERMINAL:
        apply_progress(row, Progress("FAILED", {"code": "Canceled", "description": "canceled by request"}))
    row.log = [*row.log, {"time": utcnow().isoformat(), "code": "ActionCanceled", "description": "canceled"}]
    return effects


def release_action(session: Session, principal: Principal, row: ActionRow, kit: Toolkit) -> Effects:
    if row.status not in TERMINAL:
        raise Conflict(
            f"action {row.id} is still {row.status}: cancel it or wait for it to end before releasing it",
            details={"action_id": row.id, "status": row.status},
        )
    effects = Effects()
    _provider(kit, row.provider).release(
        ActionCall(session, principal, kit.services, row, effects.after_commit)
    )
    session.delete(row)
    return effects


def log_entries(row: ActionRow, *, limit: int, marker: int) -> dict[str, Any]:
    entries = list(row.log or [])[marker : marker + limit]
    more = marker + limit < len(row.log or [])
    return {"entries": entries, "has_next_page": more, "marker": marker + len(entries) if more else None}
