"""Every domain's tables, imported in one place so Alembic and the tests see the whole schema.

A new domain adds its ``models`` module here (see docs/architecture.md, "Adding a domain").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData

from beamlink.service.auth import models as _auth_models
from beamlink.service.compute import models as _compute_models
from beamlink.service.db.base import Base
from beamlink.service.flows import models as _flows_models
from beamlink.service.search import models as _search_models
from beamlink.service.transfer import models as _transfer_models

__all__ = ["include_object", "metadata"]

_DOMAINS = (_auth_models, _compute_models, _transfer_models, _flows_models, _search_models)
metadata: MetaData = Base.metadata

#: Full-text structures each database builds its own way (migration 0005), outside the models: the
#: SQLite FTS5 table (and the shadow tables FTS5 makes) and the PostgreSQL tsvector column.
UNMODELLED_TABLE_PREFIX = "search_fts"
UNMODELLED_COLUMNS = frozenset({("search_entries", "tsv")})


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's filter: leave the unmodelled full-text structures out of model/database comparisons."""
    if type_ == "table" and name and name.startswith(UNMODELLED_TABLE_PREFIX):
        return False
    if type_ == "column" and (getattr(obj.table, "name", None), name) in UNMODELLED_COLUMNS:
        return False
    return not (type_ == "index" and name == "ix_search_entries_tsv")
