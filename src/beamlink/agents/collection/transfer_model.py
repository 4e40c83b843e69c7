"""What a transfer is and what it reports: the transfer worker's public data (see :mod:`.pull`).

Plain dataclasses and enums, with no I/O, so the agent daemon and the service can build and read them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from beamlink.agents.collection.checksums import DEFAULT_ALGORITHM, AlgorithmName, check_algorithm
from beamlink.agents.collection.config import DEFAULT_CHUNK_SIZE
from beamlink.agents.collection.plan import SyncLevel
from beamlink.errors import InvalidInput

__all__ = [
    "EventCode",
    "Fault",
    "Progress",
    "TransferEvent",
    "TransferItem",
    "TransferSpec",
    "TransferStatus",
    "TransferSummary",
]


class TransferItem(NamedTuple):
    """One source path and where it goes; ``destination_path`` is the full path, also for a file."""

    source_path: str
    destination_path: str
    recursive: bool = False


@dataclass(frozen=True)
class TransferSpec:
    """What to transfer and how (Globus's transfer document, the parts the worker needs)."""

    items: Sequence[TransferItem | tuple[str, str, bool]]
    sync_level: SyncLevel | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    delete_extra: bool = False
    preserve_timestamps: bool = False
    verify_checksum: bool = False
    checksum_algorithm: AlgorithmName = DEFAULT_ALGORITHM
    skip_source_errors: bool = False
    concurrency: int = 8
    """Requests (or same-host copies) in flight at once, over all files of the transfer."""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    direct_writes: bool = True
    """Write whole blocks of large files pulled over the network ``O_DIRECT`` (see :mod:`.chunk_sink`)."""
    max_file_retries: int = 3
    """Times a file (or chunk) whose checksum did not match, or whose source changed, is sent again."""
    deadline: float | None = None
    """Unix time by which the transfer must end; past it, it stops and fails."""
    source_collection_id: str | None = None
    destination_collection_id: str | None = None
    """With both ids equal, transfers onto or into themselves are refused (check_transfer_paths)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(TransferItem(*item) for item in self.items))
        check_algorithm(self.checksum_algorithm)
        if self.concurrency < 1 or self.chunk_size <= 0 or self.max_file_retries < 0:
            raise InvalidInput("concurrency and chunk_size must be positive and max_file_retries >= 0")


class EventCode(StrEnum):
    """Stable codes of transfer events (Globus's task event codes where one fits)."""

    STARTED = "STARTED"
    """The worker began the transfer."""
    SOURCE_NOT_FOUND = "SOURCE_NOT_FOUND"
    """An item's source does not exist (counted as a fault)."""
    SKIPPED_SOURCE_ERROR = "SKIPPED_SOURCE_ERROR"
    """A source path could not be read and ``skip_source_errors`` let the transfer go on without it."""
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    """Received bytes did not hash to the source's digest; they are fetched again."""
    RETRY = "RETRY"
    """A transient error, or a file sent again; ``details`` say which and the attempt."""
    FAULT = "FAULT"
    """A path was given up on; ``details`` carry the error code, the path and the message."""
    DELETED_EXTRA = "DELETED_EXTRA"
    """A destination path the source lacks was deleted (``delete_extra``)."""
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    """The deadline passed: the transfer stopped."""
    CANCELLED = "CANCELLED"
    """The transfer was cancelled and stopped; partial files stay for a later resume."""
    SUCCEEDED = "SUCCEEDED"
    """Every path was transferred, skipped by the sync level, or skipped as allowed."""
    FAILED = "FAILED"
    """The transfer ended with faults or past its deadline; ``description`` says why."""


class TransferStatus(StrEnum):
    """How a transfer ended (all three are terminal)."""

    SUCCEEDED = "SUCCEEDED"
    """Every path transferred or skipped as allowed."""
    FAILED = "FAILED"
    """Some paths failed, or the deadline passed; ``reason`` says which."""
    CANCELLED = "CANCELLED"
    """Stopped on request; running it again resumes."""


@dataclass(frozen=True, slots=True)
class TransferEvent:
    """One thing that happened; ``details`` hold paths in wire form and error codes."""

    code: EventCode
    description: str
    details: dict[str, Any] = field(default_factory=dict)
    is_error: bool = False
    time: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class Progress:
    """Counts so far (each report repeats the totals). Planned totals grow as the walk goes on."""

    files: int = 0
    """Files transferred (published under their name)."""
    directories: int = 0
    """Directories created."""
    files_planned: int = 0
    bytes_planned: int = 0
    bytes_transferred: int = 0
    """Bytes received (or copied on this host) by this run, resent bytes included."""
    bytes_resumed: int = 0
    """Bytes of chunks a previous, interrupted run had already written and verified."""
    skipped: int = 0
    """Paths left alone: the sync level found them current, not regular files, or skipped errors."""
    deleted: int = 0
    retried: int = 0
    faults: int = 0
    """Paths given up on."""


@dataclass(frozen=True, slots=True)
class Fault:
    """A path given up on."""

    path: str
    """The destination path (wire form)."""
    source_path: str
    code: str
    message: str


@dataclass(frozen=True)
class TransferSummary:
    """How the transfer ended, with the final counts and the first faults."""

    status: TransferStatus
    reason: str | None
    progress: Progress
    faults: tuple[Fault, ...]
    """The first 100 faults."""
    started: float
    finished: float
