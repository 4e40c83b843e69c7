"""Speaking the service's WebSockets by hand in tests: addresses, agent handshakes, waiting for a kind."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.client import ClientConnection, connect

from beamlink import serialize
from beamlink.protocol.agent import AGENT_HEADER
from beamlink.protocol.compute import EndpointRegister
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess


def ws_url(service: ServiceProcess, path: str = "/v1/agents/connect") -> str:
    return service.url.replace("http://", "ws://") + path


@contextmanager
def agent_socket(
    service: ServiceProcess, agent_id: str, secret: str, hello: dict[str, Any], welcome: str
) -> Iterator[ClientConnection]:
    """An agent's connection after its hello was answered with a ``welcome`` message."""
    headers = {AGENT_HEADER: agent_id, "Authorization": f"Bearer {secret}"}
    with connect(ws_url(service), additional_headers=headers, open_timeout=10) as ws:
        ws.send(json.dumps(hello))
        answer = receive(ws, welcome)
        assert agent_id in (answer.get("endpoint_id"), answer.get("collection_id"))
        yield ws


def register(client: Client, name: str, **extra: Any) -> tuple[str, str]:
    body = EndpointRegister(name=name, engine="thread", environment=serialize.environment(), **extra)
    registered = client.register_endpoint(body)
    return registered.id, registered.agent_secret


def hello(**extra: Any) -> str:
    body = {
        "type": "hello",
        "agent_version": "test",
        "host": "test-host",
        "environment": serialize.environment().model_dump(),
        "engine": "thread",
        "heartbeat_period": 1.0,
        "held_task_ids": [],
    }
    body.update(extra)
    return json.dumps(body)


def outcome(task_id: str, value: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "state": "success",
        "result": serialize.pack(value),
        "started_at": "2026-11-21T00:00:00+00:00",
        "finished_at": "2026-11-21T00:00:00+00:00",
    }


def receive(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next message of type ``kind`` (others are skipped); TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["type"] == kind:
            return message  # type: ignore[no-any-return]
