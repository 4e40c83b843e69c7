"""Engines and sessions for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from beamlink.errors import StartupError

__all__ = ["Database", "ensure_sqlite_path"]

log = logging.getLogger(__name__)

T = TypeVar("T")


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
        self._workers = ThreadPoolExecutor(8, thread_name_prefix="beamlink-db")

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

    async def run(self, fn: Callable[[Session], T]) -> T:
        """``fn(session)`` in a :meth:`transaction`, on a worker thread, from the event loop.

        For the hot paths (a task submitted, results stored): a plain executor hop, where anyio's
        ``to_thread`` (what FastAPI does for a sync route) cost a quarter of the service's CPU per
        round trip in its cancel scopes and capacity limiter.
        """

        def work() -> T:
            with self.transaction() as session:
                return fn(session)

        return await asyncio.get_running_loop().run_in_executor(self._workers, work)

    def dispose(self) -> None:
        self._workers.shutdown(wait=False)
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({make_url(self.url).render_as_string(hide_password=True)!r})"
