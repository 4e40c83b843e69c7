"""Compute methods of the SDK client: functions, endpoints, tasks and results.

Results are decoded here, in user code: a remote exception is raised as its own type when it can be
rebuilt (else :class:`~beamlink.errors.RemoteExecutionError`), with the remote traceback attached.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from beamlink import serialize
from beamlink.errors import TaskPending
from beamlink.protocol.compute import (
    TERMINAL_STATES,
    EndpointInfo,
    EndpointRegister,
    EndpointRegistered,
    FunctionInfo,
    TaskBatchCreated,
    TaskInfo,
    TaskOutput,
    TaskResult,
)
from beamlink.sdk._base import BaseClient
from beamlink.sdk._base import quote_segment as q

__all__ = ["Call", "ComputeMixin", "batch_body", "decode_result"]

# One call in a batch: (function id, args, kwargs).
Call = tuple[str, Sequence[Any], dict[str, Any]]


def decode_result(result: TaskResult) -> Any:
    """The return value of a finished task, or its failure raised as an exception."""
    if result.state == "success":
        if result.result is None:
            raise TaskPending(f"task {result.id} has no stored result", details={"task_id": result.id})
        return serialize.unpack(result.result)
    if result.state in TERMINAL_STATES:
        assert result.error is not None
        raise serialize.exception_from_error(result.error)
    raise TaskPending(
        f"task {result.id} is still {result.state}: wait for it (get_result(..., timeout=SECONDS))",
        details={"task_id": result.id, "state": result.state},
    )


def batch_body(
    endpoint: str,
    packed: Sequence[tuple[str, str]],
    *,
    task_group_id: str | None,
    timeout: float | None,
    max_retries: int,
    submission_id: str | None = None,
) -> dict[str, Any]:
    """The wire form of a TaskBatch: (function id, packed arguments) pairs to one endpoint."""
    return {
        "endpoint": endpoint,
        "tasks": [
            {"function_id": fid, "args": args, "timeout": timeout, "max_retries": max_retries}
            for fid, args in packed
        ],
        "task_group_id": task_group_id,
        "environment": serialize.environment().model_dump(),
        "submission_id": submission_id,
    }


class ComputeMixin(BaseClient):
    _function_ids: dict[int, tuple[Callable[..., Any], str]]

    # -- functions --------------------------------------------------------------------------------

    def register_function(
        self, function: Callable[..., Any], *, description: str | None = None, public: bool = False
    ) -> str:
        """Register a callable (pickled by value, with its source when readable); returns its id."""
        name, serialized, source = serialize.serialize_function(function)
        body = {
            "name": name,
            "serialized": serialized,
            "source": source,
            "description": description if description is not None else (function.__doc__ or None),
            "environment": serialize.environment().model_dump(),
            "public": public,
        }
        return str(self.request("POST", "/v1/functions", json=body)["id"])

    def _function_id(self, function: str | Callable[..., Any]) -> str:
        """An id as is; a callable registered once per client (cached by identity)."""
        if isinstance(function, str):
            return function
        cache = self.__dict__.setdefault("_function_ids", {})
        hit = cache.get(id(function))
        if hit is not None and hit[0] is function:
            return str(hit[1])
        function_id = self.register_function(function)
        cache[id(function)] = (function, function_id)
        return function_id

    def get_function(self, function_id: str, *, include_source: bool = False) -> FunctionInfo:
        return self._get_model(
            FunctionInfo, f"/v1/functions/{q(function_id)}", include_source=include_source or None
        )

    def list_functions(self, *, owned: bool = False, page_size: int | None = None) -> list[FunctionInfo]:
        return list(self._walk(FunctionInfo, "/v1/functions", page_size=page_size, owned=owned or None))

    def delete_function(self, function_id: str) -> None:
        self.request("DELETE", f"/v1/functions/{q(function_id)}")

    # -- endpoints --------------------------------------------------------------------------------

    def register_endpoint(
        self, body: EndpointRegister, *, endpoint_id: str | None = None
    ) -> EndpointRegistered:
        """What `beamlink endpoint start` calls: create or refresh the registration, get a fresh secret."""
        payload = body.model_dump(mode="json")
        if endpoint_id is None:
            return EndpointRegistered.model_validate(self.request("POST", "/v1/endpoints", json=payload))
        return EndpointRegistered.model_validate(
            self.request("PUT", f"/v1/endpoints/{q(endpoint_id)}", json=payload)
        )

    def get_endpoint(self, endpoint: str) -> EndpointInfo:
        """By id, or one of your own by name."""
        return self._get_model(EndpointInfo, f"/v1/endpoints/{q(endpoint)}")

    def list_endpoints(self, *, owned: bool = False, page_size: int | None = None) -> list[EndpointInfo]:
        return list(self._walk(EndpointInfo, "/v1/endpoints", page_size=page_size, owned=owned or None))

    def delete_endpoint(self, endpoint: str, *, force: bool = False) -> None:
        self.request("DELETE", f"/v1/endpoints/{q(endpoint)}", params={"force": force or None})

    # -- tasks ------------------------------------------------------------------------------------

    def submit(self, endpoint: str, function: str | Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
        """Run ``function(*args, **kwargs)`` on an endpoint; returns the task id at once.

        ``function`` is a registered function's id, or a callable (registered on first use).
        """
        created = self.submit_batch(endpoint, [(self._function_id(function), args, kwargs)])
        return created.task_ids[0]

    def submit_batch(
        self,
        endpoint: str,
        calls: Sequence[Call],
        *,
        task_group_id: str | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
    ) -> TaskBatchCreated:
        """Many calls in one request. Arguments are serialized here: one that cannot be is a
        SerializationError naming it, before anything is sent."""
        packed = [(fid, serialize.pack_arguments(tuple(args), dict(kwargs))) for fid, args, kwargs in calls]
        return self.submit_packed(
            endpoint, packed, task_group_id=task_group_id, timeout=timeout, max_retries=max_retries
        )

    def submit_packed(
        self,
        endpoint: str,
        packed: Sequence[tuple[str, str]],
        *,
        task_group_id: str | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
        submission_id: str | None = None,
    ) -> TaskBatchCreated:
        """Submit (function id, packed arguments) pairs; the one request behind every submission.

        With ``submission_id``, sending the same batch again (say, after the connection broke before the
        answer) queues it once and answers with the first submission's task ids."""
        body = batch_body(
            endpoint,
            packed,
            task_group_id=task_group_id,
            timeout=timeout,
            max_retries=max_retries,
            submission_id=submission_id,
        )
        return TaskBatchCreated.model_validate(self.request("POST", "/v1/tasks", json=body))

    def get_task(self, task_id: str) -> TaskInfo:
        return self._get_model(TaskInfo, f"/v1/tasks/{q(task_id)}")

    def get_tasks(self, task_ids: Sequence[str]) -> list[TaskInfo]:
        result: list[TaskInfo] = self._parse(
            list[TaskInfo], self.request("POST", "/v1/tasks/status", json={"task_ids": list(task_ids)})
        )
        return result

    def list_tasks(
        self,
        *,
        state: str | None = None,
        endpoint_id: str | None = None,
        task_group_id: str | None = None,
        page_size: int | None = None,
    ) -> list[TaskInfo]:
        return list(
            self._walk(
                TaskInfo,
                "/v1/tasks",
                page_size=page_size,
                state=state,
                endpoint_id=endpoint_id,
                task_group_id=task_group_id,
            )
        )

    def get_task_result(self, task_id: str, *, timeout: float | None = None) -> TaskResult:
        """The raw outcome; with ``timeout``, the service holds the request until the task finishes."""
        wait = None if not timeout else min(timeout, 600.0)
        return self._get_model(TaskResult, f"/v1/tasks/{q(task_id)}/result", wait=wait)

    def get_result(self, task_id: str, *, timeout: float | None = None) -> Any:
        """The task's return value (its exception raised); TaskPending if it does not finish in time."""
        return decode_result(self.get_task_result(task_id, timeout=timeout))

    def cancel(self, task_id: str) -> TaskInfo:
        return TaskInfo.model_validate(self.request("POST", f"/v1/tasks/{q(task_id)}/cancel"))

    def cancel_tasks(self, task_ids: Sequence[str]) -> list[TaskInfo]:
        result: list[TaskInfo] = self._parse(
            list[TaskInfo], self.request("POST", "/v1/tasks/cancel", json={"task_ids": list(task_ids)})
        )
        return result

    def release_result(self, task_id: str) -> TaskInfo:
        return TaskInfo.model_validate(self.request("DELETE", f"/v1/tasks/{q(task_id)}/result"))

    def get_task_output(self, task_id: str) -> TaskOutput:
        return self._get_model(TaskOutput, f"/v1/tasks/{q(task_id)}/output")

    def stream_results(
        self, task_group_id: str, *, stop: threading.Event | None = None
    ) -> Iterator[TaskResult]:
        """Results of a task group as the service pushes them (server-sent events), finished ones first.

        Runs until the caller stops iterating or ``stop`` is set (noticed within the service's 15 s
        keep-alive); raises ServiceUnreachable if the connection drops.
        """
        timeout = httpx.Timeout(10.0, read=60.0)  # the service sends a keep-alive every 15 s
        with self.stream(
            "GET",
            "/v1/tasks/stream",
            params={"task_group_id": task_group_id},
            headers={"Accept": "text/event-stream"},
            timeout=timeout,
        ) as r:
            event, data = "", []
            for line in r.iter_lines():
                if stop is not None and stop.is_set():
                    return
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line:
                    if event == "result" and data:
                        yield TaskResult.model_validate(json.loads("\n".join(data)))
                    event, data = "", []
