"""Fixtures every test module may use.

* ``db_url`` / ``database``: a fresh, migrated database, once on SQLite and once on PostgreSQL.
* ``service``: a real ``beamlink server`` process on a free port in a temporary ``BEAMLINK_HOME``, one per
  backend for the session; ``admin`` is an SDK client logged in as its first admin.
* ``make_user``: creates a user and returns a client logged in as that user.
* ``cli``: runs the ``beamlink`` command against the session service.

PostgreSQL: with ``CI=true`` the PostgreSQL variants must run, and fail when the server is unreachable;
elsewhere they are skipped with the reason shown.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from beamlink.sdk import Client
from beamlink.service.db.engine import Database
from beamlink.service.db.migrate import upgrade
from beamlink.service.launcher import ServiceProcess
from beamlink.testing.databases import (
    create_postgres_database,
    drop_postgres_database,
    postgres_problem,
    sqlite_url,
)
from helpers import CliResult, UserHandle

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real ~/.beamlink, or sees the developer's BEAMLINK_* settings."""
    for key in list(os.environ):
        if key.startswith("BEAMLINK_") and key != "BEAMLINK_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("BEAMLINK_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="session")
def _postgres_available() -> None:
    problem = postgres_problem()
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {problem}: start PostgreSQL (see README, 'Running the tests')")
    pytest.skip(f"{problem} (set CI=true to make this a failure)")


def _fresh_url(backend: str, directory: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return sqlite_url(directory)
    request.getfixturevalue("_postgres_available")
    url = create_postgres_database()
    request.addfinalizer(lambda: drop_postgres_database(url))
    return url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL on each backend."""
    return _fresh_url(request.param, tmp_path, request)


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """A fresh database with every migration applied."""
    db = Database(db_url)
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """A real service process for the whole session, one per backend."""
    home = tmp_path_factory.mktemp(f"service-{request.param}")
    url = _fresh_url(request.param, home, request)
    process = ServiceProcess(home, database_url=url)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def admin(service: ServiceProcess) -> Iterator[Client]:
    """A client logged in as the service's first admin (the token the service wrote at first start)."""
    with Client(service.url, home=service.home) as client:
        yield client


@pytest.fixture
def make_user(admin: Client, service: ServiceProcess) -> Iterator[Callable[..., UserHandle]]:
    """Create a user with a unique name and return a client logged in as them."""
    opened: list[Client] = []

    def make(prefix: str = "user", *, is_admin: bool = False) -> UserHandle:
        username = f"{prefix}-{uuid.uuid4().hex[:8]}"
        password = uuid.uuid4().hex
        admin.create_user(username, password, is_admin=is_admin)
        client = Client(service.url, token="-", home=service.home)
        client.login(username, password)
        opened.append(client)
        return UserHandle(username, password, client)

    yield make
    for client in opened:
        client.close()


@pytest.fixture
def cli(service: ServiceProcess) -> Callable[..., CliResult]:
    """Run ``beamlink ARGS`` as a real process against the session service."""

    def run(
        *args: str, input: str | None = None, home: Path | None = None, env: dict[str, str] | None = None
    ) -> CliResult:
        full_env = {
            **os.environ,
            "BEAMLINK_HOME": str(home or service.home),
            "COLUMNS": "200",
            "NO_COLOR": "1",
            **(env or {}),
        }
        done = subprocess.run(
            [sys.executable, "-m", "beamlink", *args],
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=60,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run
