"""The submitter's WebSocket, ``GET /v1/tasks/session``: task batches in, their results pushed back.

What :class:`beamlink.sdk.Executor` speaks. A batch is the same :class:`TaskBatch` ``POST /v1/tasks``
takes and is answered in order, by ``ref``, with the same :class:`TaskBatchCreated` or the same error
body; ``watch`` streams a task group's results (finished ones first), as ``GET /v1/tasks/stream`` does.
One connection carries both, so a round trip costs two frames instead of an HTTP request (whose
routing, dependencies and middleware were half the service's CPU per task) plus an event.

The socket authenticates with ``Authorization: Bearer <token>`` at the handshake. A refused token is a
``refused`` message with neither ``ref`` nor ``task_group_id``, then a close with :data:`CLOSE_AUTH`. A
submit whose batch is invalid is refused like a 422 and the connection goes on; any other frame that is
not a valid message closes it with :data:`CLOSE_INVALID` and a reason naming the problem.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from beamlink.protocol.agent import CLOSE_AUTH, CLOSE_INVALID, decode_frame
from beamlink.protocol.compute import TaskBatch, TaskBatchCreated, TaskResult

__all__ = [
    "CLOSE_AUTH",
    "CLOSE_INVALID",
    "Refused",
    "Results",
    "SessionMessage",
    "SubmitBatch",
    "Submitted",
    "SubmitterMessage",
    "WatchGroup",
    "decode_session_message",
    "decode_submitter_message",
]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- submitter → service --------------------------------------------------------------------------


class SubmitBatch(_Message):
    type: Literal["submit"] = "submit"
    ref: int = Field(description="Echoed in the answer; the submitter's own counter.")
    batch: TaskBatch


class WatchGroup(_Message):
    type: Literal["watch"] = "watch"
    task_group_id: str = Field(min_length=1, max_length=64)


# -- service → submitter --------------------------------------------------------------------------


class Submitted(_Message):
    type: Literal["submitted"] = "submitted"
    ref: int
    created: TaskBatchCreated


class Refused(_Message):
    """A submit or watch that failed: ``error`` is the body HTTP would send with ``status``."""

    type: Literal["refused"] = "refused"
    ref: int | None = Field(default=None, description="The submit refused (None: not a submit).")
    task_group_id: str | None = Field(default=None, description="The watch refused.")
    status: int
    error: dict[str, Any]


class Results(_Message):
    type: Literal["results"] = "results"
    results: list[TaskResult]


SubmitterMessage = Annotated[SubmitBatch | WatchGroup, Field(discriminator="type")]
SessionMessage = Annotated[Submitted | Refused | Results, Field(discriminator="type")]

_SUBMITTER: TypeAdapter[SubmitterMessage] = TypeAdapter(SubmitterMessage)
_SESSION: TypeAdapter[SessionMessage] = TypeAdapter(SessionMessage)


def decode_submitter_message(frame: str | bytes) -> SubmitterMessage:
    """Parse a frame from a submitter; InvalidInput names what is wrong."""
    message: SubmitterMessage = decode_frame(_SUBMITTER, frame, "submitter")
    return message


def decode_session_message(frame: str | bytes) -> SessionMessage:
    message: SessionMessage = decode_frame(_SESSION, frame, "service")
    return message
