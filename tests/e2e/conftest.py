"""Whole-system fixtures: users with their own BEAMLINK_HOME, logged in through the CLI, starting real
endpoint daemons through the CLI (stopped again at the end of each test)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess, free_port
from e2e_helpers import DemoSite, Person, process_tree


@pytest.fixture
def make_person(service: ServiceProcess, admin: Client, tmp_path: Path) -> Iterator[Callable[..., Person]]:
    people: list[Person] = []

    def make(prefix: str = "scientist", *, url: str | None = None) -> Person:
        username = f"{prefix}-{uuid.uuid4().hex[:8]}"
        password = uuid.uuid4().hex
        admin.create_user(username, password)
        home = tmp_path / username
        home.mkdir()
        target = url or service.url
        person = Person(username, password, home, target, Client(target, token="-", home=home))
        login = person.cli("login", "--username", username, "--password-stdin", input=password + "\n")
        assert login.code == 0, login.stderr
        person.client = Client(target, home=home)
        people.append(person)
        return person

    yield make
    for person in people:
        for name in person.started:
            person.cli("endpoint", "stop", name)
        for name in person.started_collections:
            person.cli("collection", "stop", name)
        person.client.close()


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    """The built-in demo site (service; collections local, remote, portal; endpoints non_compute on
    threads and compute on Parsl), brought up once by `beamlink up` for every app test and taken down
    by `beamlink down`; any process still alive after that is killed."""
    home = tmp_path_factory.mktemp("demo-site")
    port = free_port()
    found = DemoSite(home, f"http://127.0.0.1:{port}")
    up = found.cli("up", "--detach", "--home", str(home), "--port", str(port), timeout=180)
    state = home / "site-state.json"
    pids = []
    if state.is_file():
        pids.append(json.loads(state.read_text())["service"]["pid"])
    pids += [int(p.read_text().split()[0]) for p in home.glob("*s/*/daemon.pid")]
    procs = [proc for pid in pids for proc in process_tree(pid)]
    try:
        assert up.code == 0, up.stdout + up.stderr
        yield found
    finally:
        found.cli("down", "--home", str(home))
        for proc in procs:
            if proc.is_running():
                proc.kill()
