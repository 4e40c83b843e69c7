"""Alembic, driven from code: the service upgrades its database on start and `beamlink db upgrade` too."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from beamlink.service.db.engine import Database

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade"]

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # The engine travels as an attribute, not an ini option, so passwords with '%' need no escaping.
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads ({heads}); merge them with `alembic merge`")
    return heads[0]


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(database: Database, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply migrations up to ``revision``; returns (before, after)."""
    before = current_revision(database)
    command.upgrade(alembic_config(database.engine), revision)
    after = current_revision(database)
    if before != after:
        log.info("database upgraded from %s to %s", before or "empty", after)
    return before, after
