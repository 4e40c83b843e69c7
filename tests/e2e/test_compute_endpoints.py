"""Compute end to end: real service, real endpoint daemons (thread and process engines), the CLI, the SDK
and the Executor, and the failure cases of the compute issue."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import psutil
import pytest

from beamlink.errors import (
    SerializationError,
    TaskPending,
    TaskTimeout,
    WorkerLost,
)
from beamlink.sdk import Executor
from e2e_helpers import PROCESS_CONFIG, THREAD_CONFIG, Person, process_tree

pytestmark = pytest.mark.slow


def square(x: int) -> int:
    return x * x


def shout(word: str) -> str:
    print(f"shouting {word}")
    import sys

    print("to stderr", file=sys.stderr)
    return word.upper()


class BeamlineError(Exception):
    pass


def fail(message: str) -> None:
    raise BeamlineError(message)


def crash() -> None:
    os._exit(3)


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def huge() -> bytes:
    return b"x" * 11_000_000


def test_thread_endpoint_lifecycle_through_the_cli(make_person: Callable[..., Person]) -> None:
    alice = make_person()
    alice.configure("beamline", THREAD_CONFIG)
    listed = alice.cli("endpoint", "list", "--json")
    assert json.loads(listed.stdout)[0]["status"] == "Initialized"

    endpoint_id = alice.start("beamline")
    again = alice.cli("endpoint", "start", "beamline")
    assert again.code == 1
    assert "already running" in again.stderr

    rows = json.loads(alice.cli("endpoint", "list", "--json").stdout)
    assert rows[0]["status"] == "Running"
    assert rows[0]["endpoint_id"] == endpoint_id
    assert rows[0]["service_status"] == "online"
    table = alice.cli("endpoint", "list").stdout
    assert "beamline" in table
    assert endpoint_id in table

    task_id = alice.client.submit(endpoint_id, square, 7)
    assert alice.client.get_result(task_id, timeout=30) == 49
    assert alice.cli("task", "result", task_id).stdout.strip() == "49"
    status = alice.cli("task", "status", task_id).stdout
    for state in ("received", "dispatched", "running", "success"):
        assert state in status

    tree = process_tree(alice.daemon_pid("beamline"))
    stopped = alice.cli("endpoint", "stop", "beamline")
    assert stopped.code == 0, stopped.stderr
    alice.started.remove("beamline")
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert json.loads(alice.cli("endpoint", "list", "--json").stdout)[0]["status"] == "Stopped"
    not_running = alice.cli("endpoint", "stop", "beamline")
    assert not_running.code == 1
    assert "not running" in not_running.stderr


def test_tasks_for_a_stopped_endpoint_wait_and_run_when_it_starts(make_person: Callable[..., Person]) -> None:
    alice = make_person()
    alice.configure("later", THREAD_CONFIG)
    endpoint_id = alice.start("later")
    assert alice.cli("endpoint", "stop", "later").code == 0
    alice.started.remove("later")
    deadline = time.monotonic() + 10
    while alice.client.get_endpoint(endpoint_id).status == "online" and time.monotonic() < deadline:
        time.sleep(0.1)
    task_id = alice.client.submit(endpoint_id, square, 3)
    assert alice.client.get_task(task_id).state == "waiting-for-endpoint"
    with pytest.raises(TaskPending):
        alice.client.get_result(task_id)
    alice.start("later")
    assert alice.client.get_result(task_id, timeout=30) == 9


def test_executor_map_and_errors_on_the_process_engine(make_person: Callable[..., Person]) -> None:
    alice = make_person()
    alice.configure("proc", PROCESS_CONFIG)
    endpoint_id = alice.start("proc")
    with Executor(endpoint_id, client=alice.client) as ex:
        assert list(ex.map(square, range(20))) == [x * x for x in range(20)]

        raised = ex.submit(fail, "detector saturated")
        with pytest.raises(BeamlineError, match="detector saturated") as caught:
            raised.result(timeout=30)
        assert "fail" in caught.value.remote_traceback  # type: ignore[attr-defined]

        crashed = ex.submit(crash)
        with pytest.raises(WorkerLost):
            crashed.result(timeout=30)
        assert ex.submit(square, 12).result(timeout=30) == 144  # the endpoint keeps serving

        printed = ex.submit(shout, "beam")
        assert printed.result(timeout=30) == "BEAM"
        assert printed.task_id is not None
        output = alice.client.get_task_output(printed.task_id)
        assert "shouting beam" in output.stdout
        assert "to stderr" in output.stderr

        too_big = ex.submit(huge)
        with pytest.raises(Exception, match=r"over the 10(\.0)? MB result limit") as big:
            too_big.result(timeout=60)
        assert "transfer" in str(big.value)

        with pytest.raises(SerializationError, match="positional argument 0"):
            ex.submit(square, (x for x in range(3)))


def test_timeout_and_cancel_on_the_process_engine(make_person: Callable[..., Person]) -> None:
    alice = make_person()
    alice.configure("slow", PROCESS_CONFIG)
    endpoint_id = alice.start("slow")
    with Executor(endpoint_id, client=alice.client, timeout=1.0) as ex:
        late = ex.submit(nap, 30)
        with pytest.raises(TaskTimeout, match="timeout"):
            late.result(timeout=30)
    running = alice.client.submit(endpoint_id, nap, 30)
    deadline = time.monotonic() + 20
    while alice.client.get_task(running).state != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    alice.client.cancel(running)
    info = alice.client.get_task_result(running, timeout=20)
    assert info.state == "cancelled"
    assert time.monotonic() - started < 10
    assert alice.client.get_result(alice.client.submit(endpoint_id, square, 5), timeout=30) == 25
    assert alice.cli("task", "cancel", running).code == 0  # cancelling a finished task is harmless


def test_someone_elses_endpoint_cannot_be_started(make_person: Callable[..., Person]) -> None:
    alice = make_person("alice")
    bob = make_person("bob")
    alice.configure("shared-disk", THREAD_CONFIG)
    alice.start("shared-disk")
    assert alice.cli("endpoint", "stop", "shared-disk").code == 0
    alice.started.remove("shared-disk")
    # Bob copies Alice's profile (identity file included) into his own home and tries to start it.
    target = bob.profile("shared-disk")
    target.mkdir(parents=True)
    for name in ("config.yaml", "endpoint.json"):
        (target / name).write_bytes((alice.profile("shared-disk") / name).read_bytes())
    result = bob.cli("endpoint", "start", "shared-disk")
    assert result.code == 1
    assert "not found" in result.stderr or "only its owner" in result.stderr


def test_bad_config_names_key_and_line(make_person: Callable[..., Person]) -> None:
    alice = make_person()
    alice.configure("typo", "engine:\n  type: thread\n  max_workers: lots\n")
    result = alice.cli("endpoint", "start", "typo")
    assert result.code == 1
    assert "max_workers" in result.stderr
    assert "line 3" in result.stderr
    alice.configure("nope", "engine:\n  type: parsl\n  provider:\n    type: NoSuchProvider\n")
    result = alice.cli("endpoint", "start", "nope")
    assert result.code == 1
    assert "NoSuchProvider" in result.stderr
    assert "LocalProvider" in result.stderr


def test_unknown_endpoint_is_a_clear_error(make_person: Callable[..., Person]) -> None:
    alice = make_person()
    with pytest.raises(Exception, match="endpoint 'nowhere' not found"):
        alice.client.submit("nowhere", square, 1)
    result = alice.cli("endpoint", "start", "nowhere")
    assert result.code == 1
    assert "beamlink endpoint configure nowhere" in result.stderr


PARSL_CONFIG = """\
engine:
  type: parsl
  max_workers_per_node: 2
  heartbeat_period: 1         # HTEX's own: notices a dead worker within seconds
  heartbeat_threshold: 3
  provider:
    type: LocalProvider
    init_blocks: 1
    min_blocks: 1
    max_blocks: 1
heartbeat_period: 1
"""


@pytest.mark.parametrize("service", ["sqlite"], indirect=True)
def test_parsl_endpoint_runs_functions_and_survives_a_lost_worker(make_person: Callable[..., Person]) -> None:
    alice = make_person()
    alice.configure("hpc", PARSL_CONFIG)
    endpoint_id = alice.start("hpc")
    with Executor(endpoint_id, client=alice.client) as ex:
        assert list(ex.map(square, range(10), timeout=120)) == [x * x for x in range(10)]
        with pytest.raises(WorkerLost):
            ex.submit(crash).result(timeout=60)
        assert ex.submit(square, 9).result(timeout=60) == 81
    running = alice.client.submit(endpoint_id, nap, 60)
    wait_until = time.monotonic() + 30
    while alice.client.get_task(running).state != "running" and time.monotonic() < wait_until:
        time.sleep(0.05)
    alice.client.cancel(running)
    assert alice.client.get_task_result(running, timeout=30).state == "cancelled"
    # The daemon, the interchange, and the worker pool (started by the provider, in its own session).
    ours = [*process_tree(alice.daemon_pid("hpc")), *mentioning(str(alice.profile("hpc")))]
    assert any("process_worker_pool" in " ".join(p.cmdline()) for p in ours)
    assert alice.cli("endpoint", "stop", "hpc").code == 0
    alice.started.remove("hpc")
    assert not [p for p in ours if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not mentioning(str(alice.profile("hpc")))


def mentioning(text: str) -> list[psutil.Process]:
    """Live processes whose command line mentions ``text`` (the endpoint's run directory)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and text in " ".join(proc.info["cmdline"] or ()):
            found.append(proc)
    return found
