"""The run state: one JSON-serialisable document the engine persists after every step.

A run is a tree of *frames*. The main flow is the frame ``""``; each ``Parallel`` branch and each
``Map`` iteration runs in a child frame with its own data document, until it ends and its output is
joined into the parent. Finished child frames are dropped so the document stays small.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "TERMINAL_RUN_STATUSES",
    "FanOut",
    "Frame",
    "FrameStatus",
    "Limits",
    "RunContext",
    "RunState",
    "RunStatus",
    "TimerInfo",
    "TimerPurpose",
]

TimerPurpose = Literal["wait", "retry", "timeout"]


class RunStatus(StrEnum):
    """Where a run is in its life."""

    #: Running: states are executing or the run waits for actions or timers.
    ACTIVE = "ACTIVE"
    #: Ended at a state with ``"End": true``; the output is the final run state.
    SUCCEEDED = "SUCCEEDED"
    #: Ended by a Fail state, an uncaught error, a limit, or cancellation (error ``FlowCanceled``).
    FAILED = "FAILED"


#: Statuses a run never leaves.
TERMINAL_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED})


class FrameStatus(StrEnum):
    """Where one frame (the main flow, a branch or an iteration) is."""

    #: Ready to execute its current state (only while a step is being computed).
    RUNNING = "RUNNING"
    #: Waiting for an action, a timer (Wait, retry back-off) or its child frames.
    WAITING = "WAITING"
    #: Reached an end; its data is its output.
    SUCCEEDED = "SUCCEEDED"
    #: Ended by an error nothing caught.
    FAILED = "FAILED"


class Limits(BaseModel):
    """Guards against runaway runs; a run over a limit fails with a clear error."""

    model_config = ConfigDict(frozen=True)

    max_steps: int = Field(
        10_000, ge=1, description="states executed (retries included) before StepLimitExceeded"
    )
    max_state_bytes: int = Field(
        1_048_576, ge=1024, description="JSON size of the run state before StateSizeExceeded"
    )


class RunContext(BaseModel):
    """What ``$._context`` holds, supplied by the caller when the run starts."""

    model_config = ConfigDict(extra="allow", frozen=True)

    run_id: str = Field(min_length=1, description="the run's unique id; prefix of every request id")
    flow_id: str | None = None
    username: str | None = None
    email: str | None = None
    user_id: str | None = Field(None, description="the starting user's identity (URN)")
    identities: list[str] = Field(default_factory=list)
    token_info: dict[str, Any] | None = Field(None, description="exp, iat and nbf of the starting token")


class TimerInfo(BaseModel):
    """A wakeup the run waits for."""

    frame: str
    purpose: TimerPurpose
    at: datetime
    request_id: str | None = Field(None, description="the action a timeout timer guards")


class FanOut(BaseModel):
    """A Parallel or Map state waiting for its branches or iterations."""

    kind: Literal["parallel", "map"]
    total: int
    launched: int = 0
    done: int = 0
    inputs: list[Any] = Field(default_factory=list, description="Map: iteration inputs not yet launched")
    results: list[Any] = Field(default_factory=list)
    active: list[str] = Field(default_factory=list, description="ids of running child frames")


class Frame(BaseModel):
    """The main flow or one branch/iteration: its data document and where it is."""

    id: str = Field(description="'' for the main flow; 'Fan[0]@3.1' style paths for children")
    parent: str | None = None
    index: int = Field(0, description="position of this branch/iteration in the parent's result list")
    scope: list[str] = Field(
        default_factory=list, description="path to the state machine (FlowDefinition.machine)"
    )
    data: Any = None
    current: str | None = Field(None, description="the state being executed or waited on")
    status: FrameStatus = FrameStatus.RUNNING
    visit: int = Field(0, description="the run's step number when the current state was entered")
    attempt: int = Field(0, description="0 before the current state starts, then 1, 2, ... per retry")
    retries: dict[str, int] = Field(default_factory=dict, description="retries used, by Retry entry index")
    entered_at: datetime | None = None
    request_id: str | None = None
    timer_id: str | None = None
    fan: FanOut | None = None


class RunState(BaseModel):
    """Everything the step function needs to continue a run; persist ``model_dump(mode="json")``."""

    run_id: str
    context: dict[str, Any] = Field(description="the $._context values")
    limits: Limits = Field(default_factory=Limits)
    status: RunStatus = RunStatus.ACTIVE
    steps: int = Field(0, description="states executed so far (retries included)")
    frames: dict[str, Frame]
    actions: dict[str, str] = Field(default_factory=dict, description="outstanding request id → frame id")
    timers: dict[str, TimerInfo] = Field(default_factory=dict, description="outstanding wakeups by timer id")
    private_keys: list[str] = Field(default_factory=list, description="__Private_Parameters names seen")
    error: str | None = None
    cause: str | None = None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None

    @property
    def document(self) -> Any:
        """The main flow's run state (the run's output once it succeeded). Not redacted."""
        return self.frames[""].data
