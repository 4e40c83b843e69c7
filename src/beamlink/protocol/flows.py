"""Wire models of flows, runs, timers, triggers and the Action Provider API (shared by service and SDK).

Field names follow Globus Flows where a user already knows them (``body`` for a run's input,
``run_managers``/``run_monitors``, ``flow_starters``...), so a Globus script needs few changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "RUN_STATUSES",
    "ActionRequest",
    "ActionStatus",
    "FlowCreate",
    "FlowInfo",
    "FlowUpdate",
    "FlowValidate",
    "FlowValidation",
    "LogPage",
    "ProviderDescription",
    "RunCreate",
    "RunEvent",
    "RunInfo",
    "RunStatusName",
    "RunUpdate",
    "TimerCreate",
    "TimerInfo",
    "TimerSchedule",
    "TriggerCreate",
    "TriggerInfo",
    "ValidationProblem",
]

RunStatusName = Literal["ACTIVE", "INACTIVE", "SUCCEEDED", "FAILED", "ENDED"]
RUN_STATUSES: tuple[str, ...] = ("ACTIVE", "INACTIVE", "SUCCEEDED", "FAILED", "ENDED")

PrincipalList = list[str]
_PRINCIPALS_HELP = (
    "Who: 'user:NAME', 'group:ID-OR-NAME', 'public', 'all_authenticated_users', or the Globus forms "
    "'urn:globus:auth:identity:ID' / 'urn:globus:groups:id:ID'."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- flows ---------------------------------------------------------------------------------------------


class FlowCreate(_Strict):
    title: str = Field(min_length=1, max_length=128)
    definition: dict[str, Any] = Field(description="The state machine (Globus Flows format + extensions).")
    input_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema a run's input must match (Globus calls it 'input_schema')."
    )
    subtitle: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=8192)
    keywords: list[str] = Field(default_factory=list)
    flow_administrators: PrincipalList = Field(default_factory=list, description=_PRINCIPALS_HELP)
    flow_starters: PrincipalList = Field(default_factory=list, description=_PRINCIPALS_HELP)
    flow_viewers: PrincipalList = Field(default_factory=list, description=_PRINCIPALS_HELP)
    run_managers: PrincipalList = Field(
        default_factory=list, description="Made run managers of every run of this flow. " + _PRINCIPALS_HELP
    )
    run_monitors: PrincipalList = Field(
        default_factory=list, description="Made run monitors of every run of this flow. " + _PRINCIPALS_HELP
    )


class FlowUpdate(_Strict):
    """Only the fields given change; a role list given replaces that role's grants."""

    title: str | None = Field(default=None, min_length=1, max_length=128)
    definition: dict[str, Any] | None = None
    input_schema: dict[str, Any] | None = None
    subtitle: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=8192)
    keywords: list[str] | None = None
    flow_administrators: PrincipalList | None = None
    flow_starters: PrincipalList | None = None
    flow_viewers: PrincipalList | None = None
    run_managers: PrincipalList | None = None
    run_monitors: PrincipalList | None = None


class FlowInfo(BaseModel):
    id: str
    title: str
    subtitle: str | None = None
    description: str | None = None
    keywords: list[str] = Field(default_factory=list)
    owner_id: str
    owner_name: str | None = None
    definition: dict[str, Any]
    input_schema: dict[str, Any] | None = None
    flow_administrators: PrincipalList = Field(default_factory=list)
    flow_starters: PrincipalList = Field(default_factory=list)
    flow_viewers: PrincipalList = Field(default_factory=list)
    run_managers: PrincipalList = Field(default_factory=list)
    run_monitors: PrincipalList = Field(default_factory=list)
    user_role: str | None = Field(default=None, description="The caller's highest role on the flow.")
    created_at: datetime
    updated_at: datetime


class FlowValidate(_Strict):
    definition: dict[str, Any]
    input_schema: dict[str, Any] | None = None


class ValidationProblem(BaseModel):
    pointer: str = Field(description="JSON pointer into the definition ('' is the whole document).")
    code: str
    message: str
    hint: str = ""
    severity: Literal["error", "warning"] = "error"


class FlowValidation(BaseModel):
    valid: bool
    problems: list[ValidationProblem] = Field(default_factory=list)


# -- runs ----------------------------------------------------------------------------------------------


class RunCreate(_Strict):
    body: dict[str, Any] = Field(default_factory=dict, description="The run input (the initial run state).")
    label: str | None = Field(default=None, max_length=64)
    tags: list[str] = Field(default_factory=list)
    run_managers: PrincipalList = Field(default_factory=list, description=_PRINCIPALS_HELP)
    run_monitors: PrincipalList = Field(default_factory=list, description=_PRINCIPALS_HELP)
    request_id: str | None = Field(
        default=None, max_length=128, description="Starting twice with the same request_id starts one run."
    )


class RunUpdate(_Strict):
    label: str | None = Field(default=None, max_length=64)
    tags: list[str] | None = None
    run_managers: PrincipalList | None = None
    run_monitors: PrincipalList | None = None


class RunInfo(BaseModel):
    run_id: str
    flow_id: str
    flow_title: str
    owner_id: str
    label: str | None = None
    tags: list[str] = Field(default_factory=list)
    status: RunStatusName
    display_status: str = Field(description="What the run does now, e.g. 'Running TransferFiles'.")
    current_states: list[str] = Field(default_factory=list)
    steps: int = 0
    run_managers: PrincipalList = Field(default_factory=list)
    run_monitors: PrincipalList = Field(default_factory=list)
    user_role: str | None = None
    start_time: datetime
    completion_time: datetime | None = None
    input: dict[str, Any] | None = Field(default=None, description="The run input, secrets hidden.")
    output: Any = Field(default=None, description="The final run state (redacted) once it SUCCEEDED.")
    error: str | None = Field(default=None, description="Error name when FAILED, e.g. ActionTimeout.")
    cause: str | None = None
    details: dict[str, Any] = Field(default_factory=dict, description="Globus-style {code, description}.")


class RunEvent(BaseModel):
    seq: int
    time: datetime
    code: str = Field(description="FlowStarted, ActionStarted, PassCompleted, FlowSucceeded, ...")
    description: str
    state_name: str | None = None
    state_type: str | None = None
    branch: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class LogPage(BaseModel):
    """A page of a run's (or an action's) log, in the Globus shape."""

    entries: list[RunEvent]
    has_next_page: bool = False
    marker: int | None = Field(default=None, description="Pass back as ?after= for the next page.")


# -- timers and triggers -------------------------------------------------------------------------------


class TimerSchedule(_Strict):
    """``once`` at ``at``; ``interval`` every ``every_seconds``; ``cron`` by a cron expression (UTC)."""

    type: Literal["once", "interval", "cron"]
    at: datetime | None = Field(default=None, description="once: when (default: now).")
    every_seconds: float | None = Field(default=None, gt=0, description="interval: the period.")
    cron: str | None = Field(default=None, description="cron: e.g. '*/5 * * * *'.")
    start: datetime | None = Field(default=None, description="No run before this time.")
    end: datetime | None = Field(default=None, description="No run after this time.")


class TimerCreate(_Strict):
    flow_id: str
    name: str = Field(min_length=1, max_length=128)
    schedule: TimerSchedule
    body: dict[str, Any] = Field(default_factory=dict, description="The input of each run.")
    run_label: str | None = Field(default=None, max_length=64)


class TimerInfo(BaseModel):
    id: str
    name: str
    flow_id: str
    owner_id: str
    schedule: TimerSchedule
    body: dict[str, Any]
    run_label: str | None = None
    status: Literal["ACTIVE", "PAUSED", "ENDED"]
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_run_id: str | None = None
    runs_started: int = 0
    ticks_skipped: int = 0
    last_error: str | None = None
    created_at: datetime


class TriggerCreate(_Strict):
    flow_id: str
    name: str = Field(min_length=1, max_length=128)
    collection: str = Field(description="Collection id or name to watch.")
    path: str = Field(default="/", description="Directory in the collection to watch.")
    glob: str = Field(default="*", description="Which file names count, e.g. '*.h5'.")
    recursive: bool = False
    quiet_seconds: float = Field(
        default=5.0, ge=0, description="A file counts once its size and mtime are unchanged this long."
    )
    poll_seconds: float = Field(default=2.0, gt=0, le=3600)
    body: dict[str, Any] = Field(
        default_factory=dict,
        description="Run input; the strings '{path}', '{name}', '{collection}' and '{collection_id}' "
        "in its values are filled in with the new file's.",
    )
    run_label: str | None = Field(default=None, max_length=64)


class TriggerInfo(BaseModel):
    id: str
    name: str
    flow_id: str
    owner_id: str
    collection_id: str
    path: str
    glob: str
    recursive: bool
    quiet_seconds: float
    poll_seconds: float
    body: dict[str, Any]
    run_label: str | None = None
    status: Literal["ACTIVE", "PAUSED"]
    runs_started: int = 0
    last_run_id: str | None = None
    last_error: str | None = None
    created_at: datetime


# -- the Action Provider API ---------------------------------------------------------------------------


class ProviderDescription(BaseModel):
    """What ``GET /actions/<name>/`` answers (Globus ProviderDescription)."""

    types: list[str] = Field(default_factory=lambda: ["Action"])
    api_version: str = "1.0"
    title: str
    subtitle: str | None = None
    description: str | None = None
    keywords: list[str] = Field(default_factory=list)
    visible_to: list[str] = Field(default_factory=lambda: ["public"])
    runnable_by: list[str] = Field(default_factory=lambda: ["all_authenticated_users"])
    administered_by: list[str] = Field(default_factory=list)
    synchronous: bool = False
    log_supported: bool = True
    maximum_deadline: str = "P30D"
    input_schema: dict[str, Any] = Field(default_factory=dict)
    globus_auth_scope: str | None = None


class ActionRequest(BaseModel):
    """``POST /actions/<name>/run`` (Globus ActionRequest)."""

    model_config = ConfigDict(extra="allow")

    request_id: str = Field(min_length=1, max_length=256)
    body: dict[str, Any]
    label: str | None = Field(default=None, max_length=64)
    monitor_by: list[str] = Field(default_factory=list)
    manage_by: list[str] = Field(default_factory=list)
    deadline: datetime | None = None
    release_after: str | None = Field(default=None, description="ISO-8601 duration, default P30D.")


class ActionStatus(BaseModel):
    """What every Action Provider API call answers (Globus ActionStatus)."""

    action_id: str
    status: Literal["ACTIVE", "INACTIVE", "SUCCEEDED", "FAILED"]
    display_status: str | None = None
    details: Any = None
    creator_id: str | None = None
    label: str | None = None
    monitor_by: list[str] = Field(default_factory=list)
    manage_by: list[str] = Field(default_factory=list)
    start_time: datetime | None = None
    completion_time: datetime | None = None
    release_after: str | None = None
