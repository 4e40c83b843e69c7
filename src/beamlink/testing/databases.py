"""Throw-away databases: a file for SQLite, a fresh database on the PostgreSQL server for PostgreSQL."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

__all__ = [
    "POSTGRES_ADMIN_URL",
    "create_postgres_database",
    "drop_postgres_database",
    "postgres_problem",
    "sqlite_url",
]

POSTGRES_ADMIN_URL = os.environ.get(
    "BEAMLINK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'beamlink.db'}"


def postgres_problem(admin_url: str = POSTGRES_ADMIN_URL) -> str | None:
    """None when PostgreSQL answers at ``admin_url``, else why not."""
    try:
        engine = create_engine(admin_url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return (
            f"PostgreSQL unreachable at {make_url(admin_url).render_as_string(hide_password=True)}: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
    return None


def create_postgres_database(admin_url: str = POSTGRES_ADMIN_URL) -> str:
    """Create an empty database with a unique name; returns its URL."""
    name = f"beamlink_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str, admin_url: str = POSTGRES_ADMIN_URL) -> None:
    name = make_url(url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
