"""Transfer and delete tasks on the wire: the REST models of ``/v1/transfers`` and ``/v1/deletes``, and the
messages between the service and the collection agent that carries a task out.

A transfer runs on its DESTINATION collection's agent, which pulls from the source agent's data server
with short-lived tokens the service signs (or copies locally when both share a host). A delete runs on
its collection's agent. The agent reports progress (counts, at most a few times a second), events
(retries, faults, skipped sources) and a final ``transfer_done`` that it keeps on disk until the service
acknowledges it, so a service restart loses no outcome.

Data tokens are short-lived and a transfer may outlive one: the destination agent sends
``transfer_token_request`` when the token it holds nears its expiry, and the service answers
``transfer_token`` with a fresh one of the same scope, or with an error when it will not sign one
(:data:`TOKEN_ASK_LATER` means "not now, ask again"; any other code means "never for this transfer").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "SYNC_LEVELS",
    "TOKEN_ASK_LATER",
    "TRANSFER_STATES",
    "CancelTransfer",
    "DeleteCreate",
    "SourceAccess",
    "TransferCounts",
    "TransferCreate",
    "TransferDone",
    "TransferDoneAck",
    "TransferError",
    "TransferEvent",
    "TransferEvents",
    "TransferInfo",
    "TransferItem",
    "TransferJob",
    "TransferJobItem",
    "TransferOptions",
    "TransferProgress",
    "TransferToken",
    "TransferTokenRequest",
]

TRANSFER_STATES = ("ACTIVE", "INACTIVE", "SUCCEEDED", "FAILED")
SYNC_LEVELS = ("exists", "size", "mtime", "checksum")
SyncLevelName = Literal["exists", "size", "mtime", "checksum"]
TOKEN_ASK_LATER = "TRANSFER_INACTIVE"
"""The code of a refused ``transfer_token`` that may be granted later (a collection is away for now)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TransferItem(_Strict):
    source_path: str
    destination_path: str
    recursive: bool = False


class TransferOptions(_Strict):
    sync_level: SyncLevelName | None = Field(
        default=None, description="Skip files already at the destination (None: copy everything)."
    )
    verify_checksum: bool = False
    preserve_timestamps: bool = False
    delete_extra: bool = Field(default=False, description="Delete destination files absent at the source.")
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    skip_source_errors: bool = False
    checksum_algorithm: str | None = Field(default=None, description="Default: the destination's.")


class TransferCreate(_Strict):
    source: str = Field(description="Source collection: id, or the name of one of yours.")
    destination: str = Field(description="Destination collection: id, or the name of one of yours.")
    items: list[TransferItem] = Field(min_length=1, max_length=10_000)
    options: TransferOptions = Field(default_factory=TransferOptions)
    label: str | None = Field(default=None, max_length=200)
    deadline: datetime | None = None
    submission_id: str | None = Field(
        default=None, max_length=64, description="Submitting twice with the same id creates one task."
    )


class DeleteCreate(_Strict):
    collection: str
    paths: list[str] = Field(min_length=1, max_length=10_000)
    recursive: bool = False
    ignore_missing: bool = False
    label: str | None = Field(default=None, max_length=200)
    deadline: datetime | None = None
    submission_id: str | None = Field(default=None, max_length=64)


class TransferCounts(BaseModel):
    files: int = 0
    directories: int = 0
    bytes_transferred: int = 0
    bytes_expected: int = 0
    files_skipped: int = 0
    files_retried: int = 0
    faults: int = 0
    deleted: int = 0


class TransferError(BaseModel):
    code: str
    message: str


class TransferInfo(BaseModel):
    id: str
    kind: Literal["transfer", "delete"]
    label: str | None = None
    owner_id: str
    owner: str
    source_collection_id: str | None = None
    destination_collection_id: str
    items: list[dict[str, Any]]
    options: dict[str, Any]
    state: str
    status: str = Field(description="What it is doing now, in words (e.g. 'waiting for collection X').")
    error: TransferError | None = None
    counts: TransferCounts
    bytes_per_second: float | None = Field(default=None, description="Effective rate so far.")
    submission_id: str | None = None
    deadline: datetime | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None


class TransferEvent(BaseModel):
    seq: int = 0
    at: datetime
    code: str
    description: str
    is_error: bool = False
    details: dict[str, Any] = Field(default_factory=dict)


# -- agent WebSocket ---------------------------------------------------------------------------------


class SourceAccess(BaseModel):
    """How the destination agent reads the source: its data server and, when they share a host, its root."""

    collection_id: str
    data_url: str | None = None
    host: str | None = None
    root_path: str | None = None
    token: str | None = Field(
        default=None, description="Data token (read, list, checksum) for the items' common source prefix."
    )


class TransferJobItem(BaseModel):
    source_path: str = ""
    destination_path: str
    recursive: bool = False


class TransferJob(_Strict):
    type: Literal["transfer_job"] = "transfer_job"
    transfer_id: str
    kind: Literal["transfer", "delete"]
    items: list[TransferJobItem]
    options: TransferOptions = Field(default_factory=TransferOptions)
    source: SourceAccess | None = None
    deadline: datetime | None = None
    recursive: bool = False
    ignore_missing: bool = False


class CancelTransfer(_Strict):
    type: Literal["transfer_cancel"] = "transfer_cancel"
    transfer_id: str
    reason: str = "cancelled by its owner"


class TransferDoneAck(_Strict):
    type: Literal["transfer_done_ack"] = "transfer_done_ack"
    transfer_id: str


class TransferProgress(_Strict):
    type: Literal["transfer_progress"] = "transfer_progress"
    transfer_id: str
    counts: TransferCounts
    at: datetime


class TransferEvents(_Strict):
    type: Literal["transfer_events"] = "transfer_events"
    transfer_id: str
    events: list[TransferEvent]


class TransferDone(_Strict):
    type: Literal["transfer_done"] = "transfer_done"
    transfer_id: str
    state: Literal["SUCCEEDED", "FAILED"]
    error: TransferError | None = None
    counts: TransferCounts
    at: datetime


class TransferTokenRequest(_Strict):
    """Agent → service: a fresh data token for a transfer this agent runs, whose token nears its expiry."""

    type: Literal["transfer_token_request"] = "transfer_token_request"
    transfer_id: str


class TransferToken(_Strict):
    """Service → agent, the answer to ``transfer_token_request``: a fresh token, or why there is none."""

    type: Literal["transfer_token"] = "transfer_token"
    transfer_id: str
    token: str | None = Field(default=None, description="Same scope as the job's token, later expiry.")
    expires_at: datetime | None = None
    error: TransferError | None = None

    @model_validator(mode="after")
    def _token_or_error(self) -> TransferToken:
        granted = self.token is not None and self.expires_at is not None and self.error is None
        refused = self.token is None and self.expires_at is None and self.error is not None
        if not (granted or refused):
            raise ValueError("a transfer_token carries either token and expires_at, or error")
        return self
