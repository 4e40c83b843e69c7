"""Nothing is lost: a result finished while the service was down arrives after it restarts, and the
tasks of an endpoint that dies are failed with EndpointLost once the grace period passes."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from beamlink import serialize
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from e2e_helpers import THREAD_CONFIG, Person, process_tree
from ws_helpers import register

pytestmark = pytest.mark.slow


def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def wait_for_state(client: Client, task_id: str, state: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while client.get_task(task_id).state != state:
        assert time.monotonic() < deadline, f"task {task_id} never became {state}"
        time.sleep(0.05)


def own_service(tmp_path: Path, **env: str) -> tuple[ServiceProcess, Person]:
    home = tmp_path / "site"
    service = ServiceProcess(home, env=env).start()
    client = Client(service.url, home=home)
    person = Person(client.whoami().username, "", home, service.url, client)
    return service, person


def test_a_result_finished_while_the_service_was_down_is_delivered(tmp_path: Path) -> None:
    service, admin = own_service(tmp_path)
    try:
        admin.configure("durable", THREAD_CONFIG)
        endpoint_id = admin.start("durable")
        task_id = admin.client.submit(endpoint_id, nap, 2.0)
        wait_for_state(admin.client, task_id, "running")
        service.stop()
        time.sleep(3.0)  # the task finishes now; its result waits in the endpoint's spool
        spooled = admin.profile("durable") / "spool" / "results.log"
        assert task_id in spooled.read_text()
        service.start()
        assert admin.client.get_result(task_id, timeout=30) == 2.0
        deadline = time.monotonic() + 10
        while spooled.stat().st_size:
            assert time.monotonic() < deadline, "the spooled result was never acknowledged"
            time.sleep(0.1)
    finally:
        admin.cli("endpoint", "stop", "durable")
        service.stop()


def test_tasks_of_an_endpoint_that_died_fail_with_endpoint_lost(tmp_path: Path) -> None:
    service, admin = own_service(tmp_path, BEAMLINK_ENDPOINT_LOST_GRACE_SECONDS="1")
    try:
        admin.configure("fragile", THREAD_CONFIG)
        endpoint_id = admin.start("fragile")
        created = admin.client.submit_batch(
            endpoint_id, [(admin.client.register_function(nap), (60,), {})], max_retries=0
        )
        (task_id,) = created.task_ids
        wait_for_state(admin.client, task_id, "running")
        for proc in process_tree(admin.daemon_pid("fragile")):
            proc.kill()
        psutil.wait_procs(process_tree(admin.daemon_pid("fragile")), timeout=5)
        info = admin.client.get_task_result(task_id, timeout=30)
        assert info.state == "failed"
        assert info.error is not None
        assert info.error.code == "ENDPOINT_LOST"
        assert "disconnected for more than 1 s" in info.error.message
        listed = admin.cli("endpoint", "list", "--json").stdout
        assert '"status": "Disconnected"' in listed
        restarted = admin.cli("endpoint", "start", "fragile")  # the stale pid file is cleaned
        assert restarted.code == 0, restarted.stderr
    finally:
        admin.cli("endpoint", "stop", "fragile")
        service.stop()


def test_a_submission_id_is_forgotten_after_its_time_to_live(tmp_path: Path) -> None:
    service, admin = own_service(
        tmp_path, BEAMLINK_COMPUTE_SUBMISSION_TTL_SECONDS="1", BEAMLINK_ENDPOINT_LOST_GRACE_SECONDS="1"
    )
    try:
        endpoint_id, _ = register(admin.client, "offline")  # tasks wait for it: nothing needs to run
        function_id = admin.client.register_function(nap)
        batch = [(function_id, serialize.pack_arguments((0,), {}))]
        first = admin.client.submit_packed(endpoint_id, batch, submission_id="nightly-1")
        assert admin.client.submit_packed(endpoint_id, batch, submission_id="nightly-1") == first
        time.sleep(2.5)  # past the time to live, and a pass of the housekeeping loop (every 0.25 s here)
        later = admin.client.submit_packed(endpoint_id, batch, submission_id="nightly-1")
        assert set(later.task_ids).isdisjoint(first.task_ids)  # queued anew
        assert "submission id(s) forgotten" in service.log_path.read_text()
    finally:
        service.stop()
