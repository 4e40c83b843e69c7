"""Tables of the transfer domain: collections, their access rules, transfer and delete tasks, events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from beamlink.service.agent_rows import AgentRow
from beamlink.service.auth.models import User
from beamlink.service.db.base import Base, UTCDateTime, created_column, id_column

__all__ = ["Collection", "CollectionRule", "Transfer", "TransferEventRow"]


class Collection(AgentRow, Base):
    """A data agent serving one root directory, as the service knows it.

    ``data_key`` signs the short-lived data-plane tokens its agent verifies; unlike the agent secret it
    is kept in clear, because the service must be able to sign with it (it never leaves the service and
    the agent's profile).
    """

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_collections_owner_name"),)

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    data_key: Mapped[str] = mapped_column(String(64), nullable=False)
    root_path: Mapped[str | None] = mapped_column(Text)
    data_url: Mapped[str | None] = mapped_column(Text)
    checksum_algorithm: Mapped[str | None] = mapped_column(String(16))
    public_read: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    created_at: Mapped[datetime] = created_column()

    owner: Mapped[User] = relationship(lazy="joined")


class CollectionRule(Base):
    """Access for a user or a group to a path prefix of a collection: ``read`` or ``read-write``."""

    __tablename__ = "collection_rules"
    __table_args__ = (
        Index("ix_collection_rules_collection", "collection_id"),
        Index("ix_collection_rules_principal", "principal_type", "principal_id"),
    )

    id: Mapped[str] = id_column()
    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    )
    principal_type: Mapped[str] = mapped_column(String(16), nullable=False)
    principal_id: Mapped[str] = mapped_column(String(36), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False, default="")
    permission: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = created_column()


class Transfer(Base):
    """A transfer (source → destination collection) or a delete (in one collection), run by the agent of
    ``destination_id``. ``held`` records that the agent confirmed it has the job (it resumes it after
    its own restart); ``done_at`` the agent-reported end, kept until the owner looks."""

    __tablename__ = "transfers"
    __table_args__ = (
        Index("ix_transfers_owner", "owner_id"),
        Index("ix_transfers_destination_state", "destination_id", "state"),
        UniqueConstraint("owner_id", "submission_id", name="uq_transfers_owner_submission"),
    )

    id: Mapped[str] = id_column()
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    label: Mapped[str | None] = mapped_column(String(200))
    submission_id: Mapped[str | None] = mapped_column(String(64))
    source_id: Mapped[str | None] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    destination_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    )
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    held: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    events_seen: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_column()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    owner: Mapped[User] = relationship(lazy="joined")


class TransferEventRow(Base):
    """One entry of a task's event log (retries, faults, skipped sources, state changes)."""

    __tablename__ = "transfer_events"
    __table_args__ = (Index("ix_transfer_events_transfer", "transfer_id", "seq"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    transfer_id: Mapped[str] = mapped_column(ForeignKey("transfers.id", ondelete="CASCADE"), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    is_error: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
