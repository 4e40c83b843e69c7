"""Tables of the flows domain: flows, runs and their logs, actions, timers, triggers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from beamlink.service.auth.models import User
from beamlink.service.db.base import Base, UTCDateTime, created_column, id_column

__all__ = ["ActionRow", "Flow", "Run", "RunEventRow", "Timer", "Trigger", "TriggerFile"]


class Flow(Base):
    """A stored definition. Roles (administrator, starter, viewer, run_manager, run_monitor) are grants."""

    __tablename__ = "flows"
    __table_args__ = (Index("ix_flows_owner", "owner_id"),)

    id: Mapped[str] = id_column()
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    title: Mapped[str] = mapped_column(String(128), nullable=False)
    subtitle: Mapped[str | None] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    input_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()

    owner: Mapped[User] = relationship(lazy="joined")


class Run(Base):
    """One execution of a flow.

    ``definition`` is a snapshot taken at start (editing the flow never changes a running run); ``state``
    is the flowlang :class:`~beamlink.flowlang.RunState` document, rewritten after every step;
    ``wake_at`` is its earliest timer, so the engine finds due runs with one indexed query.
    """

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_owner", "owner_id"),
        Index("ix_runs_flow", "flow_id"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_wake", "wake_at"),
        UniqueConstraint("owner_id", "request_id", name="uq_runs_owner_request"),
    )

    id: Mapped[str] = id_column()
    flow_id: Mapped[str] = mapped_column(String(36), nullable=False)
    flow_title: Mapped[str] = mapped_column(String(128), nullable=False)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(128))
    label: Mapped[str | None] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    input: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    output: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(String(128))
    cause: Mapped[str | None] = mapped_column(Text)
    steps: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    log_seq: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    wake_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    inactive_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RunEventRow(Base):
    """One entry of a run's log (FlowStarted, ActionStarted, PassCompleted, ...), secrets already hidden."""

    __tablename__ = "run_events"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_run_events_run_seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    time: Mapped[datetime] = created_column()
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    state_name: Mapped[str | None] = mapped_column(String(256))
    state_type: Mapped[str | None] = mapped_column(String(32))
    branch: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)


class ActionRow(Base):
    """One action: started by a run, or through the Action Provider API (``run_id`` is then null).

    ``request_id`` makes starting idempotent per creator and provider. ``ref`` is what the action
    drives (a compute task group, a transfer id, an external provider's action id), so completion
    notices find their action with one indexed lookup. ``body`` may hold secrets: it is never shown.
    """

    __tablename__ = "flow_actions"
    __table_args__ = (
        UniqueConstraint("creator_id", "provider", "request_id", name="uq_flow_actions_request"),
        Index("ix_flow_actions_run", "run_id"),
        Index("ix_flow_actions_ref", "ref"),
        Index("ix_flow_actions_poll", "status", "next_poll_at"),
    )

    id: Mapped[str] = id_column()
    request_id: Mapped[str] = mapped_column(String(256), nullable=False)
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    url: Mapped[str | None] = mapped_column(Text)
    dialect: Mapped[str] = mapped_column(String(32), default="beamlink", nullable=False)
    creator_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    state_name: Mapped[str | None] = mapped_column(String(256))
    body: Mapped[Any] = mapped_column(JSON, nullable=True)
    label: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    display_status: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[Any] = mapped_column(JSON, nullable=True)
    ref: Mapped[str | None] = mapped_column(String(256))
    monitor_by: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    manage_by: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    started: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    timeout_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    poll_interval: Mapped[float] = mapped_column(Float, default=1.0, nullable=False)
    log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, nullable=False)
    release_after_seconds: Mapped[float] = mapped_column(Float, default=30 * 86400, nullable=False)
    start_time: Mapped[datetime] = created_column()
    completion_time: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Timer(Base):
    """Starts runs of a flow once, every N seconds, or on a cron schedule."""

    __tablename__ = "flow_timers"
    __table_args__ = (Index("ix_flow_timers_due", "status", "next_run_at"),)

    id: Mapped[str] = id_column()
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    schedule: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    body: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    run_label: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_run_id: Mapped[str | None] = mapped_column(String(36))
    runs_started: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    ticks_skipped: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()


class Trigger(Base):
    """Starts a run of a flow for each new, complete file under a collection path."""

    __tablename__ = "flow_triggers"
    __table_args__ = (Index("ix_flow_triggers_status", "status"),)

    id: Mapped[str] = id_column()
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"), nullable=False)
    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    glob: Mapped[str] = mapped_column(String(256), nullable=False)
    recursive: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    quiet_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    poll_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    body: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    run_label: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    runs_started: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_run_id: Mapped[str | None] = mapped_column(String(36))
    last_error: Mapped[str | None] = mapped_column(Text)
    primed: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = created_column()


class TriggerFile(Base):
    """A file a trigger has seen: its size and mtime, since when they have not changed, and its run."""

    __tablename__ = "flow_trigger_files"

    trigger_id: Mapped[str] = mapped_column(
        ForeignKey("flow_triggers.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mtime: Mapped[float] = mapped_column(Float, nullable=False)
    stable_since: Mapped[datetime] = created_column()
    run_id: Mapped[str | None] = mapped_column(String(36))
