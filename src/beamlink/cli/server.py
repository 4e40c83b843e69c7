"""``beamlink server`` and ``beamlink db``: run the service; manage its database schema."""

from __future__ import annotations

from typing import Annotated

import typer

from beamlink.cli.output import console
from beamlink.config import load_settings

__all__ = ["db_app", "server"]

db_app = typer.Typer(help="The service's database.", no_args_is_help=True)


def server(
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [default: 8420].")] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
) -> None:
    """Run the beamlink service in the foreground (Ctrl-C or SIGTERM stops it gracefully)."""
    from beamlink.service.server import serve

    serve(load_settings(host=host, port=port, database_url=database_url))


@db_app.command("upgrade")
def upgrade(
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
) -> None:
    """Apply all migrations (the service also does this when it starts)."""
    from beamlink.service.db.engine import Database, ensure_sqlite_path
    from beamlink.service.db.migrate import upgrade as run_upgrade

    settings = load_settings(database_url=database_url)
    ensure_sqlite_path(settings.effective_database_url)
    database = Database(settings.effective_database_url)
    try:
        before, after = run_upgrade(database)
    finally:
        database.dispose()
    if before == after:
        console.print(f"database {database!r} is up to date at revision {after}")
    else:
        console.print(f"database {database!r} upgraded from {before or 'empty'} to {after}")


@db_app.command("current")
def current(
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
) -> None:
    """Show the schema revision of the database and the newest one this version knows."""
    from beamlink.service.db.engine import Database
    from beamlink.service.db.migrate import current_revision, head_revision

    settings = load_settings(database_url=database_url)
    database = Database(settings.effective_database_url)
    try:
        console.print(
            f"database: {database!r}\nrevision: {current_revision(database) or 'empty'}\n"
            f"newest:   {head_revision()}"
        )
    finally:
        database.dispose()
