"""Tables of the compute domain: functions, endpoints, tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from beamlink.service.agent_rows import AgentRow
from beamlink.service.auth.models import User
from beamlink.service.db.base import Base, UTCDateTime, created_column, id_column

__all__ = ["Endpoint", "Function", "Task", "TaskSubmission"]


class Function(Base):
    """A registered callable: its pickle (opaque to the service), its source when known, and the Python and
    dill versions it was pickled with."""

    __tablename__ = "functions"
    __table_args__ = (Index("ix_functions_owner", "owner_id"),)

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    serialized: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str | None] = mapped_column(Text)
    environment: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = created_column()

    owner: Mapped[User] = relationship(lazy="joined")


class Endpoint(AgentRow, Base):
    """A compute agent as the service knows it. ``connected_at`` set and ``disconnected_at`` null means an
    agent is connected now (reset at service start: connections do not survive a restart)."""

    __tablename__ = "endpoints"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_endpoints_owner_name"),)

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    engine: Mapped[str | None] = mapped_column(String(32))
    environment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    allowed_functions: Mapped[list[str] | None] = mapped_column(JSON)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    created_at: Mapped[datetime] = created_column()

    owner: Mapped[User] = relationship(lazy="joined")


class Task(Base):
    """One execution of a function on an endpoint. ``transitions`` is the timestamped state history.

    ``acked`` records that the endpoint confirmed receipt: a task lost after that counts against
    ``max_retries``; one lost before it is simply sent again.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_endpoint_state", "endpoint_id", "state"),
        Index("ix_tasks_group", "task_group_id"),
        Index("ix_tasks_owner", "owner_id"),
        Index("ix_tasks_expiry", "result_expires_at"),
    )

    id: Mapped[str] = id_column()
    function_id: Mapped[str] = mapped_column(String(36), nullable=False)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    task_group_id: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    acked: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    args: Mapped[str | None] = mapped_column(Text)
    environment: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    timeout: Mapped[float | None] = mapped_column(Float)
    max_retries: Mapped[int] = mapped_column(Integer, default=2, nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    transitions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, nullable=False)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result: Mapped[str | None] = mapped_column(Text)
    result_size: Mapped[int | None] = mapped_column(Integer)
    result_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result_released: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    stdout: Mapped[str] = mapped_column(Text, default="", nullable=False)
    stderr: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_at: Mapped[datetime] = created_column()
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TaskGroup(Base):
    """Whose a task group is: the first user to name it. Claimed by the first batch naming it, in that
    batch's transaction, so two users naming one new group at once cannot both get it. Groups made up
    by the service (a random UUID per batch) get no row until someone names them."""

    __tablename__ = "task_groups"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[datetime] = created_column()


class TaskSubmission(Base):
    """A batch submitted with a ``submission_id``: what it created, so the same batch sent again (a retry
    after a connection broke before the answer came) is answered the same instead of queued twice.
    ``digest`` identifies the batch's contents, to refuse another batch under a used id."""

    __tablename__ = "task_submissions"
    __table_args__ = (Index("ix_task_submissions_created", "created_at"),)

    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(String(32), nullable=False)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False)
    task_group_id: Mapped[str] = mapped_column(String(64), nullable=False)
    task_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = created_column()
