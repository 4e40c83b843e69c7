"""What an action provider is: the interface every built-in (and the external HTTP client) implements.

An action is an :class:`~beamlink.service.flows.models.ActionRow`. A provider works on it in two ways:

* **in the database transaction** (``start``, ``refresh``, ``cancel``): providers whose work is itself a
  database row — a compute task group, a transfer — create or read it in the same transaction that
  steps the run, so a run's step and the work it starts commit together (nothing to repeat after a
  crash, nothing started twice). What must happen on the wire once that commits (send tasks to an
  endpoint, wake a collection agent) is queued on :attr:`ActionCall.after_commit`.
* **in the background** (``drive``): providers that wait on I/O (a collection agent's answer, a webhook,
  an external Action Provider) start a coroutine after the commit; it reports through
  :class:`Reporter`. ``drive`` is started again for every ACTIVE action when the service restarts, so
  it must be idempotent (it reads ``action.ref`` to know what it already did).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from sqlalchemy.orm import Session

from beamlink.protocol.flows import ProviderDescription
from beamlink.service.auth.principal import Principal
from beamlink.service.flows.models import ActionRow

if TYPE_CHECKING:
    from beamlink.service.state import ServiceState

__all__ = [
    "TERMINAL",
    "ActionCall",
    "ActionSnapshot",
    "Progress",
    "Provider",
    "Reporter",
    "Status",
]

Status = Literal["ACTIVE", "INACTIVE", "SUCCEEDED", "FAILED"]
TERMINAL = frozenset({"SUCCEEDED", "FAILED"})


@dataclass(frozen=True)
class Progress:
    """Where an action is: its status, its details (the result once it SUCCEEDED), and what it drives."""

    status: Status
    details: Any = None
    display_status: str | None = None
    ref: str | None = None


@dataclass
class ActionCall:
    """One provider call inside a transaction."""

    session: Session
    principal: Principal
    services: ServiceState
    action: ActionRow
    after_commit: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)


@dataclass(frozen=True)
class ActionSnapshot:
    """What ``drive`` gets: a detached copy of the action (the row's session is gone by then)."""

    id: str
    request_id: str
    provider: str
    url: str | None
    dialect: str
    creator_id: str
    run_id: str | None
    body: Any
    ref: str | None
    timeout_at: Any
    poll_interval: float

    @classmethod
    def of(cls, row: ActionRow) -> ActionSnapshot:
        return cls(
            id=row.id,
            request_id=row.request_id,
            provider=row.provider,
            url=row.url,
            dialect=row.dialect,
            creator_id=row.creator_id,
            run_id=row.run_id,
            body=row.body,
            ref=row.ref,
            timeout_at=row.timeout_at,
            poll_interval=row.poll_interval,
        )


class Reporter(Protocol):
    """How a background ``drive`` reports (implemented by the flow engine)."""

    services: ServiceState

    async def report(self, action_id: str, progress: Progress, *, log: str | None = None) -> None:
        """Store the action's progress; a terminal one wakes its run."""

    async def principal(self, user_id: str) -> Principal:
        """The principal of a user, to act as an action's creator."""

    async def still_active(self, action_id: str) -> bool:
        """False once the action ended (canceled, timed out, released): a drive loop stops then."""

    async def token_for(self, user_id: str, *, ttl_seconds: int, purpose: str) -> str:
        """A fresh short-lived bearer token of the user, to call an external provider as them. It is
        kept only in memory: a restarted drive asks for a new one."""


class Provider:
    """Base of every provider. Subclasses set ``name`` and ``description`` and override what they do."""

    name: ClassVar[str]
    description: ClassVar[ProviderDescription]
    #: True when ``drive`` does the work (after the commit, and again after a restart).
    background: ClassVar[bool] = False

    def start(self, call: ActionCall) -> Progress:
        """Begin the action (``call.action.body`` is the request body). Raise a beamlink error to refuse
        it (the run sees ActionUnableToRun with the error's message)."""
        raise NotImplementedError

    def refresh(self, call: ActionCall) -> Progress | None:
        """The current progress from whatever the action drives; None when only ``drive`` knows."""
        return None

    def cancel(self, call: ActionCall) -> Progress | None:
        """Ask the work to stop (advisory); the progress now, or None if nothing changed yet."""
        return Progress(status="FAILED", details={"code": "Canceled", "description": "canceled"})

    def release(self, call: ActionCall) -> None:
        """Drop what the action kept (its result) once its creator has read it."""

    async def drive(self, action: ActionSnapshot, reporter: Reporter) -> None:
        """Do the background work of an ACTIVE action and report its outcome (background providers)."""


Dialect = Literal["beamlink", "globus", "globus-legacy", "globus-v3", "external"]
