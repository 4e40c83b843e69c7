"""Collections on the wire: the REST models of ``/v1/collections`` and the messages a collection agent
exchanges with the service on its WebSocket (``GET /v1/agents/connect``, as endpoints do).

Paths are root-relative and in *wire form* (see :mod:`beamlink.agents.collection.paths`): UTF-8 text in
which a byte that is not UTF-8 is written ``\\xHH`` and a backslash ``\\\\``.

agent → service: ``collection_hello`` first, then ``heartbeat``, ``op_result`` (the answer to an ``op``)
and the transfer messages of :mod:`beamlink.protocol.transfers`. service → agent: ``collection_welcome``,
``op`` (ls, stat, mkdir, rename), each with a request id its answer repeats, ``transfer_job``,
``transfer_cancel``, ``transfer_done_ack`` and ``transfer_token`` (the answer to the agent's
``transfer_token_request``). Operations are idempotent or refused with a reason, so a
request lost with its connection is simply retried by the caller.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from beamlink.protocol.agent import Heartbeat, decode_frame
from beamlink.protocol.transfers import (
    CancelTransfer,
    TransferDone,
    TransferDoneAck,
    TransferEvents,
    TransferJob,
    TransferProgress,
    TransferToken,
    TransferTokenRequest,
)

__all__ = [
    "OPERATIONS",
    "CollectionAgentMessage",
    "CollectionHello",
    "CollectionInfo",
    "CollectionRegister",
    "CollectionRegistered",
    "CollectionServiceMessage",
    "CollectionUpdate",
    "CollectionWelcome",
    "DirectoryPage",
    "FileEntry",
    "MakeDirectory",
    "OpError",
    "OpRequest",
    "OpResult",
    "Rename",
    "RuleCreate",
    "RuleInfo",
    "decode_collection_agent_message",
    "decode_collection_service_message",
]

OPERATIONS = ("ls", "stat", "mkdir", "rename", "delete")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- REST --------------------------------------------------------------------------------------------


class CollectionRegister(_Strict):
    """Sent by `beamlink collection start` (with the owner's token) each time the collection starts."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    host: str | None = None
    root_path: str | None = Field(default=None, description="Where the collection lives on its host.")
    config: dict[str, Any] = Field(default_factory=dict)


class CollectionInfo(BaseModel):
    id: str
    name: str
    description: str | None = None
    owner_id: str
    owner: str
    created_at: datetime
    status: Literal["online", "offline", "never-connected"]
    connected_at: datetime | None = None
    last_heartbeat: datetime | None = None
    disconnected_at: datetime | None = None
    host: str | None = None
    root_path: str | None = None
    data_url: str | None = Field(default=None, description="The agent's data server, as it advertises it.")
    public_read: bool = False
    config: dict[str, Any] = Field(default_factory=dict)
    stats: dict[str, Any] = Field(default_factory=dict)
    agent_version: str | None = None


class CollectionRegistered(CollectionInfo):
    agent_secret: str = Field(description="Authenticates the agent's WebSocket; shown once.")
    data_key: str = Field(description="Hex key the agent verifies data-plane tokens with; shown once.")


class CollectionUpdate(_Strict):
    description: str | None = None
    public_read: bool | None = None


class RuleCreate(_Strict):
    principal_type: Literal["user", "group"]
    principal: str = Field(description="User or group: id or name.")
    path: str = Field(default="", description="Root-relative path prefix the rule covers ('' = all).")
    permission: Literal["read", "read-write"] = "read"


class RuleInfo(BaseModel):
    id: str
    collection_id: str
    principal_type: str
    principal_id: str
    principal_name: str | None = None
    path: str
    permission: str
    created_at: datetime


class FileEntry(BaseModel):
    name: str
    type: Literal["file", "dir", "link", "other"]
    size: int
    mtime: float
    mode: int


class DirectoryPage(BaseModel):
    path: str
    entries: list[FileEntry]
    next_cursor: str | None = Field(default=None, description="Pass as ?after= for the next page.")


class MakeDirectory(_Strict):
    path: str
    parents: bool = False
    exist_ok: bool = False


class Rename(_Strict):
    old_path: str
    new_path: str
    overwrite: bool = False


# -- agent WebSocket ---------------------------------------------------------------------------------


class CollectionHello(_Strict):
    type: Literal["collection_hello"] = "collection_hello"
    agent_version: str
    host: str
    root_path: str
    data_url: str | None = Field(default=None, description="Base URL of the agent's data server.")
    checksum_algorithm: str = "xxh3"
    heartbeat_period: float = 30.0
    stats: dict[str, Any] = Field(default_factory=dict)
    held_transfer_ids: list[str] = Field(
        default_factory=list, description="Tasks the agent runs or has finished but not yet reported."
    )


class OpError(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class OpResult(_Strict):
    type: Literal["op_result"] = "op_result"
    request_id: str
    result: Any = None
    error: OpError | None = None


class CollectionWelcome(_Strict):
    type: Literal["collection_welcome"] = "collection_welcome"
    collection_id: str
    heartbeat_period: float


class OpRequest(_Strict):
    type: Literal["op"] = "op"
    request_id: str
    op: Literal["ls", "stat", "mkdir", "rename", "delete"]
    args: dict[str, Any] = Field(default_factory=dict)


CollectionAgentMessage = Annotated[
    CollectionHello
    | Heartbeat
    | OpResult
    | TransferProgress
    | TransferEvents
    | TransferDone
    | TransferTokenRequest,
    Field(discriminator="type"),
]
CollectionServiceMessage = Annotated[
    CollectionWelcome | OpRequest | TransferJob | CancelTransfer | TransferDoneAck | TransferToken,
    Field(discriminator="type"),
]

_AGENT: TypeAdapter[CollectionAgentMessage] = TypeAdapter(CollectionAgentMessage)
_SERVICE: TypeAdapter[CollectionServiceMessage] = TypeAdapter(CollectionServiceMessage)


def decode_collection_agent_message(frame: str | bytes) -> CollectionAgentMessage:
    message: CollectionAgentMessage = decode_frame(_AGENT, frame, "collection agent")
    return message


def decode_collection_service_message(frame: str | bytes) -> CollectionServiceMessage:
    message: CollectionServiceMessage = decode_frame(_SERVICE, frame, "service")
    return message
