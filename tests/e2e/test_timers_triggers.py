"""Timers and triggers end to end: a real service with its flow engine and a real collection agent,
driven through the SDK and the CLI, including a service restart and an agent that goes away."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from beamlink.errors import InvalidInput, NotFound
from beamlink.protocol.flows import TimerInfo, TriggerInfo
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from e2e_helpers import Person

pytestmark = pytest.mark.slow

PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
WAIT = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3, "End": True}}}


def create_flow(client: Client, definition: dict[str, Any] = PASS) -> str:
    flow: dict[str, Any] = client.request(
        "POST", "/v1/flows", json={"title": "tick", "definition": definition}
    )
    return str(flow["id"])


def run_input(client: Client, run_id: str) -> Any:
    return client.request("GET", f"/v1/runs/{run_id}")["input"]


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def cli_json(person: Person, *args: str) -> Any:
    done = person.cli(*args, "--json")
    assert done.code == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


# -- timers --------------------------------------------------------------------------------------------


def test_a_timer_made_with_the_cli_starts_runs_and_is_paused_resumed_and_deleted(
    make_person: Callable[..., Person],
) -> None:
    alice, bob = make_person("alice"), make_person("bob")
    flow_id = create_flow(alice.client)
    made = TimerInfo.model_validate(
        cli_json(alice, "timer", "create", flow_id, "--name", "every", "--every", "1", "--input", '{"n": 1}')
    )
    assert made.status == "ACTIVE"
    wait_for("two runs", lambda: alice.client.get_timer(made.id).runs_started >= 2)
    info = alice.client.get_timer(made.id)
    assert info.last_run_id is not None
    assert run_input(alice.client, info.last_run_id) == {"n": 1}

    listed = alice.cli("timer", "list")
    assert listed.code == 0
    assert "every" in listed.stdout
    assert "every 1 s" in listed.stdout
    assert [t["id"] for t in cli_json(alice, "timer", "list")] == [made.id]
    assert cli_json(alice, "timer", "pause", made.id)["status"] == "PAUSED"
    paused_at = alice.client.get_timer(made.id).runs_started
    time.sleep(1.5)
    assert alice.client.get_timer(made.id).runs_started == paused_at
    resumed = alice.cli("timer", "resume", made.id)
    assert "ACTIVE" in resumed.stdout
    shown = alice.cli("timer", "show", made.id)
    assert "every 1 s" in shown.stdout
    assert "runs started" in shown.stdout

    with pytest.raises(NotFound):
        bob.client.get_timer(made.id)
    assert bob.client.list_timers() == []
    with pytest.raises(NotFound):  # bob may not start alice's flow, so he may not time it either
        bob.client.create_timer(flow_id, "theirs", schedule={"type": "interval", "every_seconds": 60})

    assert alice.cli("timer", "delete", made.id).code == 0
    with pytest.raises(NotFound):
        alice.client.get_timer(made.id)


def test_bad_timers_are_refused_with_the_field_and_an_example(make_person: Callable[..., Person]) -> None:
    alice = make_person("alice")
    flow_id = create_flow(alice.client)
    bad_cron = alice.cli("timer", "create", flow_id, "--name", "x", "--cron", "every minute")
    assert bad_cron.code == 1
    assert "schedule.cron" in bad_cron.stderr
    assert "*/5 * * * *" in bad_cron.stderr
    both = alice.cli("timer", "create", flow_id, "--name", "x", "--every", "5", "--cron", "* * * * *")
    assert both.code == 1
    assert "exactly one" in both.stderr
    late = alice.cli(
        "timer", "create", flow_id, "--name", "x", "--every", "60",
        "--start", "2030-01-02T00:00Z", "--end", "2030-01-01T00:00Z",
    )  # fmt: skip
    assert late.code == 1
    assert "before schedule.start" in late.stderr
    with pytest.raises(InvalidInput, match="every_seconds"):
        alice.client.create_timer(flow_id, "x", schedule={"type": "interval"})


def test_a_once_timer_in_the_past_fires_at_once_and_ends(make_person: Callable[..., Person]) -> None:
    alice = make_person("alice")
    flow_id = create_flow(alice.client)
    past = datetime.now(UTC) - timedelta(hours=1)
    made = alice.client.create_timer(flow_id, "late", schedule={"type": "once", "at": past}, run_label="late")
    wait_for("the run", lambda: alice.client.get_timer(made.id).status == "ENDED")
    done = alice.client.get_timer(made.id)
    assert (done.runs_started, done.next_run_at, done.last_error) == (1, None, None)


def test_a_tick_is_skipped_while_the_previous_run_is_active(make_person: Callable[..., Person]) -> None:
    alice = make_person("alice")
    flow_id = create_flow(alice.client, WAIT)  # each run waits 3 s; the timer ticks every second
    made = alice.client.create_timer(flow_id, "busy", schedule={"type": "interval", "every_seconds": 1})
    wait_for("two skipped ticks", lambda: alice.client.get_timer(made.id).ticks_skipped >= 2)
    info = alice.client.get_timer(made.id)
    assert info.runs_started == 1
    alice.client.delete_timer(made.id)


# -- triggers ------------------------------------------------------------------------------------------


def _grow(path: Path, chunks: int, pause: float) -> None:
    """Write a file a piece at a time, as an instrument does."""
    with path.open("wb") as f:
        for _ in range(chunks):
            f.write(b"x" * 1024)
            f.flush()
            time.sleep(pause)


def test_a_trigger_starts_one_run_per_new_complete_file(
    make_person: Callable[..., Person], tmp_path: Path
) -> None:
    alice, bob = make_person("alice"), make_person("bob")
    incoming = tmp_path / "detector" / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "old.h5").write_bytes(b"before")
    alice.configure_collection("detector", tmp_path / "detector")
    alice.start_collection("detector")
    flow_id = create_flow(alice.client)
    made = TriggerInfo.model_validate(
        cli_json(
            alice, "trigger", "create", flow_id, "--name", "frames", "--collection", "detector",
            "--path", "/incoming", "--glob", "*.h5", "--quiet", "1.0", "--poll", "0.2",
            "--input", '{"file": "{path}", "name": "{name}", "where": ["{collection}"]}',
        )
    )  # fmt: skip
    assert (made.path, made.status, made.last_error) == ("/incoming", "ACTIVE", None)

    (incoming / "notes.txt").write_text("not a frame")
    _grow(incoming / "new.h5", chunks=6, pause=0.25)  # changes more often than the quiet period
    assert alice.client.get_trigger(made.id).runs_started == 0
    wait_for("the run", lambda: alice.client.get_trigger(made.id).runs_started == 1)
    time.sleep(1.0)
    info = alice.client.get_trigger(made.id)
    assert info.runs_started == 1
    assert info.last_run_id is not None
    assert run_input(alice.client, info.last_run_id) == {
        "file": "/incoming/new.h5",
        "name": "new.h5",
        "where": ["detector"],
    }

    assert "frames" in alice.cli("trigger", "list").stdout
    assert [t["id"] for t in cli_json(alice, "trigger", "list")] == [made.id]
    assert "runs started 1" in alice.cli("trigger", "show", made.id).stdout
    with pytest.raises(NotFound):
        bob.client.get_trigger(made.id)
    assert cli_json(alice, "trigger", "pause", made.id)["status"] == "PAUSED"
    assert cli_json(alice, "trigger", "resume", made.id)["status"] == "ACTIVE"
    assert alice.cli("trigger", "delete", made.id).code == 0
    with pytest.raises(NotFound):
        alice.client.get_trigger(made.id)


def test_a_trigger_notes_an_offline_collection_and_goes_on_when_it_returns(
    make_person: Callable[..., Person], tmp_path: Path
) -> None:
    alice = make_person("alice")
    root = tmp_path / "detector"
    root.mkdir()
    alice.configure_collection("detector", root)
    alice.start_collection("detector")
    flow_id = create_flow(alice.client)
    made = alice.client.create_trigger(
        flow_id, "t", collection="detector", quiet_seconds=0.2, poll_seconds=0.2, body={"file": "{path}"}
    )
    assert alice.cli("collection", "stop", "detector").code == 0

    def offline() -> bool:
        return "COLLECTION_OFFLINE" in (alice.client.get_trigger(made.id).last_error or "")

    wait_for("the offline note", offline)
    assert alice.client.health()["status"] == "ok"
    (root / "while-away.dat").write_bytes(b"1")
    alice.start_collection("detector")
    wait_for("the run", lambda: alice.client.get_trigger(made.id).runs_started == 1)
    info = alice.client.get_trigger(made.id)
    assert info.last_error is None
    assert info.last_run_id is not None
    assert run_input(alice.client, info.last_run_id) == {"file": "/while-away.dat"}


# -- restarts ------------------------------------------------------------------------------------------


def test_timers_and_triggers_survive_a_service_restart(tmp_path: Path) -> None:
    home = tmp_path / "site"
    service = ServiceProcess(home).start()
    client = Client(service.url, home=home)
    person = Person(client.whoami().username, "", home, service.url, client)
    root = tmp_path / "detector"
    root.mkdir()
    try:
        person.configure_collection("detector", root)
        person.start_collection("detector")
        flow_id = create_flow(client)
        now = datetime.now(UTC)
        # Ticks at +0, +4 and +8 s; the service is down from about +1 to +11 s.
        ticking = client.create_timer(
            flow_id,
            "ticking",
            schedule={"type": "interval", "every_seconds": 4, "end": now + timedelta(seconds=9)},
        )
        once = client.create_timer(
            flow_id, "once", schedule={"type": "once", "at": now + timedelta(seconds=2)}
        )
        trigger = client.create_trigger(
            flow_id, "t", collection="detector", quiet_seconds=0.2, poll_seconds=0.2
        )
        (root / "before.dat").write_bytes(b"1")
        wait_for("the first tick", lambda: client.get_timer(ticking.id).runs_started == 1, timeout=5)
        wait_for("the first file", lambda: client.get_trigger(trigger.id).runs_started == 1, timeout=5)
        service.stop()
        (root / "during.dat").write_bytes(b"2")
        time.sleep(max(0.0, (now + timedelta(seconds=11) - datetime.now(UTC)).total_seconds()))
        service.start()

        wait_for("the missed ticks", lambda: client.get_timer(ticking.id).status == "ENDED")
        assert client.get_timer(ticking.id).runs_started == 2  # once for the two missed ticks
        wait_for("the once timer", lambda: client.get_timer(once.id).status == "ENDED")
        assert client.get_timer(once.id).runs_started == 1
        wait_for("the new file", lambda: client.get_trigger(trigger.id).runs_started == 2, timeout=40)
        time.sleep(1.0)
        assert client.get_trigger(trigger.id).runs_started == 2  # before.dat did not start a second run
    finally:
        for name in person.started_collections:
            person.cli("collection", "stop", name)
        client.close()
        service.stop()
