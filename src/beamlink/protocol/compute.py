"""REST bodies of the compute domain: functions, endpoints, tasks and their results.

Payloads (a function's serialized form, arguments, results, exceptions) travel as opaque text: base64 of
a dill pickle made by :mod:`beamlink.serialize`. The service stores and forwards them and never
deserializes them; only the submitter's SDK and the endpoint do.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from beamlink.protocol.auth import Name

__all__ = [
    "JSON_PAYLOAD_PREFIX",
    "TERMINAL_STATES",
    "EndpointInfo",
    "EndpointRegister",
    "EndpointRegistered",
    "EndpointStatus",
    "Environment",
    "FunctionCode",
    "FunctionCreate",
    "FunctionInfo",
    "TaskBatch",
    "TaskBatchCreated",
    "TaskError",
    "TaskIds",
    "TaskInfo",
    "TaskOutput",
    "TaskResult",
    "TaskSpec",
    "TaskState",
    "TaskTransition",
    "is_json_payload",
    "json_arguments",
    "read_json_payload",
]

TaskState = Literal[
    "received", "waiting-for-endpoint", "dispatched", "running", "success", "failed", "cancelled"
]
TERMINAL_STATES: frozenset[str] = frozenset({"success", "failed", "cancelled"})
EndpointStatus = Literal["online", "offline", "never-connected"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Environment(BaseModel):
    """Where a function was serialized or will run: what must match for dill payloads to load."""

    python_version: str = Field(description="Full Python version, e.g. 3.11.7.")
    dill_version: str = Field(description="dill version, e.g. 0.4.1.")
    beamlink_version: str = Field(default="", description="beamlink version of the SDK or endpoint.")
    platform: str = Field(default="", description="OS and machine, for error messages.")

    @property
    def python_minor(self) -> str:
        return ".".join(self.python_version.split(".")[:2])

    def mismatch(self, other: Environment) -> str | None:
        """A sentence naming what differs between the two (None when they are compatible)."""
        problems = []
        if self.python_minor != other.python_minor:
            problems.append(f"Python {self.python_version} vs {other.python_version}")
        if self.dill_version != other.dill_version:
            problems.append(f"dill {self.dill_version} vs {other.dill_version}")
        return ", ".join(problems) or None


# -- functions -----------------------------------------------------------------------------------


class FunctionCreate(_Strict):
    name: Name = Field(description="The callable's name (its __name__).")
    serialized: str = Field(min_length=1, description="base64 dill of the callable (beamlink.serialize).")
    source: str | None = Field(default=None, description="Source text, when it could be read.")
    description: str | None = Field(default=None, max_length=4000)
    environment: Environment = Field(description="Python and dill versions of the registering SDK.")
    public: bool = Field(default=False, description="Anyone may see and run it.")


class FunctionInfo(BaseModel):
    id: str
    name: str
    description: str | None
    owner_id: str
    owner: str
    created_at: datetime
    environment: Environment
    has_source: bool
    public: bool
    source: str | None = Field(default=None, description="Only when asked for (?include=source).")


class FunctionCode(BaseModel):
    """What an endpoint needs to run a function."""

    id: str
    name: str
    serialized: str
    source: str | None = None
    environment: Environment


# -- endpoints -----------------------------------------------------------------------------------


class EndpointRegister(_Strict):
    """Sent by `beamlink endpoint start` (with the owner's token) each time the endpoint starts."""

    name: Name
    description: str | None = Field(default=None, max_length=4000)
    host: str | None = None
    engine: str | None = None
    environment: Environment | None = None
    allowed_functions: list[str] | None = Field(
        default=None, description="Function ids this endpoint runs; null: any the submitter may run."
    )
    config: dict[str, Any] = Field(default_factory=dict, description="The endpoint's config, for display.")


class EndpointInfo(BaseModel):
    id: str
    name: str
    description: str | None
    owner_id: str
    owner: str
    created_at: datetime
    status: EndpointStatus = Field(description="The service's view: online while an agent is connected.")
    connected_at: datetime | None
    last_heartbeat: datetime | None
    disconnected_at: datetime | None
    host: str | None
    engine: str | None
    environment: Environment | None
    allowed_functions: list[str] | None
    config: dict[str, Any]
    stats: dict[str, Any] = Field(default_factory=dict, description="From the last heartbeat.")
    agent_version: str | None = None


class EndpointRegistered(EndpointInfo):
    agent_secret: str = Field(description="Credential the agent connects with; replaced at every start.")


# -- tasks ---------------------------------------------------------------------------------------


class TaskSpec(_Strict):
    function_id: str
    args: str = Field(description="base64 dill of (args, kwargs), from beamlink.serialize.pack_arguments.")
    timeout: float | None = Field(
        default=None, gt=0, description="Seconds; past it the task fails TaskTimeout."
    )
    max_retries: int = Field(default=2, ge=0, le=100, description="Re-runs if the endpoint is lost.")


class TaskBatch(_Strict):
    """Many tasks in one request, all to one endpoint."""

    endpoint: str = Field(description="Endpoint id or name.")
    tasks: list[TaskSpec] = Field(min_length=1, max_length=10_000)
    task_group_id: str | None = Field(
        default=None, max_length=64, description="Groups tasks for result streaming; made up if absent."
    )
    environment: Environment = Field(description="The submitter's Python and dill versions.")
    submission_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Sending a batch again with the same id queues it once: the answer is the first one's.",
    )


class TaskBatchCreated(BaseModel):
    endpoint_id: str
    task_group_id: str
    task_ids: list[str]


class TaskIds(_Strict):
    task_ids: list[str] = Field(min_length=1, max_length=10_000)


class TaskTransition(BaseModel):
    state: TaskState
    at: datetime


class TaskError(BaseModel):
    """Why a task failed. ``exception`` is the pickled exception, for the SDK to re-raise as its own type."""

    code: str = Field(description="An error code from beamlink.errors, e.g. REMOTE_EXECUTION_ERROR.")
    message: str
    type_name: str | None = Field(default=None, description="module.qualname of the remote exception.")
    traceback: str | None = None
    exception: str | None = Field(default=None, description="base64 dill of the exception object.")


class TaskInfo(BaseModel):
    id: str
    function_id: str
    endpoint_id: str
    task_group_id: str
    owner_id: str
    state: TaskState
    created_at: datetime
    completed_at: datetime | None
    attempt: int
    max_retries: int
    timeout: float | None
    transitions: list[TaskTransition]
    error: TaskError | None
    result_size: int | None
    result_expires_at: datetime | None
    result_released: bool


class TaskResult(BaseModel):
    """The outcome of a task, as fetched or as streamed (SSE ``data:``) to the submitter."""

    id: str
    task_group_id: str
    state: TaskState
    result: str | None = Field(default=None, description="base64 dill of the return value (success).")
    error: TaskError | None = None
    completed_at: datetime | None = None


class TaskOutput(BaseModel):
    id: str
    stdout: str
    stderr: str


#: Payloads that start with this are JSON, not base64 dill: what flows send (the service may build and
#: read them, as it never unpickles) — ``{"args": [...], "kwargs": {...}}`` in, the return value out.
JSON_PAYLOAD_PREFIX = "json:"


def is_json_payload(text: str | None) -> bool:
    return text is not None and text.startswith(JSON_PAYLOAD_PREFIX)


def json_arguments(args: list[Any] | tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The JSON form of a call's arguments."""
    return JSON_PAYLOAD_PREFIX + json.dumps({"args": list(args), "kwargs": kwargs}, separators=(",", ":"))


def read_json_payload(text: str) -> Any:
    """The value of a JSON payload (ValueError when it is not one)."""
    if not is_json_payload(text):
        raise ValueError("not a JSON payload")
    return json.loads(text[len(JSON_PAYLOAD_PREFIX) :])
