from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from beamlink.service.auth.models import User
from beamlink.service.compute.models import Endpoint, Task, TaskGroup
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


def test_existing_task_groups_become_their_submitters(db_url: str) -> None:
    """Migration 0008 gives every group found in the tasks table an owner, so a group made before groups
    were claimed stays its submitter's."""
    db = Database(db_url)
    try:
        upgrade(db, "0007")
        with db.transaction() as session:
            alice, bob = User(username="alice"), User(username="bob")
            session.add_all([alice, bob])
            session.flush()
            endpoint = Endpoint(name="ep", owner_id=alice.id)
            session.add(endpoint)
            session.flush()
            for owner, group in ((alice, "a"), (alice, "a"), (bob, "b")):
                session.add(
                    Task(
                        function_id="f",
                        endpoint_id=endpoint.id,
                        owner_id=owner.id,
                        task_group_id=group,
                        state="received",
                        environment={},
                    )
                )
            owners = {"a": alice.id, "b": bob.id}
        upgrade(db)
        with db.session() as session:
            assert {g.id: g.owner_id for g in session.scalars(select(TaskGroup))} == owners
    finally:
        db.dispose()
