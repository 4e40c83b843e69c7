"""Engines and sessions for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from beamlink.errors import StartupError

__all__ = ["Database", "ensure_sqlite_path"]

log = logging.getLogger(__name__)


def ensure_sqlite_path(url: str) -> None:
    """For a file-backed SQLite URL, make sure its directory exists and can be written.

    Checked before anything else so the service refuses to start with a message naming the path, instead
    of a driver error deep in a migration.
    """
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return
    path = Path(parsed.database).expanduser()
    directory = path.parent
    hint = "choose a writable place with BEAMLINK_HOME or BEAMLINK_DATABASE_URL"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"cannot create the database directory {directory}: {exc.strerror}; {hint}",
            details={"path": str(directory)},
        ) from exc
    probe = directory / ".beamlink-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
        if path.exists():
            with path.open("r+b"):
                pass
    except OSError as exc:
        raise StartupError(
            f"the database path {path} cannot be written: {exc.strerror}; {hint}",
            details={"path": str(path)},
        ) from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; busy_timeout waits for the writer instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """One engine and its session factory; built by the app factory, never at import time."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def session_factory(self) -> sessionmaker[Session]:
        return self._sessions

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({make_url(self.url).render_as_string(hide_password=True)!r})"
