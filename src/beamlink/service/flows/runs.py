"""Runs in the database: start one, advance one by the events that are due, and show them.

Everything here is synchronous and transactional; the live half (what wakes a run, what happens on
the wire after a commit) is :mod:`.engine`. One call of :func:`advance` takes the run's row lock
(``FOR UPDATE`` on PostgreSQL, the one writer on SQLite), collects every event that is due for the run
— the cancel flag, actions that ended, timers that are due — feeds them to the pure step function of
:mod:`beamlink.flowlang`, and carries the instructions out in the same transaction: log entries,
new actions (built-in providers whose work is a row start inside the transaction), the new run state.
So a run that crashed mid-step is simply advanced again: nothing it did is lost, nothing is repeated.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from beamlink.errors import BeamlinkError, Conflict, InvalidInput, NotFound
from beamlink.flowlang import (
    ACTION_FAILED,
    ACTION_UNABLE_TO_RUN,
    FLOW_CANCELED,
    TERMINAL_RUN_STATUSES,
    ActionCompleted,
    ActionFailed,
    ActionRegistry,
    CancelAction,
    CancelRun,
    Event,
    FlowDefinition,
    Instruction,
    Limits,
    LogEntry,
    RunFailed,
    RunState,
    RunSucceeded,
    StartAction,
    TimerFired,
    check_input,
    load_definition,
    redact,
    start,
    step,
)
from beamlink.protocol.flows import ActionStatus, LogPage, RunCreate, RunEvent, RunInfo, RunUpdate
from beamlink.service.auth import permissions
from beamlink.service.auth.models import Grant, User
from beamlink.service.auth.principal import Principal
from beamlink.service.auth.tokens import principal_of
from beamlink.service.db.base import new_id, utcnow
from beamlink.service.flows.models import ActionRow, Flow, Run, RunEventRow
from beamlink.service.flows.providers.base import TERMINAL, ActionCall, ActionSnapshot, Progress, Provider
from beamlink.service.flows.roles import FLOW_POLICY, RUN_LIST_ROLES, RUN_POLICY, role_lists, set_role_list
from beamlink.service.flows.store import get_flow

if TYPE_CHECKING:
    from beamlink.service.state import ServiceState

__all__ = [
    "ACTIVE_STATUSES",
    "Effects",
    "Toolkit",
    "action_status",
    "advance",
    "apply_progress",
    "get_run",
    "release_run",
    "request_cancel",
    "resume_run",
    "run_info",
    "run_log",
    "runs_query",
    "start_run",
    "update_run",
]

ACTIVE_STATUSES = ("ACTIVE", "INACTIVE")
_FLOW_RUN_ROLES = {"run_manager": "manager", "run_monitor": "monitor"}
_DEFINITION_CACHE = 512


@dataclass
class Toolkit:
    """What stepping runs needs besides the database: the service, the providers and the limits."""

    services: ServiceState
    registry: ActionRegistry
    providers: Mapping[str, Provider]
    external: Provider
    limits: Limits
    _definitions: OrderedDict[str, FlowDefinition] = field(default_factory=OrderedDict)

    def definition(self, run: Run) -> FlowDefinition:
        """The run's parsed definition snapshot, parsed once per run (runs never change definition)."""
        flow = self._definitions.get(run.id)
        if flow is None:
            flow = load_definition(run.definition, registry=self.registry)
            self._definitions[run.id] = flow
            while len(self._definitions) > _DEFINITION_CACHE:
                self._definitions.popitem(last=False)
        else:
            self._definitions.move_to_end(run.id)
        return flow

    def provider(self, name: str) -> Provider:
        return self.providers.get(name, self.external)


@dataclass
class Effects:
    """What must happen once the transaction commits."""

    after_commit: list[Any] = field(default_factory=list)
    drive: list[ActionSnapshot] = field(default_factory=list)
    watch: dict[str, str] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)
    wake: dict[str, datetime | None] = field(default_factory=dict)

    def merge(self, other: Effects) -> None:
        self.after_commit += other.after_commit
        self.drive += other.drive
        self.watch.update(other.watch)
        self.ended += other.ended
        self.wake.update(other.wake)


# -- starting ----------------------------------------------------------------------------------------


def start_run(
    session: Session, principal: Principal, flow_id: str, body: RunCreate, kit: Toolkit
) -> tuple[Run, bool, Effects]:
    """Start a run of a flow (the caller must be a starter). The same ``request_id`` again returns the
    first run (``new`` False). The run executes up to its first action, wait or end right here."""
    flow = get_flow(session, principal, flow_id, "starter")
    if body.request_id is not None:
        existing = session.scalar(
            select(Run).where(Run.owner_id == principal.id, Run.request_id == body.request_id)
        )
        if existing is not None:
            return existing, False, Effects()
    check_input(flow.input_schema, body.body)
    now = utcnow()
    run = Run(
        id=new_id(),
        flow_id=flow.id,
        flow_title=flow.title,
        owner_id=principal.id,
        request_id=body.request_id,
        label=body.label,
        tags=list(body.tags),
        status="ACTIVE",
        definition=flow.definition,
        input=body.body,
        created_at=now,
        updated_at=now,
    )
    user = session.get(User, principal.id)
    context = {
        "run_id": run.id,
        "flow_id": flow.id,
        "username": principal.username,
        "user_id": principal.id,
        "email": getattr(user, "email", None),
        "identities": [principal.id],
    }
    definition = kit.definition(run)
    state, instructions = start(
        definition, body.body, context, now=now, limits=kit.limits, registry=kit.registry
    )
    session.add(run)
    session.flush()
    for field_name, role in RUN_LIST_ROLES.items():
        principals = getattr(body, field_name)
        if principals:
            set_role_list(
                session, RUN_POLICY, run, role, principals, field=field_name, created_by=principal.id
            )
    effects = Effects()
    _Stepper(session, run, definition, state, kit, effects, now, principal).carry_out(instructions)
    return run, True, effects


# -- advancing ---------------------------------------------------------------------------------------


def advance(session: Session, run_id: str, kit: Toolkit, *, now: datetime | None = None) -> Effects:
    """Apply every due event to a run; a finished or unknown run is left alone."""
    effects = Effects()
    run = session.scalar(select(Run).where(Run.id == run_id).with_for_update())
    if run is None or run.status not in ACTIVE_STATUSES or run.state is None:
        return effects
    moment = now or utcnow()
    state = RunState.model_validate(run.state)
    definition = kit.definition(run)
    stepper = _Stepper(session, run, definition, state, kit, effects, moment)
    stepper.feed(_due_events(session, run, state, kit, stepper, moment))
    return effects


def _due_events(
    session: Session, run: Run, state: RunState, kit: Toolkit, stepper: _Stepper, now: datetime
) -> list[Event]:
    events: list[Event] = []
    if run.cancel_requested:
        events.append(CancelRun(reason="the run was canceled"))
    if state.actions:
        rows = session.scalars(
            select(ActionRow).where(ActionRow.run_id == run.id, ActionRow.request_id.in_(list(state.actions)))
        ).all()
        for row in rows:
            if row.status not in TERMINAL:
                provider = kit.provider(row.provider)
                progress = provider.refresh(stepper.call(row))
                if progress is not None:
                    apply_progress(row, progress)
            if row.status in TERMINAL:
                events.append(_outcome_event(row))
    events += [
        TimerFired(timer_id=timer_id)
        for timer_id, info in sorted(state.timers.items(), key=lambda item: item[1].at)
        if info.at <= now
    ]
    return events


def _outcome_event(row: ActionRow) -> Event:
    document = action_status(row).model_dump(mode="json")
    if row.status == "SUCCEEDED":
        return ActionCompleted(request_id=row.request_id, output=document)
    details = row.details if isinstance(row.details, dict) else {}
    if not row.started:
        return ActionFailed(
            request_id=row.request_id,
            error=ACTION_UNABLE_TO_RUN,
            cause=str(details.get("description") or "the action could not start"),
            output=document,
        )
    cause = details.get("description") or details.get("cause") or details.get("error")
    return ActionFailed(
        request_id=row.request_id, error=ACTION_FAILED, cause=str(cause or ""), output=document
    )


def apply_progress(row: ActionRow, progress: Progress) -> None:
    if row.status in TERMINAL:
        return  # SUCCEEDED and FAILED are final (Action Provider API rule)
    row.status = progress.status
    row.details = progress.details
    if progress.display_status is not None:
        row.display_status = progress.display_status[:64]
    if progress.ref is not None:
        row.ref = progress.ref
    if progress.status in TERMINAL:
        row.completion_time = utcnow()
        row.next_poll_at = None


class _Stepper:
    """Feeds events to the step function and carries out its instructions, within one transaction."""

    def __init__(
        self,
        session: Session,
        run: Run,
        definition: FlowDefinition,
        state: RunState,
        kit: Toolkit,
        effects: Effects,
        now: datetime,
        principal: Principal | None = None,
    ) -> None:
        self.session = session
        self.run = run
        self.definition = definition
        self.state = state
        self.kit = kit
        self.effects = effects
        self.now = now
        self._principal = principal
        self.events: deque[Event] = deque()

    @property
    def principal(self) -> Principal:
        if self._principal is None:
            user = self.session.get(User, self.run.owner_id)
            if user is None:  # pragma: no cover - runs are deleted with their owner
                raise NotFound(f"the owner of run {self.run.id} no longer exists")
            self._principal = principal_of(self.session, user)
        return self._principal

    def call(self, row: ActionRow) -> ActionCall:
        call = ActionCall(self.session, self.principal, self.kit.services, row)
        call.after_commit = self.effects.after_commit
        return call

    def carry_out(self, instructions: Iterable[Instruction]) -> None:
        self._handle(instructions)
        self.feed([])

    def feed(self, events: Iterable[Event]) -> None:
        self.events.extend(events)
        while self.events:
            event = self.events.popleft()
            self.state, instructions = step(
                self.definition, self.state, event, now=self.now, registry=self.kit.registry
            )
            self._handle(instructions)
        self._save()

    def _handle(self, instructions: Iterable[Instruction]) -> None:
        for instruction in instructions:
            if isinstance(instruction, LogEntry):
                self._log(instruction)
            elif isinstance(instruction, StartAction):
                self._start_action(instruction)
            elif isinstance(instruction, CancelAction):
                self._cancel_action(instruction)
            elif isinstance(instruction, RunSucceeded):
                self.run.status = "SUCCEEDED"
                self.run.output = instruction.output
            elif isinstance(instruction, RunFailed):
                self.run.status = "ENDED" if instruction.error == FLOW_CANCELED else "FAILED"
                self.run.error = instruction.error[:128]
                self.run.cause = instruction.cause
            # ScheduleWakeup / CancelWakeup: the run's timers are in its state; wake_at follows them.

    def _log(self, entry: LogEntry) -> None:
        self.run.log_seq += 1
        self.session.add(
            RunEventRow(
                run_id=self.run.id,
                seq=self.run.log_seq,
                time=self.now,
                code=entry.code[:64],
                description=entry.description,
                state_name=entry.state_name,
                state_type=entry.state_type,
                branch=entry.branch,
                details=entry.details,
            )
        )

    def _start_action(self, instruction: StartAction) -> None:
        provider_name = instruction.provider or "external"
        row = self.session.scalar(
            select(ActionRow).where(
                ActionRow.run_id == self.run.id, ActionRow.request_id == instruction.request_id
            )
        )
        if row is not None:  # started by an earlier attempt of this very step
            if row.status in TERMINAL:
                self.events.append(_outcome_event(row))
            return
        row = ActionRow(
            id=new_id(),
            request_id=instruction.request_id,
            provider=provider_name,
            url=instruction.action_url,
            dialect=instruction.dialect,
            creator_id=self.run.owner_id,
            run_id=self.run.id,
            state_name=instruction.state_name,
            body=instruction.parameters,
            label=(self.run.label or None),
            status="ACTIVE",
            display_status="Starting",
            timeout_at=instruction.timeout_at,
            start_time=self.now,
            log=[],
            monitor_by=[],
            manage_by=[],
        )
        self.session.add(row)
        self.session.flush()
        provider = self.kit.provider(provider_name)
        call = self.call(row)
        try:
            with self.session.begin_nested():
                progress = provider.start(call)
        except BeamlinkError as exc:
            apply_progress(row, Progress("FAILED", {"code": exc.code, "description": exc.message}))
            self.events.append(_outcome_event(row))
            return
        row.started = True
        apply_progress(row, progress)
        if row.ref:
            self.effects.watch[row.ref] = self.run.id
        if row.status in TERMINAL:
            self.events.append(_outcome_event(row))
        elif provider.background:
            self.effects.drive.append(ActionSnapshot.of(row))

    def _cancel_action(self, instruction: CancelAction) -> None:
        row = self.session.scalar(
            select(ActionRow).where(
                ActionRow.run_id == self.run.id, ActionRow.request_id == instruction.request_id
            )
        )
        if row is None or row.status in TERMINAL:
            return
        try:
            with self.session.begin_nested():
                progress = self.kit.provider(row.provider).cancel(self.call(row))
        except BeamlinkError as exc:
            progress = Progress("FAILED", {"code": exc.code, "description": exc.message})
        if progress is not None:
            apply_progress(row, progress)
        if row.status not in TERMINAL:
            # The run no longer waits for it; whatever it reports later is ignored.
            apply_progress(row, Progress("FAILED", {"code": "Canceled", "description": instruction.reason}))

    def _save(self) -> None:
        run, state = self.run, self.state
        run.state = state.model_dump(mode="json")
        run.steps = state.steps
        run.updated_at = self.now
        if run.status in ("SUCCEEDED", "FAILED", "ENDED") or state.status in TERMINAL_RUN_STATUSES:
            if run.status in ACTIVE_STATUSES:  # pragma: no cover - the step function always says why
                run.status = str(state.status)
            run.completed_at = run.completed_at or self.now
            run.wake_at = None
            run.cancel_requested = False
            self.effects.ended.append(run.id)
            self.effects.wake[run.id] = None
            return
        run.wake_at = min((info.at for info in state.timers.values()), default=None)
        self.effects.wake[run.id] = run.wake_at
        inactive = (
            self.session.scalar(
                select(ActionRow.display_status).where(
                    ActionRow.run_id == run.id,
                    ActionRow.request_id.in_(list(state.actions)),
                    ActionRow.status == "INACTIVE",
                )
            )
            if state.actions
            else None
        )
        run.status = "INACTIVE" if inactive is not None else "ACTIVE"
        run.inactive_reason = inactive


# -- reading and managing ----------------------------------------------------------------------------


def _flow_roles(session: Session, principal: Principal | None, run: Run) -> list[str]:
    flow = session.get(Flow, run.flow_id)
    if flow is None:
        return []
    held = permissions.roles_of(session, principal, FLOW_POLICY, flow)
    return [run_role for flow_role, run_role in _FLOW_RUN_ROLES.items() if flow_role in held]


def get_run(session: Session, principal: Principal | None, run_id: str, role: str = "monitor") -> Run:
    """A run the caller may see (owner, admin, run manager/monitor, or by the flow's run roles)."""
    run = session.get(Run, run_id)
    extra = _flow_roles(session, principal, run) if run is not None else []
    permissions.require(session, principal, RUN_POLICY, run, role, what=f"run {run_id}", extra=extra)
    assert run is not None
    return run


def runs_query(principal: Principal, *, status: str | None = None, flow_id: str | None = None) -> Select[Run]:
    query = select(Run)
    if not principal.is_admin:
        flow_ids = select(Grant.object_id).where(
            Grant.object_type == FLOW_POLICY.object_type,
            Grant.role.in_(("administrator", "run_manager", "run_monitor")),
            permissions.principal_clause(principal),
        )
        owned_flows = select(Flow.id).where(Flow.owner_id == principal.id)
        query = query.where(
            or_(
                permissions.visible_clause(principal, RUN_POLICY, Run),
                Run.flow_id.in_(flow_ids),
                Run.flow_id.in_(owned_flows),
            )
        )
    if status:
        statuses = [s.strip().upper() for s in status.split(",") if s.strip()]
        unknown = [s for s in statuses if s not in ("ACTIVE", "INACTIVE", "SUCCEEDED", "FAILED", "ENDED")]
        if unknown:
            raise InvalidInput(
                f"unknown run status {unknown[0]!r}: use ACTIVE, INACTIVE, SUCCEEDED, FAILED or ENDED",
                details={"field": "status"},
            )
        query = query.where(Run.status.in_(statuses))
    if flow_id:
        query = query.where(Run.flow_id == flow_id)
    return query


def request_cancel(session: Session, principal: Principal, run_id: str) -> Run:
    """Mark a run for cancellation (managers); the engine stops its actions and ends it at once."""
    run = get_run(session, principal, run_id, "manager")
    if run.status in ACTIVE_STATUSES:
        run.cancel_requested = True
    return run


def resume_run(session: Session, principal: Principal, run_id: str) -> Run:
    """Ask an INACTIVE (or stalled ACTIVE) run to go on: its actions are checked and driven again."""
    run = get_run(session, principal, run_id, "manager")
    if run.status not in ACTIVE_STATUSES:
        raise Conflict(
            f"run {run_id} is {run.status}: only an ACTIVE or INACTIVE run can be resumed",
            details={"run_id": run_id, "status": run.status},
        )
    if run.status == "INACTIVE":
        run.status = "ACTIVE"
        run.inactive_reason = None
    return run


def release_run(session: Session, principal: Principal, run_id: str) -> Run:
    """Forget a finished run (managers): its record, log and actions are removed."""
    run = get_run(session, principal, run_id, "manager")
    if run.status in ACTIVE_STATUSES:
        raise Conflict(
            f"run {run_id} is {run.status}: cancel it first (`beamlink run cancel {run_id}`)",
            details={"run_id": run_id, "status": run.status},
        )
    permissions.delete_grants(session, RUN_POLICY, [run.id])
    session.delete(run)
    return run


def update_run(session: Session, principal: Principal, run_id: str, body: RunUpdate) -> Run:
    run = get_run(session, principal, run_id, "manager")
    changes = body.model_dump(exclude_unset=True)
    if "label" in changes:
        run.label = changes["label"]
    if "tags" in changes and changes["tags"] is not None:
        run.tags = list(changes["tags"])
    for field_name, role in RUN_LIST_ROLES.items():
        principals = changes.get(field_name)
        if principals is not None:
            set_role_list(
                session, RUN_POLICY, run, role, principals, field=field_name, created_by=principal.id
            )
    return run


def _current_states(state: RunState | None) -> list[str]:
    if state is None:
        return []
    return sorted({frame.current for frame in state.frames.values() if frame.current and not frame.fan})


def _display_status(run: Run, current: list[str]) -> str:
    if run.status == "SUCCEEDED":
        return "Succeeded"
    if run.status == "ENDED":
        return "Canceled"
    if run.status == "FAILED":
        return f"Failed: {run.error}" if run.error else "Failed"
    if run.status == "INACTIVE":
        return f"Inactive: {run.inactive_reason}" if run.inactive_reason else "Inactive"
    if run.cancel_requested:
        return "Canceling"
    return f"Running {', '.join(current)}"[:120] if current else "Running"


def run_info(session: Session, principal: Principal | None, run: Run) -> RunInfo:
    state = RunState.model_validate(run.state) if run.state else None
    current = _current_states(state) if run.status in ACTIVE_STATUSES else []
    held = permissions.roles_of(
        session, principal, RUN_POLICY, run, extra=_flow_roles(session, principal, run)
    )
    role = "owner" if "owner" in held else "manager" if "manager" in held else "monitor" if held else None
    details: dict[str, Any] = {"code": run.status.title(), "description": _display_status(run, current)}
    if run.error:
        details.update(error=run.error, cause=run.cause)
    private = state.private_keys if state else []
    return RunInfo(
        run_id=run.id,
        flow_id=run.flow_id,
        flow_title=run.flow_title,
        owner_id=run.owner_id,
        label=run.label,
        tags=list(run.tags or []),
        status=run.status,
        display_status=_display_status(run, current),
        current_states=current,
        steps=run.steps,
        user_role=role,
        start_time=run.created_at,
        completion_time=run.completed_at,
        input=redact(run.input, private),
        output=run.output,
        error=run.error,
        cause=run.cause,
        details=details,
        **role_lists(session, RUN_POLICY, run.id, RUN_LIST_ROLES),
    )


def run_log(
    session: Session, principal: Principal, run_id: str, *, after: int = 0, limit: int = 100
) -> LogPage:
    run = get_run(session, principal, run_id)
    rows = session.scalars(
        select(RunEventRow)
        .where(RunEventRow.run_id == run.id, RunEventRow.seq > after)
        .order_by(RunEventRow.seq)
        .limit(limit + 1)
    ).all()
    entries = [
        RunEvent(
            seq=row.seq,
            time=row.time,
            code=row.code,
            description=row.description,
            state_name=row.state_name,
            state_type=row.state_type,
            branch=row.branch,
            details=row.details,
        )
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    return LogPage(entries=entries, has_next_page=more, marker=entries[-1].seq if entries else after)


def action_status(row: ActionRow) -> ActionStatus:
    return ActionStatus(
        action_id=row.id,
        status=row.status,
        display_status=row.display_status,
        details=row.details,
        creator_id=row.creator_id,
        label=row.label,
        monitor_by=list(row.monitor_by or []),
        manage_by=list(row.manage_by or []),
        start_time=row.start_time,
        completion_time=row.completion_time,
        release_after=f"PT{int(row.release_after_seconds)}S",
    )
