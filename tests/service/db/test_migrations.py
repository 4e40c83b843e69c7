from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from beamlink.service.db.engine import Database
from beamlink.service.db.migrate import current_revision, head_revision, upgrade
from beamlink.service.db.registry import include_object, metadata


def test_the_migration_tree_has_a_single_head() -> None:
    assert head_revision()


def test_upgrade_from_empty_creates_every_table_and_is_idempotent(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert current_revision(db) is None
        before, after = upgrade(db)
        assert (before, after) == (None, head_revision())
        assert upgrade(db) == (after, after)
        tables = set(inspect(db.engine).get_table_names())
        assert set(metadata.tables) <= tables
    finally:
        db.dispose()


def test_migrations_match_the_models(database: Database) -> None:
    """A model change without a migration fails here (the diff is what `alembic revision` would write)."""
    with database.engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": include_object}
            ),
            metadata,
        )
    assert diff == []
