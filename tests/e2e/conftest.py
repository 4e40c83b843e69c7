"""Whole-system fixtures: users with their own BEAMLINK_HOME, logged in through the CLI, starting real
endpoint daemons through the CLI (stopped again at the end of each test)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from e2e_helpers import Person


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
