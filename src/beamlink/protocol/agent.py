"""Messages on the agent WebSocket (``GET /v1/agents/connect``): one JSON object per text frame.

The agent authenticates with headers: ``X-Beamlink-Agent: <endpoint id>`` and ``Authorization: Bearer
<agent secret>`` (the secret returned by the last registration). Then:

agent → service: ``hello`` first, then ``heartbeat``, ``ack`` (tasks received), ``started``, ``results``
(spooled on disk until acknowledged), ``goodbye`` (tasks handed back at a clean stop).

service → agent: ``welcome`` (answer to hello), ``tasks`` (a batch, with the code of functions not yet sent
on this connection), ``result_ack``, ``cancel``.

Delivery is at-least-once in both directions and every handler is idempotent by task id: a re-sent task
the agent already holds is ignored, a re-sent result for a finished task is acknowledged and dropped.
A frame that is not a valid message closes the connection with code :data:`CLOSE_INVALID` and a reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from beamlink.errors import InvalidInput
from beamlink.protocol.compute import Environment, FunctionCode, TaskError

__all__ = [
    "AGENT_HEADER",
    "CLOSE_AUTH",
    "CLOSE_INVALID",
    "CLOSE_REPLACED",
    "PROTOCOL_VERSION",
    "AgentMessage",
    "CancelTasks",
    "Goodbye",
    "Heartbeat",
    "Hello",
    "ResultAck",
    "ServiceMessage",
    "TaskAck",
    "TaskAssignment",
    "TaskDispatch",
    "TaskOutcome",
    "TaskResults",
    "TaskStarted",
    "Welcome",
    "decode_agent_message",
    "decode_frame",
    "decode_service_message",
    "encode",
]

PROTOCOL_VERSION = 1
AGENT_HEADER = "X-Beamlink-Agent"

# WebSocket close codes (4000-4999 are for applications).
CLOSE_INVALID = 4400  # a frame that is not a valid message; the reason says what was wrong
CLOSE_AUTH = 4401  # unknown agent or wrong secret (another instance started and replaced the secret)
CLOSE_REPLACED = 4409  # a newer connection of the same agent took over


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- agent → service -----------------------------------------------------------------------------


class Hello(_Message):
    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    agent_version: str
    host: str
    environment: Environment
    engine: str
    heartbeat_period: float = 30.0
    allowed_functions: list[str] | None = None
    held_task_ids: list[str] = Field(
        default_factory=list, description="Tasks the agent holds: queued, running, or results spooled."
    )
    stats: dict[str, Any] = Field(default_factory=dict)


class Heartbeat(_Message):
    type: Literal["heartbeat"] = "heartbeat"
    stats: dict[str, Any] = Field(default_factory=dict)


class TaskAck(_Message):
    type: Literal["ack"] = "ack"
    task_ids: list[str]


class TaskStarted(_Message):
    type: Literal["started"] = "started"
    task_ids: list[str]
    at: datetime


class TaskOutcome(BaseModel):
    task_id: str
    state: Literal["success", "failed", "cancelled"]
    result: str | None = None
    error: TaskError | None = None
    stdout: str = ""
    stderr: str = ""
    started_at: datetime | None = None
    finished_at: datetime


class TaskResults(_Message):
    type: Literal["results"] = "results"
    results: list[TaskOutcome]


class Goodbye(_Message):
    type: Literal["goodbye"] = "goodbye"
    returned_task_ids: list[str] = Field(
        default_factory=list, description="Tasks the agent will not finish; the service queues them again."
    )


# -- service → agent -----------------------------------------------------------------------------


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    endpoint_id: str
    heartbeat_period: float
    result_limit: int = Field(description="Largest serialized result the service accepts, in bytes.")


class TaskAssignment(BaseModel):
    task_id: str
    function_id: str
    args: str
    timeout: float | None = None
    attempt: int = 1
    submitter_environment: Environment


class TaskDispatch(_Message):
    type: Literal["tasks"] = "tasks"
    functions: list[FunctionCode] = Field(
        default_factory=list, description="Code of the functions not yet sent on this connection."
    )
    tasks: list[TaskAssignment]


class ResultAck(_Message):
    type: Literal["result_ack"] = "result_ack"
    task_ids: list[str]


class CancelTasks(_Message):
    type: Literal["cancel"] = "cancel"
    task_ids: list[str]


AgentMessage = Annotated[
    Hello | Heartbeat | TaskAck | TaskStarted | TaskResults | Goodbye, Field(discriminator="type")
]
ServiceMessage = Annotated[Welcome | TaskDispatch | ResultAck | CancelTasks, Field(discriminator="type")]

_AGENT: TypeAdapter[AgentMessage] = TypeAdapter(AgentMessage)
_SERVICE: TypeAdapter[ServiceMessage] = TypeAdapter(ServiceMessage)


def encode(message: BaseModel) -> str:
    return message.model_dump_json()


def decode_frame(adapter: TypeAdapter[Any], frame: str | bytes, sender: str) -> Any:
    """Parse ``frame`` with ``adapter``; InvalidInput names the first problem and where it is."""
    try:
        return adapter.validate_json(frame)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        raise InvalidInput(
            f"invalid {sender} message at {where}: {first['msg']}",
            details={"errors": exc.errors(include_url=False, include_context=False, include_input=False)},
        ) from exc


def decode_agent_message(frame: str | bytes) -> AgentMessage:
    """Parse a frame from an agent; InvalidInput names what is wrong."""
    message: AgentMessage = decode_frame(_AGENT, frame, "agent")
    return message


def decode_service_message(frame: str | bytes) -> ServiceMessage:
    message: ServiceMessage = decode_frame(_SERVICE, frame, "service")
    return message
