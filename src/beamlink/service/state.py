"""What a running service holds: its settings, database and live hubs (no globals; one per app)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from beamlink.config import Settings
from beamlink.service.auth.cache import PrincipalCache
from beamlink.service.compute.checks import SubmitChecks
from beamlink.service.compute.hub import ComputeHub
from beamlink.service.db.base import utcnow
from beamlink.service.db.engine import Database
from beamlink.service.flows.engine import FlowEngine
from beamlink.service.transfer.links import CollectionLinks

__all__ = ["ServiceState"]


@dataclass
class ServiceState:
    settings: Settings
    db: Database
    hub: ComputeHub = field(default_factory=ComputeHub)
    collections: CollectionLinks = field(default_factory=CollectionLinks)
    principals: PrincipalCache = field(default_factory=PrincipalCache)
    submit_checks: SubmitChecks = field(default_factory=SubmitChecks)
    started_at: datetime = field(default_factory=utcnow)
    flows: FlowEngine = field(init=False)

    def __post_init__(self) -> None:
        self.principals.watch(self.db.session_factory)
        self.submit_checks.watch(self.db.session_factory)
        self.flows = FlowEngine(self)
