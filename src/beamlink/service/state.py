"""What a running service holds: its settings and database (no globals; one per app)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from beamlink.config import Settings
from beamlink.service.db.base import utcnow
from beamlink.service.db.engine import Database

__all__ = ["ServiceState"]


@dataclass
class ServiceState:
    settings: Settings
    db: Database
    started_at: datetime = field(default_factory=utcnow)
