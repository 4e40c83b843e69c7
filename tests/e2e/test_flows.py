"""Flows end to end: a real service runs flows whose actions are real compute tasks on a real endpoint and
real transfers between real collection agents; the failure cases of the flows issue; kill -9 recovery."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beamlink.errors import Conflict, NotFound, PermissionDenied
from beamlink.flowlang import FlowInputInvalid, FlowInvalid
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from e2e_helpers import PROCESS_CONFIG, THREAD_CONFIG, Person

pytestmark = pytest.mark.slow

# Byte-for-byte copies of shared/reference/globus-flows (the checkout does not have shared/ in CI).
REFERENCE = Path(__file__).resolve().parents[1] / "flowlang" / "data"


def add(a: int, b: int) -> int:
    return a + b


def analyse(path: str, threshold: float) -> dict[str, Any]:
    with open(path) as handle:
        values = [float(v) for v in handle.read().split()]
    return {"peaks": sum(1 for v in values if v > threshold), "n": len(values)}


def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def pass_chain(n: int) -> dict[str, Any]:
    states: dict[str, Any] = {}
    for i in range(n):
        state: dict[str, Any] = {"Type": "Pass", "Parameters": {"i": i, "x.$": "$.x"}, "ResultPath": "$.last"}
        state.update({"End": True} if i == n - 1 else {"Next": f"S{i + 1}"})
        states[f"S{i}"] = state
    return {"StartAt": "S0", "States": states}


def compute_chain(n: int) -> dict[str, Any]:
    states: dict[str, Any] = {}
    for i in range(n):
        states[f"Add{i}"] = {
            "Type": "Action",
            "ActionUrl": "beamlink:compute",
            "Parameters": {
                "endpoint.$": "$.endpoint",
                "function.$": "$.function",
                "kwargs": {"a.$": "$.total", "b": 1},
            },
            "ResultPath": f"$.r{i}",
            "WaitTime": 60,
            **({"End": True} if i == n - 1 else {"Next": f"Carry{i}"}),
        }
        if i < n - 1:
            states[f"Carry{i}"] = {
                "Type": "ExpressionEval",
                "Parameters": {"total.$": f"$.r{i}.details.results[0].output"},
                "ResultPath": "$.carry",
                "Next": f"Set{i}",
            }
            states[f"Set{i}"] = {
                "Type": "Pass",
                "InputPath": "$.carry.total",
                "ResultPath": "$.total",
                "Next": f"Add{i + 1}",
            }
    return {"StartAt": "Add0", "States": states}


def test_a_pass_flow_from_the_sdk_runs_and_logs_every_state(make_person: Callable[..., Person]) -> None:
    alice = make_person()
    flow = alice.client.create_flow("chain", pass_chain(5), input_schema={"required": ["x"]})
    run = alice.client.run_flow(flow.id, {"x": 7}, label="five passes", tags=["t1"])
    done = alice.client.wait_run(run.run_id, timeout=30)
    assert done.status == "SUCCEEDED"
    assert done.output == {"x": 7, "last": {"i": 4, "x": 7}}
    codes = [e.code for e in alice.client.iter_run_log(run.run_id)]
    assert codes[0] == "FlowStarted"
    assert codes[-1] == "FlowSucceeded"
    assert codes.count("PassCompleted") == 5
    assert [r.run_id for r in alice.client.list_runs(flow_id=flow.id)] == [run.run_id]


def test_bad_definitions_and_inputs_are_refused_with_every_problem(
    make_person: Callable[..., Person],
) -> None:
    alice = make_person()
    bad = {
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Next": "Nowhere", "End": True}, "B": {"Type": "Pass"}},
    }
    report = alice.client.validate_flow(bad)
    assert not report.valid
    assert len([p for p in report.problems if p.severity == "error"]) >= 3
    with pytest.raises(FlowInvalid) as caught:
        alice.client.create_flow("bad", bad)
    assert any(p.pointer.startswith("/States/A") for p in caught.value.problems)
    schema = {"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}}
    flow = alice.client.create_flow("typed", pass_chain(1), input_schema=schema)
    with pytest.raises(FlowInputInvalid) as wrong:
        alice.client.run_flow(flow.id, {"x": "seven"})
    assert wrong.value.problems[0].pointer == "/x"


def test_only_starters_may_start_and_others_cannot_see(make_person: Callable[..., Person]) -> None:
    alice, bob = make_person(), make_person()
    flow = alice.client.create_flow("private", pass_chain(1))
    with pytest.raises(NotFound):
        bob.client.run_flow(flow.id, {"x": 1})
    alice.client.update_flow(flow.id, flow_viewers=[f"user:{bob.username}"])
    with pytest.raises(PermissionDenied):
        bob.client.run_flow(flow.id, {"x": 1})
    alice.client.update_flow(flow.id, flow_starters=[f"user:{bob.username}"])
    run = bob.client.run_flow(flow.id, {"x": 1})
    assert bob.client.wait_run(run.run_id, timeout=30).status == "SUCCEEDED"
    assert alice.client.get_run(run.run_id).user_role == "manager"  # the flow's owner manages its runs
    carol = make_person()
    alice.client.update_flow(flow.id, flow_starters=[f"user:{bob.username}", f"user:{carol.username}"])
    with pytest.raises(NotFound):
        carol.client.get_run(run.run_id)  # a starter's run is theirs unless shared
    bob.client.update_run(run.run_id, run_monitors=[f"user:{carol.username}"])
    assert carol.client.get_run(run.run_id).status == "SUCCEEDED"
    with pytest.raises(PermissionDenied):
        carol.client.cancel_run(run.run_id)


def test_a_missing_path_is_catchable_and_limits_end_runaway_runs(make_person: Callable[..., Person]) -> None:
    alice = make_person()
    caught = {
        "StartAt": "Read",
        "States": {
            "Read": {
                "Type": "Action",
                "ActionUrl": "beamlink:hello_world",
                "Parameters": {"echo_string.$": "$.missing.value"},
                "ResultPath": "$.read",
                "Catch": [
                    {"ErrorEquals": ["States.ParameterPathFailure"], "ResultPath": "$.err", "Next": "Done"}
                ],
                "Next": "Done",
            },
            "Done": {"Type": "Pass", "End": True},
        },
    }
    run = alice.client.run_flow(alice.client.create_flow("catch", caught).id, {})
    done = alice.client.wait_run(run.run_id, timeout=30)
    assert done.status == "SUCCEEDED"
    assert done.output["err"]["Error"] == "States.ParameterPathFailure"

    loop = {"StartAt": "Spin", "States": {"Spin": {"Type": "Pass", "Next": "Spin"}}}
    report = alice.client.validate_flow(loop)
    assert not report.valid  # no terminal state: refused before it can spin
    endless = {
        "StartAt": "Spin",
        "States": {
            "Spin": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.stop", "BooleanEquals": True, "Next": "End"}],
                "Default": "Spin",
            },
            "End": {"Type": "Pass", "End": True},
        },
    }
    run = alice.client.run_flow(alice.client.create_flow("endless", endless).id, {"stop": False})
    done = alice.client.wait_run(run.run_id, timeout=60)
    assert done.status == "FAILED"
    assert done.error == "States.StepLimitExceeded"

    grow = {
        "StartAt": "Grow",
        "States": {
            "Grow": {
                "Type": "Pass",
                "Parameters": {"a.$": "$.blob", "b.$": "$.blob"},
                "ResultPath": "$.b1",
                "Next": "Grow2",
            },
            "Grow2": {
                "Type": "Pass",
                "Parameters": {"c.$": "$.b1"},
                "ResultPath": "$.b2",
                "End": True,
            },
        },
    }
    run = alice.client.run_flow(alice.client.create_flow("grow", grow).id, {"blob": "x" * 300_000})
    done = alice.client.wait_run(run.run_id, timeout=30)
    assert done.status == "FAILED"
    assert done.error == "States.StateSizeExceeded"


def test_compute_actions_chain_real_tasks(make_person: Callable[..., Person]) -> None:
    alice = make_person()
    alice.configure("flowpool", THREAD_CONFIG)
    endpoint_id = alice.start("flowpool")
    function_id = alice.client.register_function(add)
    flow = alice.client.create_flow("adder", compute_chain(3))
    run = alice.client.run_flow(flow.id, {"endpoint": endpoint_id, "function": function_id, "total": 10})
    done = alice.client.wait_run(run.run_id, timeout=60)
    assert done.status == "SUCCEEDED", done.output
    assert done.output["r2"]["details"]["results"][0]["output"] == 13
    assert done.output["r2"]["status"] == "SUCCEEDED"


def test_a_failing_task_is_caught_and_waittime_times_out(make_person: Callable[..., Person]) -> None:
    alice = make_person()
    alice.configure("slowpool", THREAD_CONFIG)
    endpoint_id = alice.start("slowpool")
    nap_id = alice.client.register_function(nap)
    definition = {
        "StartAt": "Nap",
        "States": {
            "Nap": {
                "Type": "Action",
                "ActionUrl": "https://compute.actions.globus.org",
                "Parameters": {
                    "tasks": [{"endpoint.$": "$.ep", "function.$": "$.fn", "payload.$": "$.payload"}]
                },
                "WaitTime": 1,
                "ResultPath": "$.nap",
                "Catch": [{"ErrorEquals": ["ActionTimeout"], "ResultPath": "$.timeout", "Next": "TooSlow"}],
                "End": True,
            },
            "TooSlow": {"Type": "Fail", "Error": "TooSlow", "Cause": "the nap took too long"},
        },
    }
    flow = alice.client.create_flow("napper", definition)
    run = alice.client.run_flow(flow.id, {"ep": endpoint_id, "fn": nap_id, "payload": {"seconds": 5}})
    done = alice.client.wait_run(run.run_id, timeout=30)
    assert done.status == "FAILED"
    assert done.error == "TooSlow"
    quick = alice.client.run_flow(flow.id, {"ep": endpoint_id, "fn": nap_id, "payload": {"seconds": 0.1}})
    assert alice.client.wait_run(quick.run_id, timeout=30).output["nap"]["details"]["result"] == [0.1]
    broken = alice.client.run_flow(flow.id, {"ep": endpoint_id, "fn": nap_id, "payload": {"wrong": 1}})
    done = alice.client.wait_run(broken.run_id, timeout=30)
    assert done.status == "FAILED"
    assert done.error == "ActionFailedException"
    assert "unexpected keyword argument 'wrong'" in (done.cause or "")


def test_cancel_stops_the_running_task(make_person: Callable[..., Person]) -> None:
    alice = make_person()
    alice.configure("cancelpool", PROCESS_CONFIG)
    endpoint_id = alice.start("cancelpool")
    nap_id = alice.client.register_function(nap)
    definition = {
        "StartAt": "Nap",
        "States": {
            "Nap": {
                "Type": "Action",
                "ActionUrl": "beamlink:compute",
                "Parameters": {"endpoint.$": "$.ep", "function.$": "$.fn", "args": [30]},
                "WaitTime": 120,
                "End": True,
            }
        },
    }
    flow = alice.client.create_flow("long nap", definition)
    run = alice.client.run_flow(flow.id, {"ep": endpoint_id, "fn": nap_id})
    deadline = time.monotonic() + 20
    while not any(t.state == "running" for t in alice.client.list_tasks(endpoint_id=endpoint_id)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    canceled = alice.client.cancel_run(run.run_id)
    assert canceled.status == "ENDED"
    deadline = time.monotonic() + 20
    while alice.client.list_tasks(endpoint_id=endpoint_id)[0].state != "cancelled":
        assert time.monotonic() < deadline, "the compute task was not cancelled"
        time.sleep(0.1)
    codes = [e.code for e in alice.client.iter_run_log(run.run_id)]
    assert "FlowCanceled" in codes or "FlowFailed" in codes


def test_transfer_then_compute_with_the_globus_reference_shapes(
    make_person: Callable[..., Person], tmp_path: Path
) -> None:
    alice = make_person()
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir()
    remote.mkdir()
    (local / "raw.txt").write_text("1 5 9 2 8")
    alice.configure_collection("local", local)
    alice.configure_collection("remote", remote)
    local_id, remote_id = alice.start_collection("local"), alice.start_collection("remote")
    alice.configure("analysis", THREAD_CONFIG)
    endpoint_id = alice.start("analysis")
    site_root = str(remote)

    def analyse_at_site(path: str, threshold: float) -> dict[str, Any]:
        # The flow passes collection paths; the function, running at the site, knows where the root is.
        with open(site_root + path) as handle:
            values = [float(v) for v in handle.read().split()]
        return {"peaks": sum(1 for v in values if v > threshold), "n": len(values)}

    function_id = alice.client.register_function(analyse_at_site)
    index = alice.client.create_index(f"results-{alice.username}")
    definition = json.loads((REFERENCE / "transfer-compute-publish.json").read_text())
    flow = alice.client.create_flow("reference", definition)
    body = {
        "input": {
            "local_collection": local_id,
            "remote_collection": remote_id,
            "raw_path": "/raw.txt",
            "work_path": "/work/raw.txt",
            "compute_endpoint": endpoint_id,
            "analysis_function": function_id,
            "threshold": 4,
            "index": index.name,
        }
    }
    run = alice.client.run_flow(flow.id, body)
    done = alice.client.wait_run(run.run_id, timeout=90)
    assert (remote / "work" / "raw.txt").read_text() == "1 5 9 2 8"
    log = {e.state_name: e for e in alice.client.iter_run_log(run.run_id) if e.state_name}
    assert "TransferRaw" in log
    assert "Analyse" in log
    assert done.status == "SUCCEEDED", done.output
    assert done.output["Summary"] == {"peaks": 3, "title": "Analysis of raw.txt"}
    # The publish step put the record in the index, visible to everyone (the flow says "public").
    assert done.output["Publish"]["details"]["created"] == 1
    found = Client(alice.url, anonymous=True).search(index.name, "raw.txt")
    assert [hit.subject for hit in found.gmeta] == ["/raw.txt"]
    assert found.gmeta[0].entries[0].content == {"title": "Analysis of raw.txt", "peaks": 3}


def test_a_run_survives_kill_9_of_the_service_without_repeating_its_action(tmp_path: Path) -> None:
    home = tmp_path / "site"
    service = ServiceProcess(home).start()
    client = Client(service.url, home=home)
    person = Person(client.whoami().username, "", home, service.url, client)
    try:
        person.configure("durable", THREAD_CONFIG)
        endpoint_id = person.start("durable")
        nap_id = client.register_function(nap)
        definition = {
            "StartAt": "Nap",
            "States": {
                "Nap": {
                    "Type": "Action",
                    "ActionUrl": "beamlink:compute",
                    "Parameters": {"endpoint.$": "$.ep", "function.$": "$.fn", "args": [3]},
                    "ResultPath": "$.first",
                    "WaitTime": 120,
                    "Next": "Again",
                },
                "Again": {
                    "Type": "Action",
                    "ActionUrl": "beamlink:compute",
                    "Parameters": {"endpoint.$": "$.ep", "function.$": "$.fn", "args": [0.1]},
                    "ResultPath": "$.second",
                    "WaitTime": 120,
                    "End": True,
                },
            },
        }
        flow = client.create_flow("durable", definition)
        run = client.run_flow(flow.id, {"ep": endpoint_id, "fn": nap_id})
        deadline = time.monotonic() + 20
        while not any(t.state == "running" for t in client.list_tasks(endpoint_id=endpoint_id)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert service.process is not None
        os.killpg(service.process.pid, signal.SIGKILL)
        service.process.wait()
        time.sleep(3.5)  # the task finishes while the service is dead
        service.start()
        done = client.wait_run(run.run_id, timeout=60)
        assert done.status == "SUCCEEDED", done.output
        assert done.output["first"]["details"]["result"] == [3]
        assert done.output["second"]["details"]["result"] == [0.1]
        tasks = client.list_tasks(endpoint_id=endpoint_id)
        assert len(tasks) == 2  # neither action was started twice
    finally:
        person.cli("endpoint", "stop", "durable")
        service.stop()


def test_the_cli_creates_validates_runs_and_watches(
    make_person: Callable[..., Person], tmp_path: Path
) -> None:
    alice = make_person()
    good = tmp_path / "flow.yaml"
    good.write_text(
        "StartAt: Hello\n"
        "States:\n"
        "  Hello:\n"
        "    Type: Action\n"
        "    ActionUrl: https://actions.globus.org/hello_world\n"
        "    Parameters: {echo_string.$: $.who}\n"
        "    ResultPath: $.hello\n"
        "    End: true\n"
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"StartAt": "Nope", "States": {"A": {"Type": "Pass", "End": true}}}')
    checked = alice.cli("flow", "validate", str(bad))
    assert checked.code == 1
    assert "/StartAt" in checked.stdout
    created = alice.cli("flow", "create", str(good), "--title", "hello", "--json")
    assert created.code == 0, created.stderr
    flow_id = json.loads(created.stdout)["id"]
    listed = alice.cli("flow", "list")
    assert flow_id in listed.stdout
    watched = alice.cli("flow", "run", flow_id, "--input", '{"who": "beamline 8-ID"}', "--watch")
    assert watched.code == 0, watched.stderr + watched.stdout
    assert "FlowSucceeded" in watched.stdout
    assert "SUCCEEDED" in watched.stdout
    runs = json.loads(alice.cli("run", "list", "--json").stdout)
    assert runs[0]["output"]["hello"]["details"]["hello"] == "beamline 8-ID"
    run_id = runs[0]["run_id"]
    assert json.loads(alice.cli("run", "status", run_id, "--json").stdout)["status"] == "SUCCEEDED"
    assert "ActionCompleted" in alice.cli("run", "log", run_id).stdout
    assert "SUCCEEDED" in alice.cli("run", "cancel", run_id).stdout  # an ended run stays as it ended
    assert alice.cli("run", "resume", run_id).code != 0
    wrong = alice.cli("flow", "run", flow_id, "--input", "{not json")
    assert wrong.code != 0
    assert "--input" in wrong.stderr


def test_our_providers_answer_the_action_provider_api(admin: Client) -> None:
    description = admin.request("GET", "/actions/hello_world/")
    assert description["api_version"] == "1.0"
    body = {"request_id": "r-1", "body": {"echo_string": "hi"}}
    started = admin.request("POST", "/actions/hello_world/run", json=body)
    assert started["status"] == "SUCCEEDED"
    assert started["details"]["hello"] == "hi"
    again = admin.request("POST", "/actions/hello_world/run", json=body)
    assert again["action_id"] == started["action_id"]
    status = admin.request("GET", f"/actions/hello_world/{started['action_id']}/status")
    assert status["status"] == "SUCCEEDED"
    admin.request("POST", f"/actions/hello_world/{started['action_id']}/release")
    with pytest.raises(NotFound):
        admin.request("GET", f"/actions/hello_world/{started['action_id']}/status")
    evaluated = admin.request(
        "POST",
        "/actions/expression_eval/run",
        json={"request_id": "e-1", "body": {"expression": "x * 2", "arguments": {"x": 21}}},
    )
    assert evaluated["details"]["result"] == 42


def test_the_globus_move_flow_runs_unchanged(make_person: Callable[..., Person], tmp_path: Path) -> None:
    alice = make_person()
    source, destination = tmp_path / "beamline", tmp_path / "archive"
    (source / "scan 7").mkdir(parents=True)
    (source / "scan 7" / "frame-1.h5").write_bytes(b"\x00" * 5000)
    (source / "scan 7" / "notes.txt").write_text("sample A1")
    (destination / "raw").mkdir(parents=True)  # Globus mkdir makes one level, as here
    alice.configure_collection("beamline", source)
    alice.configure_collection("archive", destination)
    source_id, destination_id = alice.start_collection("beamline"), alice.start_collection("archive")
    definition = json.loads((REFERENCE / "move.json").read_text())
    flow = alice.client.create_flow("move", definition)
    body = {
        "source": {"id": source_id, "path": "/scan 7"},
        "destination": {"id": destination_id, "path": "/raw"},
    }
    run = alice.client.run_flow(flow.id, body)
    done = alice.client.wait_run(run.run_id, timeout=90)
    assert done.status == "SUCCEEDED", done.output
    assert (destination / "raw" / "scan 7" / "notes.txt").read_text() == "sample A1"
    assert (destination / "raw" / "scan 7" / "frame-1.h5").stat().st_size == 5000
    assert not (source / "scan 7").exists()
    names = sorted(entry["name"] for entry in done.output["SourceListing"]["details"]["DATA"])
    assert names == ["frame-1.h5", "notes.txt"]


def flaky(marker: str) -> str:
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first try fails")
    return "second try works"


def test_retry_backs_off_and_runs_can_be_resumed_and_released(
    make_person: Callable[..., Person], tmp_path: Path
) -> None:
    alice = make_person()
    alice.configure("retrypool", THREAD_CONFIG)
    endpoint_id = alice.start("retrypool")
    flaky_id = alice.client.register_function(flaky)
    definition = {
        "StartAt": "Flaky",
        "States": {
            "Flaky": {
                "Type": "Action",
                "ActionUrl": "beamlink:compute",
                "Parameters": {
                    "endpoint.$": "$.ep",
                    "function.$": "$.fn",
                    "kwargs": {"marker.$": "$.marker"},
                },
                "Retry": [
                    {"ErrorEquals": ["ActionFailedException"], "IntervalSeconds": 0.5, "MaxAttempts": 2}
                ],
                "ResultPath": "$.flaky",
                "End": True,
            }
        },
    }
    flow = alice.client.create_flow("flaky", definition)
    marker = str(tmp_path / "marker")
    run = alice.client.run_flow(flow.id, {"ep": endpoint_id, "fn": flaky_id, "marker": marker})
    done = alice.client.wait_run(run.run_id, timeout=30)
    assert done.status == "SUCCEEDED", done.output
    assert done.output["flaky"]["details"]["result"] == ["second try works"]
    codes = [e.code for e in alice.client.iter_run_log(run.run_id)]
    assert codes.count("ActionRetrying") == 1
    first, second = sorted(alice.client.list_tasks(endpoint_id=endpoint_id), key=lambda t: t.created_at)
    assert first.state == "failed"
    assert second.state == "success"
    assert first.completed_at is not None
    assert (second.created_at - first.completed_at).total_seconds() >= 0.45  # IntervalSeconds back-off

    with pytest.raises(Conflict):
        alice.client.resume_run(run.run_id)  # only ACTIVE or INACTIVE runs resume
    alice.client.release_run(run.run_id)
    with pytest.raises(NotFound):
        alice.client.get_run(run.run_id)
