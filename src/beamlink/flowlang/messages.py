"""What goes into the step function (events) and what comes out (instructions), plus error names.

All are pydantic models with a ``kind`` tag, so an engine can persist them (an outbox of instructions,
a queue of events) with ``model_dump(mode="json")`` and read them back with :func:`event_from_dict` /
:func:`instruction_from_dict`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "ACTION_FAILED",
    "ACTION_TIMEOUT",
    "ACTION_UNABLE_TO_RUN",
    "FLOW_CANCELED",
    "INTRINSIC_FAILURE",
    "NO_CHOICE_MATCHED",
    "PARAMETER_PATH_FAILURE",
    "RESULT_PATH_MATCH_FAILURE",
    "RUNTIME",
    "STATES_ALL",
    "STATE_SIZE_EXCEEDED",
    "STEP_LIMIT_EXCEEDED",
    "ActionCompleted",
    "ActionFailed",
    "CancelAction",
    "CancelRun",
    "CancelWakeup",
    "Event",
    "Instruction",
    "LogEntry",
    "RunFailed",
    "RunSucceeded",
    "ScheduleWakeup",
    "StartAction",
    "TimerFired",
    "event_from_dict",
    "instruction_from_dict",
]

# Error names, as Globus Flows and the Amazon States Language spell them (Catch/Retry ErrorEquals).
STATES_ALL = "States.All"  #: matches every catchable error ("States.ALL" is accepted too)
ACTION_UNABLE_TO_RUN = "ActionUnableToRun"  #: the provider refused /run; nothing started
ACTION_FAILED = "ActionFailedException"  #: the action ended FAILED and ExceptionOnActionFailure is true
ACTION_TIMEOUT = "ActionTimeout"  #: the action did not end within WaitTime
PARAMETER_PATH_FAILURE = "States.ParameterPathFailure"  #: a .$ reference (or name) is not in the state
RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"  #: the ResultPath cannot be written
INTRINSIC_FAILURE = "States.IntrinsicFailure"  #: a .= expression failed
NO_CHOICE_MATCHED = "States.NoChoiceMatched"  #: no Choice rule matched and there is no Default
RUNTIME = "States.Runtime"  #: a value has the wrong type (Wait SecondsPath, Map ItemsPath, ...)
STEP_LIMIT_EXCEEDED = "States.StepLimitExceeded"  #: the run executed more states than allowed
STATE_SIZE_EXCEEDED = "States.StateSizeExceeded"  #: the run state grew past its size limit
FLOW_CANCELED = "FlowCanceled"  #: the run was canceled (Globus reports a canceled run like this)

_FROZEN = ConfigDict(frozen=True)


# -- events --------------------------------------------------------------------------------------------


class ActionCompleted(BaseModel):
    """The action of ``request_id`` ended SUCCEEDED; ``output`` is its final action status document."""

    model_config = _FROZEN
    kind: Literal["action_completed"] = "action_completed"
    request_id: str
    output: Any = Field(None, description="the action status document (action_id, status, details, ...)")


class ActionFailed(BaseModel):
    """The action of ``request_id`` could not run or ended FAILED.

    ``error`` is ``ActionUnableToRun`` (the /run call failed), ``ActionFailedException`` (status FAILED;
    put the status document in ``output``), ``ActionTimeout`` or another name the engine chooses.
    """

    model_config = _FROZEN
    kind: Literal["action_failed"] = "action_failed"
    request_id: str
    error: str = ACTION_FAILED
    cause: str = ""
    output: Any = Field(None, description="the FAILED action status document, when there is one")


class TimerFired(BaseModel):
    """A wakeup the run asked for (:class:`ScheduleWakeup`) is due."""

    model_config = _FROZEN
    kind: Literal["timer_fired"] = "timer_fired"
    timer_id: str


class CancelRun(BaseModel):
    """Someone canceled the run: outstanding actions are canceled and the run fails as FlowCanceled."""

    model_config = _FROZEN
    kind: Literal["cancel_run"] = "cancel_run"
    reason: str = "the run was canceled"


Event = Annotated[ActionCompleted | ActionFailed | TimerFired | CancelRun, Field(discriminator="kind")]


# -- instructions --------------------------------------------------------------------------------------


class StartAction(BaseModel):
    """Start an action. Repeating it with the same ``request_id`` must not start a second one."""

    model_config = _FROZEN
    kind: Literal["start_action"] = "start_action"
    request_id: str = Field(description="deterministic: run id, state visit and attempt")
    branch: str = Field(description="the Parallel/Map branch path ('' for the main flow)")
    state_name: str
    attempt: int = Field(description="1 for the first try, 2 for the first retry, ...")
    action_url: str
    provider: str | None = Field(description="built-in provider name, or None for an external HTTP provider")
    dialect: str = Field(description="body format: beamlink, globus, globus-legacy, globus-v3, external")
    parameters: Any = Field(description="the request body; may hold secrets named in private_keys")
    private_keys: list[str] = Field(
        default_factory=list, description="keys to redact() before showing parameters"
    )
    wait_time: float = Field(description="seconds the action may take (WaitTime)")
    timeout_at: datetime = Field(description="when the run gives up with ActionTimeout")
    run_as: str = "User"
    action_scope: str | None = None
    exception_on_action_failure: bool = True


class CancelAction(BaseModel):
    """Cancel a started action (advisory: its result, if it still comes, is ignored)."""

    model_config = _FROZEN
    kind: Literal["cancel_action"] = "cancel_action"
    request_id: str
    reason: str


class ScheduleWakeup(BaseModel):
    """Send :class:`TimerFired` with ``timer_id`` at ``at`` (``seconds`` from the step's ``now``)."""

    model_config = _FROZEN
    kind: Literal["schedule_wakeup"] = "schedule_wakeup"
    timer_id: str
    at: datetime
    seconds: float
    purpose: Literal["wait", "retry", "timeout"]


class CancelWakeup(BaseModel):
    """The wakeup ``timer_id`` is no longer needed (firing it anyway is harmless)."""

    model_config = _FROZEN
    kind: Literal["cancel_wakeup"] = "cancel_wakeup"
    timer_id: str


class LogEntry(BaseModel):
    """A run-log entry (Globus codes: FlowStarted, ActionStarted, PassCompleted, FlowSucceeded, ...).

    ``details`` are already redacted.
    """

    model_config = _FROZEN
    kind: Literal["log"] = "log"
    code: str
    description: str
    branch: str = ""
    state_name: str | None = None
    state_type: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class RunSucceeded(BaseModel):
    """The run ended well; ``output`` is the final run state, redacted."""

    model_config = _FROZEN
    kind: Literal["run_succeeded"] = "run_succeeded"
    output: Any


class RunFailed(BaseModel):
    """The run ended badly with a Globus/ASL error name and a human cause."""

    model_config = _FROZEN
    kind: Literal["run_failed"] = "run_failed"
    error: str
    cause: str
    state_name: str | None = Field(None, description="the state that failed, when one did")


Instruction = Annotated[
    StartAction | CancelAction | ScheduleWakeup | CancelWakeup | LogEntry | RunSucceeded | RunFailed,
    Field(discriminator="kind"),
]

_EVENTS: TypeAdapter[Event] = TypeAdapter(Event)
_INSTRUCTIONS: TypeAdapter[Instruction] = TypeAdapter(Instruction)


def event_from_dict(data: Any) -> Event:
    """Read back an event stored with ``model_dump(mode="json")``."""
    return _EVENTS.validate_python(data)


def instruction_from_dict(data: Any) -> Instruction:
    """Read back an instruction stored with ``model_dump(mode="json")``."""
    return _INSTRUCTIONS.validate_python(data)
