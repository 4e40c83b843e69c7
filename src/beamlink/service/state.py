"""What a running service holds: its settings, database and live hubs (no globals; one per app)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from beamlink.config import Settings
from beamlink.service.compute.hub import ComputeHub
from beamlink.service.db.base import utcnow
from beamlink.service.db.engine import Database

__all__ = ["ServiceState"]


@dataclass
class ServiceState:
    settings: Settings
    db: Database
    hub: ComputeHub = field(default_factory=ComputeHub)
    started_at: datetime = field(default_factory=utcnow)
