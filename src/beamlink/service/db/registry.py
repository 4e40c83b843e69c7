"""Every domain's tables, imported in one place so Alembic and the tests see the whole schema.

A new domain adds its ``models`` module here (see docs/architecture.md, "Adding a domain").
"""

from __future__ import annotations

from sqlalchemy import MetaData

from beamlink.service.auth import models as _auth_models
from beamlink.service.compute import models as _compute_models
from beamlink.service.db.base import Base
from beamlink.service.flows import models as _flows_models
from beamlink.service.transfer import models as _transfer_models

__all__ = ["metadata"]

_DOMAINS = (_auth_models, _compute_models, _transfer_models, _flows_models)
metadata: MetaData = Base.metadata
