"""Tables of the auth domain and the queries that belong with them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from beamlink.service.db.base import Base, UTCDateTime, created_column, id_column

__all__ = ["ApiToken", "Client", "Grant", "Group", "GroupMember", "User"]


class User(Base):
    """An identity: a person (``kind='user'``) or an automation client (``kind='client'``)."""

    __tablename__ = "users"

    id: Mapped[str] = id_column()
    username: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), default="user", nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[datetime] = created_column()

    @staticmethod
    def by_username(session: Session, username: str) -> User | None:
        return session.scalar(select(User).where(User.username == username))


class Client(Base):
    """Client credentials for automation; the client acts as its own identity (``identity``)."""

    __tablename__ = "clients"

    id: Mapped[str] = id_column()  # the public client id
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    identity_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[datetime] = created_column()

    identity: Mapped[User] = relationship(foreign_keys=[identity_id], lazy="joined")


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored: tokens are 256 random bits, so a slow hash adds nothing."""

    __tablename__ = "tokens"
    __table_args__ = (Index("ix_tokens_identity", "identity_id"),)

    id: Mapped[str] = id_column()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    identity_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = created_column()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    identity: Mapped[User] = relationship(lazy="joined")


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[datetime] = created_column()

    owner: Mapped[User] = relationship(lazy="joined")


class GroupMember(Base):
    __tablename__ = "group_members"
    __table_args__ = (
        UniqueConstraint("group_id", "identity_id"),
        Index("ix_group_members_identity", "identity_id"),
    )

    id: Mapped[str] = id_column()
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), nullable=False)
    identity_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    role: Mapped[str] = mapped_column(String(16), default="member", nullable=False)
    created_at: Mapped[datetime] = created_column()

    identity: Mapped[User] = relationship(lazy="joined")


class Grant(Base):
    """A role on one object given to a user, a group, ``public`` or ``all_authenticated_users``.

    One table for every domain: ``object_type`` names the domain's kind of object (``group``, ``flow``,
    ``collection``, ...), so the permission layer and its queries are written once.
    """

    __tablename__ = "grants"
    __table_args__ = (
        UniqueConstraint(
            "object_type", "object_id", "principal_type", "principal_id", "role", name="uq_grants_key"
        ),
        Index("ix_grants_object", "object_type", "object_id"),
        Index("ix_grants_principal", "principal_type", "principal_id"),
    )

    id: Mapped[str] = id_column()
    object_type: Mapped[str] = mapped_column(String(40), nullable=False)
    object_id: Mapped[str] = mapped_column(String(64), nullable=False)
    principal_type: Mapped[str] = mapped_column(String(32), nullable=False)
    # Empty string (not NULL) for public/all_authenticated_users, so the unique key holds on every backend.
    principal_id: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    role: Mapped[str] = mapped_column(String(60), nullable=False)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_column()
