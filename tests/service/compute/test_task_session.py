"""The submitter WebSocket (``/v1/tasks/session``), spoken by hand: authentication, garbage frames,
refused batches that leave the connection open, results pushed once, a group's results re-sent, and
batches sent twice under one submission id (by hand, and by an Executor whose connection is cut)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from beamlink import serialize
from beamlink.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from beamlink.protocol.compute import TaskBatch
from beamlink.protocol.task_session import CLOSE_AUTH, CLOSE_INVALID
from beamlink.sdk import Client, Executor
from beamlink.sdk.compute import batch_body
from beamlink.service.auth.principal import Principal
from beamlink.service.compute.tasks import submit_batch
from beamlink.service.db.engine import Database
from beamlink.service.launcher import ServiceProcess
from helpers import MakeUser
from ws_helpers import agent_socket, hello, outcome, receive, register, ws_url


def add(a: int, b: int) -> int:
    return a + b


packed_one = serialize.pack_arguments((1, 1), {})


@contextmanager
def session(service: ServiceProcess, token: str | None) -> Iterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with connect(ws_url(service, "/v1/tasks/session"), additional_headers=headers, open_timeout=10) as ws:
        yield ws


def submit(
    ws: ClientConnection,
    ref: int,
    endpoint: str,
    function_id: str,
    *args: Any,
    group: str,
    submission_id: str | None = None,
) -> None:
    packed = [(function_id, serialize.pack_arguments(args, {}))]
    body = batch_body(
        endpoint, packed, task_group_id=group, timeout=None, max_retries=0, submission_id=submission_id
    )
    ws.send(json.dumps({"type": "submit", "ref": ref, "batch": body}))


def closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as caught:
        receive(ws, "never sent")
    assert caught.value.rcvd is not None
    return caught.value.rcvd.code, caught.value.rcvd.reason


@pytest.mark.parametrize("token", [None, "bl_not-a-real-token"])
def test_a_missing_or_wrong_token_is_refused_with_a_reason(
    service: ServiceProcess, token: str | None
) -> None:
    with session(service, token) as ws:
        refused = receive(ws, "refused")
        assert refused["ref"] is None
        assert refused["status"] == 401
        assert refused["error"]["code"].startswith(("AUTHENTICATION", "TOKEN", "INVALID_TOKEN"))
        code, reason = closed_with(ws)
    assert code == CLOSE_AUTH
    assert reason


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        ("this is not json", "invalid submitter message"),
        (b"\x00\xff binary garbage", "invalid submitter message"),
        ('{"type": "launch-missiles"}', "type"),
        ('{"type": "watch"}', "task_group_id"),
    ],
)
def test_garbage_closes_only_that_connection(
    service: ServiceProcess, make_user: MakeUser, frame: str | bytes, words: str
) -> None:
    user = make_user("submitter")
    with session(service, user.client.token) as ws:
        ws.send(frame)
        code, reason = closed_with(ws)
    assert code == CLOSE_INVALID
    assert words in reason
    with session(service, user.client.token) as ws:  # the service is unharmed
        ws.send(json.dumps({"type": "watch", "task_group_id": "g"}))
        ws.send(json.dumps({"type": "submit", "ref": 1, "batch": {"endpoint": "nowhere"}}))
        assert receive(ws, "refused")["ref"] == 1


def test_refused_batches_name_the_problem_and_keep_the_connection(
    service: ServiceProcess, make_user: MakeUser
) -> None:
    user = make_user("submitter")
    endpoint_id, _ = register(user.client, "ep")
    function_id = user.client.register_function(add)
    with session(service, user.client.token) as ws:
        ws.send(json.dumps({"type": "submit", "ref": 1, "batch": {"endpoint": endpoint_id, "tasks": []}}))
        invalid = receive(ws, "refused")
        assert (invalid["ref"], invalid["status"], invalid["error"]["code"]) == (1, 422, "INVALID_INPUT")
        assert "tasks" in invalid["error"]["message"]

        submit(ws, 2, "nowhere", function_id, 1, 2, group="g1")
        unknown = receive(ws, "refused")
        assert (unknown["ref"], unknown["status"]) == (2, 404)
        assert "endpoint 'nowhere' not found" in unknown["error"]["message"]

        submit(ws, 3, endpoint_id, function_id, 1, 2, group="g1")  # the connection still works
        created = receive(ws, "submitted")
        assert created["ref"] == 3
        assert created["created"]["endpoint_id"] == endpoint_id
        assert len(created["created"]["task_ids"]) == 1


def test_results_are_pushed_once_and_resent_to_a_new_watch(
    service: ServiceProcess, make_user: MakeUser
) -> None:
    user = make_user("submitter")
    endpoint_id, secret = register(user.client, "ep")
    function_id = user.client.register_function(add)
    with (
        agent_socket(service, endpoint_id, secret, json.loads(hello()), "welcome") as agent,
        session(service, user.client.token) as ws,
    ):
        ws.send(json.dumps({"type": "watch", "task_group_id": "sums"}))
        submit(ws, 1, endpoint_id, function_id, 2, 3, group="sums")
        (task_id,) = receive(ws, "submitted")["created"]["task_ids"]
        dispatched = receive(agent, "tasks")
        assert [t["task_id"] for t in dispatched["tasks"]] == [task_id]
        agent.send(json.dumps({"type": "results", "results": [outcome(task_id, 5)]}))
        pushed = receive(ws, "results")["results"]
        assert [(r["id"], r["state"]) for r in pushed] == [(task_id, "success")]
        assert serialize.unpack(pushed[0]["result"]) == 5
        assert receive(agent, "result_ack")["task_ids"] == [task_id]  # stored
        with pytest.raises(TimeoutError):
            receive(ws, "results", timeout=0.5)  # pushed as it came; storing it did not send it again
    assert user.client.get_result(task_id) == 5
    with session(service, user.client.token) as ws:
        ws.send(json.dumps({"type": "watch", "task_group_id": "sums"}))
        again = receive(ws, "results")["results"]
        assert [(r["id"], serialize.unpack(r["result"])) for r in again] == [(task_id, 5)]


def test_someone_elses_group_cannot_be_watched(service: ServiceProcess, make_user: MakeUser) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    endpoint_id, _ = register(alice.client, "ep")
    function_id = alice.client.register_function(add)
    alice.client.submit_packed(
        endpoint_id, [(function_id, serialize.pack_arguments((1, 1), {}))], task_group_id="mine"
    )
    with session(service, bob.client.token) as ws:
        ws.send(json.dumps({"type": "watch", "task_group_id": "mine"}))
        refused = receive(ws, "refused")
    assert (refused["task_group_id"], refused["status"]) == ("mine", 404)


def test_no_one_can_add_tasks_to_someone_elses_group(service: ServiceProcess, make_user: MakeUser) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    alice_endpoint, _ = register(alice.client, "ep")
    bob_endpoint, _ = register(bob.client, "ep")
    one = serialize.pack_arguments((1, 1), {})
    hers, his = f"hers-{uuid.uuid4()}", f"his-{uuid.uuid4()}"  # the service outlives this test
    alice_function, bob_function = alice.client.register_function(add), bob.client.register_function(add)
    alice.client.submit_packed(alice_endpoint, [(alice_function, one)], task_group_id=hers)
    for _ in range(2):  # refused every time, not only before the batch's checks are remembered
        with pytest.raises(PermissionDenied, match=f"task group '{hers}' holds another user's tasks"):
            bob.client.submit_packed(bob_endpoint, [(bob_function, one)], task_group_id=hers)
    # The group's owner goes on adding to it, and anyone may start a group of their own.
    assert alice.client.submit_packed(alice_endpoint, [(alice_function, one)], task_group_id=hers).task_ids
    created = bob.client.submit_packed(bob_endpoint, [(bob_function, one)], task_group_id=his)
    assert created.task_group_id == his
    assert bob.client.submit_packed(bob_endpoint, [(bob_function, one)], task_group_id=his).task_ids


def test_of_two_users_naming_one_new_group_at_once_only_the_first_gets_it(
    service: ServiceProcess, make_user: MakeUser
) -> None:
    """Alice's batch has claimed the group in a transaction not yet committed (held open here, through the
    service's own submit_batch on its database); Bob's batch into the same group waits for it, then is
    refused. Checking only for other users' tasks, Bob's batch went in beside Alice's."""
    alice, bob = make_user("alice"), make_user("bob")
    alice_endpoint, _ = register(alice.client, "ep")
    bob_endpoint, _ = register(bob.client, "ep")
    alice_function, bob_function = alice.client.register_function(add), bob.client.register_function(add)
    group = f"new-{uuid.uuid4()}"
    me = alice.client.whoami()
    body = batch_body(
        alice_endpoint, [(alice_function, packed_one)], task_group_id=group, timeout=None, max_retries=0
    )
    assert service.database_url is not None
    database = Database(service.database_url)
    try:
        with database.session() as held, ThreadPoolExecutor(1) as pool:
            submit_batch(
                held,
                Principal(id=me.id, username=me.username),
                TaskBatch.model_validate(body),
                payload_limit=1 << 20,
            )
            bobs = pool.submit(
                bob.client.submit_packed, bob_endpoint, [(bob_function, packed_one)], task_group_id=group
            )
            with pytest.raises(FutureTimeout):
                bobs.result(timeout=1.0)  # waiting on Alice's claim
            held.commit()
            with pytest.raises(PermissionDenied, match=f"task group '{group}' holds another user's tasks"):
                bobs.result(timeout=15)
    finally:
        database.dispose()
    assert [t.id for t in alice.client.list_tasks(task_group_id=group)]
    assert alice.client.submit_packed(
        alice_endpoint, [(alice_function, packed_one)], task_group_id=group
    ).task_ids


def test_an_executor_on_a_group_it_may_not_watch_fails_its_futures(
    service: ServiceProcess, make_user: MakeUser
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    alice_endpoint, _ = register(alice.client, "ep")
    function_id = alice.client.register_function(add)
    alice.client.submit_packed(
        alice_endpoint, [(function_id, serialize.pack_arguments((1, 1), {}))], task_group_id="hers"
    )
    bob_endpoint, _ = register(bob.client, "ep")
    with Executor(bob_endpoint, client=bob.client, task_group_id="hers") as ex:
        future = ex.submit(add, 1, 2)
        # Whichever refusal comes first: the watch's (not found) or the batch's (another user's group).
        with pytest.raises(
            (NotFound, PermissionDenied), match=r"task group '?hers'? (not found|holds another)"
        ):
            future.result(timeout=20)
        with pytest.raises((NotFound, PermissionDenied)):  # the executor stays failed, it does not hang
            ex.submit(add, 2, 2).result(timeout=20)


def test_a_revoked_share_refuses_the_next_batch_at_once(service: ServiceProcess, make_user: MakeUser) -> None:
    """Checked batches are remembered (service/compute/checks.py), but never past a change of rights."""
    alice, bob = make_user("alice"), make_user("bob")
    endpoint_id, _ = register(alice.client, "shared")
    grant = alice.client.request(
        "POST",
        f"/v1/endpoints/{endpoint_id}/grants",
        json={"principal_type": "user", "principal": bob.username, "role": "user"},
    )
    function_id = bob.client.register_function(add)
    packed = [(function_id, packed_one)]
    for _ in range(3):  # the first is checked; the others reuse the answer
        assert bob.client.submit_packed(endpoint_id, packed).endpoint_id == endpoint_id
    alice.client.request("DELETE", f"/v1/endpoints/{endpoint_id}/grants/{grant['id']}")
    with pytest.raises(NotFound, match="not found"):
        bob.client.submit_packed(endpoint_id, packed)
    alice.client.request(
        "POST",
        f"/v1/endpoints/{endpoint_id}/grants",
        json={"principal_type": "user", "principal": bob.username, "role": "viewer"},
    )
    with pytest.raises(PermissionDenied, match="user"):
        bob.client.submit_packed(endpoint_id, packed)


# -- submission ids -------------------------------------------------------------------------------------


def test_a_batch_sent_twice_with_its_submission_id_is_queued_once(
    service: ServiceProcess, make_user: MakeUser
) -> None:
    user = make_user("submitter")
    endpoint_id, secret = register(user.client, "ep")
    function_id = user.client.register_function(add)
    group, again_id = f"g-{uuid.uuid4()}", f"s-{uuid.uuid4()}"
    with (
        agent_socket(service, endpoint_id, secret, json.loads(hello()), "welcome") as agent,
        session(service, user.client.token) as ws,
    ):
        submit(ws, 1, endpoint_id, function_id, 2, 3, group=group, submission_id=again_id)
        first = receive(ws, "submitted")["created"]
        submit(ws, 2, endpoint_id, function_id, 2, 3, group=group, submission_id=again_id)
        second = receive(ws, "submitted")
        assert (second["ref"], second["created"]) == (2, first)
        dispatched = receive(agent, "tasks")
        assert [t["task_id"] for t in dispatched["tasks"]] == first["task_ids"]
        with pytest.raises(TimeoutError):
            receive(agent, "tasks", timeout=0.5)  # the copy was not dispatched: it queued nothing
        # The same id for other work is refused, and the connection goes on.
        submit(ws, 3, endpoint_id, function_id, 2, 4, group=group, submission_id=again_id)
        refused = receive(ws, "refused")
        assert (refused["ref"], refused["status"], refused["error"]["code"]) == (3, 409, "CONFLICT")
        assert "was used for another batch" in refused["error"]["message"]
    assert [t.id for t in user.client.list_tasks(task_group_id=group)] == first["task_ids"]


def test_submission_ids_are_per_user_and_checked_over_http(
    service: ServiceProcess, make_user: MakeUser
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    shared = f"s-{uuid.uuid4()}"
    created: dict[str, Any] = {}
    for name, user in (("alice", alice), ("bob", bob)):
        endpoint_id, _ = register(user.client, "ep")
        function_id = user.client.register_function(add)
        packed = [(function_id, packed_one)] * 3
        created[name] = user.client.submit_packed(endpoint_id, packed, submission_id=shared)
        assert user.client.submit_packed(endpoint_id, packed, submission_id=shared) == created[name]
        with pytest.raises(Conflict, match="was used for another batch"):
            user.client.submit_packed(endpoint_id, packed[:2], submission_id=shared)
        assert len(user.client.list_tasks(task_group_id=created[name].task_group_id)) == 3
    assert set(created["alice"].task_ids).isdisjoint(
        created["bob"].task_ids
    )  # one id, two users, two batches
    for bad in ("", "x" * 65):
        with pytest.raises(InvalidInput, match="submission_id"):
            alice.client.submit_packed(
                created["alice"].endpoint_id, [(function_id, packed_one)], submission_id=bad
            )


class CuttingProxy:
    """A TCP proxy to the service that cuts its first connection whose answer names a ``submitted`` batch,
    instead of passing that answer on: the service queued the batch, and the client never heard so."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                if answers and b'"submitted"' in data and not self.cut.is_set():
                    self.cut.set()
                    break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def test_an_executor_sends_an_unanswered_batch_again_and_it_runs_once(
    service: ServiceProcess, make_user: MakeUser
) -> None:
    user = make_user("submitter")
    endpoint_id, secret = register(user.client, "ep")
    proxy = CuttingProxy(int(service.url.rsplit(":", 1)[1]))
    client = Client(url=f"http://127.0.0.1:{proxy.port}", token=user.client.token, home=user.client.home)
    try:
        with (
            agent_socket(service, endpoint_id, secret, json.loads(hello()), "welcome") as agent,
            Executor(endpoint_id, client=client) as ex,
        ):
            future = ex.submit(add, 2, 3)
            dispatched = receive(agent, "tasks")["tasks"]
            assert proxy.cut.wait(10)  # the answer to the first copy never reached the executor
            (task_id,) = [t["task_id"] for t in dispatched]
            agent.send(json.dumps({"type": "results", "results": [outcome(task_id, 5)]}))
            assert future.result(timeout=20) == 5
            assert future.task_id == task_id
            with pytest.raises(TimeoutError):
                receive(agent, "tasks", timeout=0.5)  # the copy sent again was not queued again
            tasks = user.client.list_tasks(task_group_id=ex.task_group_id)
        assert [t.id for t in tasks] == [task_id]
    finally:
        proxy.close()
        client.close()
