"""The agent WebSocket, spoken by hand: authentication, garbage frames, dispatch, acks, duplicates, and
what happens to tasks when an agent goes away and comes back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from beamlink import serialize
from beamlink.errors import EnvironmentMismatch, FunctionNotAllowed, NotFound, PayloadTooLarge
from beamlink.protocol.agent import CLOSE_AUTH, CLOSE_INVALID, CLOSE_REPLACED
from beamlink.service.launcher import ServiceProcess
from helpers import MakeUser
from ws_helpers import agent_socket, hello, outcome, receive, register, ws_url


def add(a: int, b: int) -> int:
    return a + b


@contextmanager
def agent(
    service: ServiceProcess, endpoint_id: str, secret: str, **hello_extra: Any
) -> Iterator[ClientConnection]:
    with agent_socket(service, endpoint_id, secret, json.loads(hello(**hello_extra)), "welcome") as ws:
        yield ws


def test_wrong_secret_is_refused_with_a_reason(service: ServiceProcess, make_user: MakeUser) -> None:
    user = make_user("agent")
    endpoint_id, _ = register(user.client, "ep")
    headers = {"X-Beamlink-Agent": endpoint_id, "Authorization": "Bearer bla_wrong"}
    with (
        connect(ws_url(service), additional_headers=headers) as ws,
        pytest.raises(ConnectionClosed) as caught,
    ):
        ws.recv(timeout=10)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == CLOSE_AUTH
    assert "secret" in caught.value.rcvd.reason


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        ("this is not json", "invalid agent message"),
        (b"\x00\xff binary garbage", "invalid agent message"),
        ('{"type": "launch-missiles"}', "type"),
        ('{"type": "ack", "task_ids": []}', "first message must be 'hello'"),
    ],
)
def test_garbage_frames_close_only_that_connection(
    service: ServiceProcess, make_user: MakeUser, frame: str | bytes, words: str
) -> None:
    user = make_user("agent")
    endpoint_id, secret = register(user.client, "ep")
    headers = {"X-Beamlink-Agent": endpoint_id, "Authorization": f"Bearer {secret}"}
    with connect(ws_url(service), additional_headers=headers) as ws:
        ws.send(frame)
        with pytest.raises(ConnectionClosed) as caught:
            ws.recv(timeout=10)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == CLOSE_INVALID
    assert words in caught.value.rcvd.reason
    # The service is unharmed: the endpoint connects again and the API answers.
    with agent(service, endpoint_id, secret):
        assert user.client.get_endpoint(endpoint_id).status == "online"


def test_tasks_are_dispatched_acked_and_results_pushed(service: ServiceProcess, make_user: MakeUser) -> None:
    user = make_user("agent")
    endpoint_id, secret = register(user.client, "ep")
    function_id = user.client.register_function(add)
    with agent(service, endpoint_id, secret) as ws:
        created = user.client.submit_batch(
            endpoint_id, [(function_id, (1, 2), {}), (function_id, (3, 4), {})]
        )
        dispatch = receive(ws, "tasks")
        assert [t["task_id"] for t in dispatch["tasks"]] == created.task_ids
        assert [f["id"] for f in dispatch["functions"]] == [function_id]  # sent once for the batch
        ws.send(json.dumps({"type": "ack", "task_ids": created.task_ids}))
        first, second = created.task_ids
        ws.send(json.dumps({"type": "results", "results": [outcome(first, 3)]}))
        assert receive(ws, "result_ack")["task_ids"] == [first]
        assert user.client.get_result(first, timeout=5) == 3
        # A duplicate (re-sent after a reconnect) is acknowledged and dropped.
        ws.send(json.dumps({"type": "results", "results": [outcome(first, 999), outcome(second, 7)]}))
        assert receive(ws, "result_ack")["task_ids"] == [first, second]
    assert user.client.get_result(first) == 3
    assert user.client.get_result(second) == 7
    states = [t.state for t in user.client.get_task(second).transitions]
    assert states == ["received", "dispatched", "running", "success"]


def test_submitting_to_an_offline_endpoint_waits_then_runs(
    service: ServiceProcess, make_user: MakeUser
) -> None:
    user = make_user("agent")
    endpoint_id, secret = register(user.client, "ep")
    task_id = user.client.submit(endpoint_id, add, 2, 2)
    assert user.client.get_task(task_id).state == "waiting-for-endpoint"
    with agent(service, endpoint_id, secret) as ws:
        dispatch = receive(ws, "tasks")
        assert dispatch["tasks"][0]["task_id"] == task_id
        ws.send(json.dumps({"type": "results", "results": [outcome(task_id, 4)]}))
        receive(ws, "result_ack")
    assert user.client.get_result(task_id, timeout=5) == 4


def test_unacked_tasks_are_sent_again_after_reconnect_and_lost_ones_count_retries(
    service: ServiceProcess, make_user: MakeUser
) -> None:
    user = make_user("agent")
    endpoint_id, secret = register(user.client, "ep")
    function_id = user.client.register_function(add)
    with agent(service, endpoint_id, secret) as ws:
        created = user.client.submit_batch(endpoint_id, [(function_id, (1, 1), {})], max_retries=1)
        receive(ws, "tasks")  # received but never acknowledged: the connection drops
    (task_id,) = created.task_ids
    with agent(service, endpoint_id, secret) as ws:
        again = receive(ws, "tasks")
        assert again["tasks"][0]["task_id"] == task_id
        assert again["tasks"][0]["attempt"] == 1  # never arrived: no retry used
        ws.send(json.dumps({"type": "ack", "task_ids": [task_id]}))
        time.sleep(0.3)
    with agent(service, endpoint_id, secret) as ws:  # acknowledged, then lost in a crash: one retry
        again = receive(ws, "tasks")
        assert again["tasks"][0]["attempt"] == 2
        ws.send(json.dumps({"type": "ack", "task_ids": [task_id]}))
        time.sleep(0.3)
    with agent(service, endpoint_id, secret):  # lost again, no retries left
        pass
    info = user.client.get_task(task_id)
    assert info.state == "failed"
    assert info.error is not None
    assert info.error.code == "ENDPOINT_LOST"


def test_an_ack_for_another_endpoints_task_changes_nothing(
    service: ServiceProcess, make_user: MakeUser
) -> None:
    user = make_user("agent")
    endpoint_id, secret = register(user.client, "ep")
    other_id, other_secret = register(user.client, "other")
    function_id = user.client.register_function(add)
    with agent(service, endpoint_id, secret) as ws:
        (task_id,) = user.client.submit_batch(
            endpoint_id, [(function_id, (1, 1), {})], max_retries=1
        ).task_ids
        receive(ws, "tasks")
        with agent(service, other_id, other_secret) as other:
            other.send(json.dumps({"type": "ack", "task_ids": [task_id]}))
            time.sleep(0.3)
    with agent(service, endpoint_id, secret) as ws:  # never acknowledged by its own endpoint
        assert receive(ws, "tasks")["tasks"][0]["attempt"] == 1


def test_held_tasks_stay_with_the_agent_and_goodbye_hands_back(
    service: ServiceProcess, make_user: MakeUser
) -> None:
    user = make_user("agent")
    endpoint_id, secret = register(user.client, "ep")
    function_id = user.client.register_function(add)
    with agent(service, endpoint_id, secret) as ws:
        (task_id,) = user.client.submit_batch(endpoint_id, [(function_id, (1, 1), {})]).task_ids
        receive(ws, "tasks")
        ws.send(json.dumps({"type": "started", "task_ids": [task_id], "at": "2026-11-21T00:00:00+00:00"}))
        time.sleep(0.3)
    with agent(service, endpoint_id, secret, held_task_ids=[task_id]) as ws:
        time.sleep(0.3)
        assert user.client.get_task(task_id).state == "running"  # it still has it
        ws.send(json.dumps({"type": "goodbye", "returned_task_ids": [task_id]}))
        time.sleep(0.3)
    info = user.client.get_task(task_id)
    assert info.state == "waiting-for-endpoint"
    assert info.attempt == 1  # handed back at a clean stop: no retry used


def test_a_newer_connection_replaces_the_older(service: ServiceProcess, make_user: MakeUser) -> None:
    user = make_user("agent")
    endpoint_id, secret = register(user.client, "ep")
    with agent(service, endpoint_id, secret) as old, agent(service, endpoint_id, secret):
        with pytest.raises(ConnectionClosed) as caught:
            old.recv(timeout=10)
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == CLOSE_REPLACED
        time.sleep(0.2)
        assert user.client.get_endpoint(endpoint_id).status == "online"


def test_cancel_a_queued_task_and_a_dispatched_one(service: ServiceProcess, make_user: MakeUser) -> None:
    user = make_user("agent")
    endpoint_id, secret = register(user.client, "ep")
    queued = user.client.submit(endpoint_id, add, 1, 2)
    assert user.client.cancel(queued).state == "cancelled"
    with agent(service, endpoint_id, secret) as ws:
        running = user.client.submit(endpoint_id, add, 1, 2)
        dispatch = receive(ws, "tasks")
        assert [t["task_id"] for t in dispatch["tasks"]] == [running]  # the cancelled one never went out
        assert user.client.cancel(running).state == "dispatched"
        assert receive(ws, "cancel")["task_ids"] == [running]
        cancelled = {
            "task_id": running,
            "state": "cancelled",
            "error": {"code": "TASK_CANCELLED", "message": "cancelled"},
            "finished_at": "2026-11-21T00:00:00+00:00",
        }
        ws.send(json.dumps({"type": "results", "results": [cancelled]}))
        receive(ws, "result_ack")
    assert user.client.get_task(running).state == "cancelled"


def test_submit_errors_name_the_problem(service: ServiceProcess, make_user: MakeUser) -> None:
    user = make_user("agent")
    other = make_user("other")
    endpoint_id, _ = register(user.client, "ep", allowed_functions=[])
    with pytest.raises(NotFound, match="endpoint 'no-such-endpoint' not found"):
        user.client.submit("no-such-endpoint", add, 1, 2)
    with pytest.raises(NotFound):  # someone else's endpoint is invisible
        other.client.submit(endpoint_id, add, 1, 2)
    with pytest.raises(FunctionNotAllowed, match="allowed_functions"):
        user.client.submit(endpoint_id, add, 1, 2)


def test_environment_mismatch_and_payload_limit(service: ServiceProcess, make_user: MakeUser) -> None:
    user = make_user("agent")
    endpoint_id, secret = register(user.client, "ep")
    with agent(service, endpoint_id, secret):
        pass  # now the service knows the endpoint's environment
    function_id = user.client.register_function(add)
    body = {
        "endpoint": endpoint_id,
        "tasks": [{"function_id": function_id, "args": serialize.pack_arguments((1, 2), {})}],
        "environment": {"python_version": "3.9.1", "dill_version": "0.3.4"},
    }
    with pytest.raises(EnvironmentMismatch) as caught:
        user.client.request("POST", "/v1/tasks", json=body)
    message = caught.value.message
    assert "3.9.1" in message
    assert serialize.environment().python_version in message
    assert "0.3.4" in message
    big = b"x" * 10_500_000
    with pytest.raises(PayloadTooLarge, match=r"over the 10\.0 MB limit"):
        user.client.submit(endpoint_id, add, big, 1)
