"""What every agent's row has, whatever the agent does: the secret its WebSocket authenticates with, and
its connection state. Endpoints (``compute``) and collections (``transfer``) share these columns and the
functions below; each domain adds its own columns and rules.

``connected_at`` set and ``disconnected_at`` null means an agent is connected now; every row is marked
disconnected when the service starts, since connections do not survive a restart.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import JSON, String, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from beamlink.service.auth.tokens import hash_token
from beamlink.service.db.base import UTCDateTime, utcnow

__all__ = [
    "AGENT_SECRET_PREFIX",
    "AgentRow",
    "authenticate",
    "issue_secret",
    "mark_all_disconnected",
    "mark_connected",
    "mark_disconnected",
    "record_heartbeat",
]

AGENT_SECRET_PREFIX = "bla_"
R = TypeVar("R", bound="AgentRow")


class AgentRow:
    """Columns mixed into an agent's table."""

    secret_hash: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    agent_version: Mapped[str | None] = mapped_column(String(64))
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disconnected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def online(self) -> bool:
        return self.connected_at is not None and self.disconnected_at is None

    @property
    def status(self) -> Literal["online", "offline", "never-connected"]:
        if self.online:
            return "online"
        return "never-connected" if self.connected_at is None else "offline"


def issue_secret(row: AgentRow) -> str:
    """A fresh secret for the agent (each start): stored hashed, so an older instance is refused."""
    secret = AGENT_SECRET_PREFIX + secrets.token_urlsafe(32)
    row.secret_hash = hash_token(secret)
    return secret


def authenticate(session: Session, model: type[R], agent_id: str, secret: str) -> R | None:
    row = session.get(model, agent_id)
    if row is None or row.secret_hash is None:
        return None
    if not hmac.compare_digest(row.secret_hash, hash_token(secret)):
        return None
    return row


def mark_connected(row: AgentRow, *, host: str, agent_version: str, stats: dict[str, Any]) -> datetime:
    """Record a connection; returns its time, which identifies it to :func:`mark_disconnected`."""
    now = utcnow()
    row.connected_at = now
    row.last_heartbeat = now
    row.disconnected_at = None
    row.host = host
    row.agent_version = agent_version
    row.stats = stats
    return now


def mark_disconnected(session: Session, model: type[AgentRow], agent_id: str, connected_at: datetime) -> None:
    """Record the end of the connection made at ``connected_at`` (not of a newer one that replaced it)."""
    row = session.get(model, agent_id)
    if row is not None and row.disconnected_at is None and row.connected_at == connected_at:
        row.disconnected_at = utcnow()


def mark_all_disconnected(session: Session, model: type[AgentRow]) -> int:
    """At service start: no agent is connected to a process that just started."""
    result = session.execute(
        update(model)
        .where(model.connected_at.is_not(None), model.disconnected_at.is_(None))
        .values(disconnected_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def record_heartbeat(session: Session, model: type[AgentRow], agent_id: str, stats: dict[str, Any]) -> None:
    row = session.get(model, agent_id)
    if row is not None:
        row.last_heartbeat = utcnow()
        row.stats = stats
