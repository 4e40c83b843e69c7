"""The lifecycle verbs both kinds of agent share (status, logs, restart, delete), through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from e2e_helpers import THREAD_CONFIG, Person

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["endpoint", "collection"])
def test_status_logs_restart_and_delete(
    make_person: Callable[..., Person], kind: str, tmp_path: Path
) -> None:
    alice = make_person("alice")
    if kind == "endpoint":
        alice.configure("agent", THREAD_CONFIG)
        agent_id = alice.start("agent")
    else:
        alice.configure_collection("agent", tmp_path)
        agent_id = alice.start_collection("agent")

    status = alice.cli(kind, "status", "agent")
    assert status.code == 0, status.stderr
    assert f"{kind} agent: Running" in status.stdout
    assert agent_id in status.stdout
    assert "online" in status.stdout
    as_json = json.loads(alice.cli(kind, "status", "agent", "--json").stdout)
    assert as_json["status"] == "Running"

    logs = alice.cli(kind, "logs", "agent", "-n", "5")
    assert logs.code == 0
    assert "is running" in logs.stdout

    first_pid = as_json["pid"]
    restarted = alice.cli(kind, "restart", "agent")
    assert restarted.code == 0, restarted.stderr
    assert f"stopped {kind} agent (pid {first_pid})" in restarted.stdout
    assert agent_id in restarted.stdout  # the same registration, started again
    again = json.loads(alice.cli(kind, "status", "agent", "--json").stdout)
    assert again["status"] == "Running"
    assert again["pid"] != first_pid

    refused = alice.cli(kind, "delete", "agent", "--yes")
    assert refused.code == 1
    assert "online" in refused.stderr  # the service refuses to forget a running agent without --force
    deleted = alice.cli(kind, "delete", "agent", "--yes", "--force")
    assert deleted.code == 0, deleted.stderr
    assert f"deleted {kind} agent" in deleted.stdout
    if kind == "endpoint":
        alice.started.clear()
    else:
        alice.started_collections.clear()
    gone = alice.cli(kind, "status", "agent")
    assert gone.code == 1
    assert "configure" in gone.stderr  # says how to make one
